"""``ulasan bench ...``: benchmarks printing figures beside a baseline from the same run.

``ulasan --help`` imports this module: what pulls in onnxruntime (the engine benchmark, the model
registry, the inference errors) or httpx and grpc (the gateway benchmark) is imported inside the
command that needs it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from trainer.errors import TrainerError
from ulasan.bench_pipeline import run_pipeline_bench
from ulasan.core.settings import Settings, project_paths
from ulasan.core.text.bench import run_text_bench
from ulasan.core.text.errors import TextError
from ulasan.errors import UlasanError
from ulasan.json_output import stdout_to_stderr
from ulasan.options import SHAPE_HELP, AsJson, ServedModel, Shape, Workers, WorkerThreads
from ulasan.pipeline_tools import default_workers, worker_threads

app = typer.Typer(help="Benchmarks (results go to docs/benchmarks.md).", no_args_is_help=True)
err = Console(stderr=True)


@contextmanager
def _failures(*kinds: type[Exception]) -> Iterator[None]:
    """A benchmark error of ``kinds`` (the trainer's, the inference's and ours when none are
    given) becomes one red line and exit code 1."""
    if not kinds:
        from ulasan.core.inference import InferenceError  # noqa: PLC0415 - heavy, onnxruntime

        kinds = (TrainerError, InferenceError, UlasanError)
    try:
        yield
    except kinds as exc:
        err.print(f"[red]benchmark failed:[/red] {exc}")
        raise typer.Exit(1) from exc


def _print_json(result: dict[str, Any]) -> None:
    """The one JSON document of ``--json`` (what ran before went to stderr: see
    :func:`ulasan.json_output.stdout_to_stderr`)."""
    typer.echo(json.dumps(result))


def _table(
    title: str, columns: tuple[str, ...], rows: list[list[str]], words: tuple[str, ...] = ()
) -> Table:
    """A table of figures (right-justified) beside the columns of ``words`` (left-justified)."""
    table = Table(title=title)
    for col in columns:
        table.add_column(col, justify="left" if col in words else "right")
    for row in rows:
        table.add_row(*row)
    return table


def _serving_folder(model: str | None, shape: str | None, settings: Settings) -> Path:
    """The serving folder a pipeline-level benchmark runs: a built shape, ``model``, or the
    registered champion."""
    from trainer.bench_engine import shape_model  # noqa: PLC0415 - heavy, onnxruntime
    from ulasan.core.registry import resolve_model  # noqa: PLC0415 - heavy, onnxruntime

    if shape is not None:
        return shape_model(shape, settings)[1]
    ref = model or f"models:/{settings.mlflow.registered_model}@champion"
    return resolve_model(ref, settings)[0]


@dataclass(frozen=True)
class _Served:
    """What a pipeline-level benchmark runs on: the model's serving folder and the workers."""

    settings: Settings
    folder: Path
    workers: int
    threads: int


def _run_served(
    model: str | None,
    shape: str | None,
    workers: int | None,
    threads: int | None,
    bench: Callable[[_Served], dict[str, Any]],
) -> tuple[dict[str, Any], _Served]:
    """Check the options, pick the folder and the worker count, run ``bench``."""
    if model is not None and shape is not None:
        err.print("[red]give at most one of --model and --shape[/red]")
        raise typer.Exit(2)
    settings = Settings()
    n_workers = workers or default_workers(settings.kafka.partitions)
    with _failures():
        folder = _serving_folder(model, shape, settings)
        served = _Served(settings, folder, n_workers, threads or worker_threads(n_workers))
        return bench(served), served


def _run_printed(
    model: str | None,
    shape: str | None,
    workers: int | None,
    threads: int | None,
    bench: Callable[[_Served], dict[str, Any]],
    *,
    as_json: bool,
) -> tuple[dict[str, Any], _Served] | None:
    """:func:`_run_served`; with ``as_json`` its result is printed as the one JSON document on
    stdout (everything else went to stderr) and None is returned: the caller prints nothing."""
    with stdout_to_stderr(as_json):
        result, served = _run_served(model, shape, workers, threads, bench)
    if as_json:
        _print_json(result)
        return None
    return result, served


def _say(line: str) -> None:
    err.print(f"… {line}")


def _engine_folder(
    model: str | None, shape: str | None, checkpoint: Path | None, settings: Settings
) -> tuple[Path, Path | None]:
    """The serving folder and the PyTorch checkpoint of the eager baseline (the manifest's
    ``source_checkpoint`` when none is given and it exists)."""
    from trainer.bench_engine import shape_model  # noqa: PLC0415 - heavy, onnxruntime
    from ulasan.core.inference import ModelManifest  # noqa: PLC0415 - heavy, onnxruntime
    from ulasan.core.registry import resolve_model  # noqa: PLC0415 - heavy, onnxruntime

    if shape is not None:
        ckpt, folder = shape_model(shape, settings)
        return folder, checkpoint or ckpt
    assert model is not None
    folder, _, _ = resolve_model(model, settings, include_fp32=True)
    source = ModelManifest.read(folder).source_checkpoint
    if checkpoint is None and source and (Path(source) / "config.json").is_file():
        checkpoint = Path(source)
    return folder, checkpoint


@app.command("engine")
def engine(
    model: str | None = typer.Option(
        None, "--model", help="models:/NAME@ALIAS | models:/NAME/N | a serving folder"
    ),
    shape: str | None = typer.Option(None, "--shape", help=SHAPE_HELP),
    checkpoint: Path | None = typer.Option(
        None,
        "--checkpoint",
        help="PyTorch checkpoint for the eager baseline [default: the "
        "manifest's source_checkpoint when it exists]",
    ),
    texts: int = typer.Option(256, "--texts", min=8, help="SmSA valid texts to score"),
    batch: int = typer.Option(32, "--batch", min=2, help="batch size of the batched runs"),
    threads: int | None = typer.Option(None, "--threads", help="intra-op threads [all cores]"),
    as_json: AsJson = False,
) -> None:
    """Engine throughput and latency: PyTorch eager vs ONNX Runtime fp32 vs int8.

    Each at batch 1 and batched with length-sorted dynamic padding, on SmSA valid texts.
    """
    from trainer.bench_engine import run_engine_bench  # noqa: PLC0415 - heavy, onnxruntime
    from ulasan.core.inference import InferenceError  # noqa: PLC0415 - heavy, onnxruntime

    if (model is None) == (shape is None):
        err.print("[red]give exactly one of --model and --shape[/red]")
        raise typer.Exit(2)
    with _failures(TrainerError, InferenceError), stdout_to_stderr(as_json):
        folder, checkpoint = _engine_folder(model, shape, checkpoint, Settings())
        result = run_engine_bench(
            folder, checkpoint, n_texts=texts, batch_size=batch, threads=threads
        )
    if as_json:
        _print_json(result)
        return
    title = (
        f"{result['model']}: {result['n_texts']} texts, mean {result['mean_tokens']} "
        f"tokens, {result['threads']} threads"
    )
    columns = ("runtime", "batch", "padding", "texts/s", "p50 ms", "p99 ms")
    rows = [
        [r["runtime"], str(r["batch"]), r["padding"]]
        + [f"{r['texts_per_s']:.1f}", f"{r['p50_ms']:.2f}", f"{r['p99_ms']:.2f}"]
        for r in result["runs"]
    ]
    Console().print(_table(title, columns, rows, words=("runtime", "padding")))
    for note in result["notes"]:
        err.print(f"[yellow]note:[/yellow] {note}")


@app.command("text")
def text(
    n: int = typer.Option(20000, "--n", min=100, help="texts to process (SmSA and PRDECT-ID)"),
    as_json: AsJson = False,
) -> None:
    """Clean + features throughput on one core, beside clean alone and the uncached stemmer."""
    with _failures(TextError), stdout_to_stderr(as_json):
        result = run_text_bench(n, project_paths().data)
    if as_json:
        _print_json(result)
        return
    title = (
        f"text processing: {result['n_texts']} texts, mean {result['mean_chars']} chars, "
        f"core {result['core']}, load {result['load_avg']}"
    )
    rows = [
        [r["run"], r["kind"], f"{r['texts_per_s']:.0f}", f"{r['us_per_text']:.1f}"]
        for r in result["runs"]
    ]
    console = Console()
    console.print(_table(title, ("run", "kind", "texts/s", "µs/text"), rows, words=("run", "kind")))
    lat = result["process_latency_us"]
    console.print(
        f"process latency µs: p50 {lat['p50']}, p99 {lat['p99']}, max {lat['max']}; "
        f"stem cache speed-up x{result['speedup_vs_no_stem_cache']}; target "
        f"{result['target_texts_per_s']:.0f} texts/s "
        + ("[green]met[/green]" if result["target_met"] else "[red]not met[/red]")
    )


@app.command("pipeline")
def pipeline(
    model: ServedModel = None,
    shape: Shape = None,
    events: int = typer.Option(2000, "--events", min=100, help="reviews to push through"),
    workers: Workers = None,
    threads: WorkerThreads = None,
    profile: Path | None = typer.Option(
        None,
        "--profile",
        help="record the workers with py-spy into this folder while the measured reviews "
        "flow (collapsed stacks: speedscope or flamegraph read them) and add the time per "
        "stage to the result",
    ),
    as_json: AsJson = False,
) -> None:
    """Reviews in Kafka -> rows in PostgreSQL: events/s, latency p50/p99, and the ratio to the
    bare engine on the same model, on fresh topics, consumer group and database."""

    def bench(served: _Served) -> dict[str, Any]:
        return run_pipeline_bench(
            served.settings,
            folder=served.folder,
            events=events,
            workers=served.workers,
            threads=served.threads,
            say=_say,
            profile=profile,
        )

    ran = _run_printed(model, shape, workers, threads, bench, as_json=as_json)
    if ran is None:
        return
    result, served = ran
    title = (
        f"pipeline: {result['events']} reviews, {served.folder.name}, {served.workers} worker(s)"
    )
    columns = ("events/s", "p50 ms", "p99 ms", "engine texts/s", "ratio")
    keys = ("events_per_s", "latency_p50_ms", "latency_p99_ms", "engine_texts_per_s")
    row = [f"{result[k]:.1f}" for k in keys] + [f"{result['ratio']:.2f}"]
    Console().print(_table(title, columns, [row]))
    if "profile" in result:
        _print_profile(result["profile"])


def _print_profile(profile: dict[str, Any]) -> None:
    """The per-stage table of a pipeline profile and the functions with the most samples."""
    title = f"worker time per stage ({profile['samples']} samples at {profile['rate_hz']} Hz)"
    columns = ("stage", "share", "seconds", "µs/review")
    rows = [
        [s["stage"], f"{s['share']:.1%}", f"{s['seconds']:.2f}", f"{s['us_per_event']:.1f}"]
        for s in profile["stages"]
    ]
    console = Console()
    console.print(_table(title, columns, rows, words=("stage",)))
    top = [[f["function"], f"{f['share']:.1%}"] for f in profile["top_self"][:15]]
    console.print(_table("most self samples", ("function", "share"), top, words=("function",)))
    err.print(f"py-spy files: {', '.join(profile['files'])}")


@app.command("gateway")
def gateway(
    model: ServedModel = None,
    shape: Shape = None,
    concurrency: int = typer.Option(10, "--concurrency", min=1, help="concurrent clients"),
    duration: float = typer.Option(20.0, "--duration", min=1, help="seconds per protocol"),
    rate: float | None = typer.Option(
        None,
        "--rate",
        min=0.1,
        help="open loop: requests/s offered in total over the C clients, latency from the "
        "scheduled send time [default: closed loop, each client waits for its answer]",
    ),
    client: str = typer.Option(
        "compiled",
        "--client",
        help="compiled: oha (HTTP) and ghz (gRPC), built on first use into "
        "~/.cache/ulasan/tools (needs cargo and Go; minutes, once); python: asyncio clients "
        "in the bench's own process",
    ),
    threads: WorkerThreads = None,
    workers: Workers = None,
    lane: bool = typer.Option(
        False,
        "--lane/--no-lane",
        help="score the requests in a requests lane (`ulasan worker --lane requests`, as "
        "`ulasan run` deploys it) instead of --workers workers running every agent",
    ),
    as_json: AsJson = False,
) -> None:
    """HTTP /predict and gRPC Predict through gateway, Kafka and a worker: requests/s and
    p50/p95/p99 from C clients (closed loop, or open loop at --rate), the per-hop breakdown
    from the gateway, the processes' peak memory, beside the bare engine's batch-1 latency."""
    from ulasan.bench_gateway import run_gateway_bench  # noqa: PLC0415 - httpx, grpc: ~0.4 s

    def bench(served: _Served) -> dict[str, Any]:
        return run_gateway_bench(
            served.settings,
            folder=served.folder,
            concurrency=concurrency,
            duration_s=duration,
            rate=rate,
            threads=served.threads,
            workers=served.workers,
            client=client,
            lane=lane,
            say=_say,
        )

    ran = _run_printed(model, shape, workers, threads, bench, as_json=as_json)
    if ran is None:
        return
    result, served = ran
    _print_gateway(result, f"gateway: {concurrency} clients, {_how(rate)}, {served.folder.name}")


def _how(rate: float | None) -> str:
    return "closed loop" if rate is None else f"open loop, {rate:g} req/s offered"


def _print_gateway(result: dict[str, Any], title: str) -> None:
    """The gateway bench's tables: per protocol, per hop, peak memory, the targets."""
    rows = [
        [proto]
        + [f"{result[proto][k]:.1f}" for k in ("rps", "p50_ms", "p95_ms", "p99_ms")]
        + [str(sum(result[proto]["errors"].values()))]
        for proto in ("http", "grpc")
    ]
    columns = ("protocol", "req/s", "p50 ms", "p95 ms", "p99 ms", "errors")
    console = Console()
    console.print(_table(title, columns, rows))
    hop_rows = [
        [hop]
        + [
            f"{result[p]['hops'][hop][k]:.2f}" if result[p]["hops"][hop][k] is not None else "-"
            for p in ("http", "grpc")
            for k in ("p50_ms", "p99_ms")
        ]
        for hop in result["http"]["hops"]
    ]
    hop_cols = ("hop", "HTTP p50", "HTTP p99", "gRPC p50", "gRPC p99")
    console.print(_table("per hop (ms, the gateway's ring)", hop_cols, hop_rows, words=("hop",)))
    memory = ", ".join(f"{k} {v['peak_rss_mib']} MiB" for k, v in result["memory"].items())
    console.print(f"peak RSS: {memory}")
    engine = result["engine_batch1_p50_ms"]
    console.print(
        f"bare engine batch-1 p50: {engine:.1f} ms; targets: >= 100 req/s, "
        f"p50 <= {engine + 10:.1f} ms, p99 <= 100 ms"
    )


@app.command("burst")
def burst(
    model: ServedModel = None,
    shape: Shape = None,
    reviews: int = typer.Option(20000, "--reviews", min=100, help="reviews in the backlog"),
    rate: float = typer.Option(20.0, "--rate", min=0.1, help="gateway requests/s, open loop"),
    idle: float = typer.Option(15.0, "--idle", min=1, help="seconds of the idle phase"),
    concurrency: int = typer.Option(4, "--concurrency", min=1, help="client connections"),
    nice: int = typer.Option(
        10, "--nice", min=0, max=19, help="nice value of the lane_nice setup (0: no such setup)"
    ),
    client: str = typer.Option(
        "compiled",
        "--client",
        help="compiled: oha, the open-loop HTTP load generator of `bench gateway` (built on "
        "first use); python: asyncio clients in the bench's own process (which share its "
        "cores and event loop)",
    ),
    threads: WorkerThreads = None,
    as_json: AsJson = False,
) -> None:
    """Gateway p50/p99 at --rate while --reviews reviews drain, beside the idle figures: one
    worker running everything, vs the requests lane beside a reviews worker (and at --nice)."""
    from ulasan.bench_burst import run_burst_bench  # noqa: PLC0415 - httpx: ~0.2 s

    def bench(served: _Served) -> dict[str, Any]:
        return run_burst_bench(
            served.settings,
            folder=served.folder,
            reviews=reviews,
            rate=rate,
            idle_s=idle,
            concurrency=concurrency,
            nice=nice,
            threads=served.threads,
            client=client,
            say=_say,
        )

    ran = _run_printed(model, shape, 1, threads, bench, as_json=as_json)
    if ran is None:
        return
    result, served = ran
    title = f"burst: {reviews} reviews, {rate:g} req/s open loop, {served.folder.name}"
    columns = ("setup", "idle p50", "idle p99", "burst p50", "burst p99", "errors", "x idle")
    rows = [
        [name]
        + [f"{r[phase][k]:.1f}" for phase in ("idle", "burst") for k in ("p50_ms", "p99_ms")]
        + [str(r["burst"]["errors"]), f"{r['burst_p99_over_idle_p99'] or 0:.2f}"]
        + [f"{r['drain_reviews_per_s'] or 0:.0f}"]
        for name, r in result["setups"].items()
    ]
    table = _table(title, (*columns, "drain rev/s"), rows, words=("setup",))
    Console().print(table)
    Console().print(f"target: {result['target']} (ms)")


@app.command("memory")
def memory(
    model: ServedModel = None,
    shape: Shape = None,
    train_config: Path = typer.Option(
        Path("configs/tiny.yaml"), "--train-config", help="the training measured to its end"
    ),
    workers: Workers = None,
    threads: WorkerThreads = None,
    as_json: AsJson = False,
) -> None:
    """Peak RSS of each process: worker(s) and gateway after a warm-up, the UI after its pages
    loaded in headless chromium, the trainer consumer idle, a training to its end."""
    from ulasan.bench_memory import run_memory_bench  # noqa: PLC0415 - httpx, grpc, selenium

    def bench(served: _Served) -> dict[str, Any]:
        return run_memory_bench(
            served.settings,
            folder=served.folder,
            train_config=train_config,
            workers=served.workers,
            threads=served.threads,
            say=_say,
        )

    ran = _run_printed(model, shape, workers, threads, bench, as_json=as_json)
    if ran is None:
        return
    result, served = ran
    rows = [
        [
            name,
            str(p.get("peak_rss_mib")),
            {True: "yes", False: "no"}.get(p.get("torch_loaded"), "-"),
        ]
        for name, p in result["processes"].items()
    ]
    title = f"peak RSS (VmHWM), {served.folder.name}, training {result['train_config']}"
    Console().print(
        _table(title, ("process", "peak MiB", "torch"), rows, words=("process", "torch"))
    )
