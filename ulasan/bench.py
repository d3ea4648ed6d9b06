"""``ulasan bench ...``: benchmarks printing figures beside a baseline from the same run."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from ulasan.core.settings import Settings


def _serving_folder(model: str | None, shape: str | None, settings: Settings) -> Path:
    """The serving folder a pipeline-level benchmark runs: a built shape, ``model``, or the
    registered champion."""
    from trainer.bench_engine import shape_model
    from ulasan.core.registry import resolve_model

    if shape is not None:
        return shape_model(shape, settings)[1]
    ref = model or f"models:/{settings.mlflow.registered_model}@champion"
    return resolve_model(ref, settings)[0]


app = typer.Typer(help="Benchmarks (results go to docs/benchmarks.md).", no_args_is_help=True)


@app.command("engine")
def engine(
    model: str | None = typer.Option(
        None, "--model", help="models:/NAME@ALIAS | models:/NAME/N | a serving folder"
    ),
    shape: str | None = typer.Option(
        None, "--shape", help="indobert-base: a random BERT-base-shaped model, built offline"
    ),
    checkpoint: Path | None = typer.Option(
        None,
        "--checkpoint",
        help="PyTorch checkpoint for the eager baseline [default: the "
        "manifest's source_checkpoint when it exists]",
    ),
    texts: int = typer.Option(256, "--texts", min=8, help="SmSA valid texts to score"),
    batch: int = typer.Option(32, "--batch", min=2, help="batch size of the batched runs"),
    threads: int | None = typer.Option(None, "--threads", help="intra-op threads [all cores]"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object"),
) -> None:
    """Engine throughput and latency: PyTorch eager vs ONNX Runtime fp32 vs int8.

    Each at batch 1 and batched with length-sorted dynamic padding, on SmSA valid texts.
    """
    import json

    from rich.console import Console
    from rich.table import Table

    from trainer.bench_engine import run_engine_bench, shape_model
    from trainer.errors import TrainerError
    from ulasan.core.inference import InferenceError, ModelManifest
    from ulasan.core.registry import resolve_model
    from ulasan.core.settings import Settings

    err = Console(stderr=True)
    if (model is None) == (shape is None):
        err.print("[red]give exactly one of --model and --shape[/red]")
        raise typer.Exit(2)
    settings = Settings()
    try:
        if shape is not None:
            ckpt, folder = shape_model(shape, settings)
            checkpoint = checkpoint or ckpt
        else:
            assert model is not None
            folder, _, _ = resolve_model(model, settings, include_fp32=True)
            source = ModelManifest.read(folder).source_checkpoint
            if checkpoint is None and source and (Path(source) / "config.json").is_file():
                checkpoint = Path(source)
        result = run_engine_bench(
            folder, checkpoint, n_texts=texts, batch_size=batch, threads=threads
        )
    except (TrainerError, InferenceError) as exc:
        err.print(f"[red]benchmark failed:[/red] {exc}")
        raise typer.Exit(1) from exc
    if as_json:
        typer.echo(json.dumps(result))
        return
    table = Table(
        title=f"{result['model']}: {result['n_texts']} texts, mean {result['mean_tokens']} "
        f"tokens, {result['threads']} threads"
    )
    for col in ("runtime", "batch", "padding", "texts/s", "p50 ms", "p99 ms"):
        table.add_column(col, justify="left" if col in ("runtime", "padding") else "right")
    for r in result["runs"]:
        table.add_row(
            r["runtime"],
            str(r["batch"]),
            r["padding"],
            f"{r['texts_per_s']:.1f}",
            f"{r['p50_ms']:.2f}",
            f"{r['p99_ms']:.2f}",
        )
    Console().print(table)
    for note in result["notes"]:
        err.print(f"[yellow]note:[/yellow] {note}")


@app.command("text")
def text(
    n: int = typer.Option(20000, "--n", min=100, help="texts to process (SmSA and PRDECT-ID)"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object"),
) -> None:
    """Clean + features throughput on one core, beside clean alone and the uncached stemmer."""
    import json

    from rich.console import Console
    from rich.table import Table

    from ulasan.core.settings import PROJECT_ROOT
    from ulasan.core.text.bench import run_text_bench
    from ulasan.core.text.errors import TextError

    try:
        result = run_text_bench(n, PROJECT_ROOT / "data")
    except TextError as exc:
        Console(stderr=True).print(f"[red]benchmark failed:[/red] {exc}")
        raise typer.Exit(1) from exc
    if as_json:
        typer.echo(json.dumps(result))
        return
    table = Table(
        title=f"text processing: {result['n_texts']} texts, mean {result['mean_chars']} chars, "
        f"core {result['core']}, load {result['load_avg']}"
    )
    for col in ("run", "kind", "texts/s", "µs/text"):
        table.add_column(col, justify="left" if col in ("run", "kind") else "right")
    for r in result["runs"]:
        table.add_row(r["run"], r["kind"], f"{r['texts_per_s']:.0f}", f"{r['us_per_text']:.1f}")
    console = Console()
    console.print(table)
    lat = result["process_latency_us"]
    console.print(
        f"process latency µs: p50 {lat['p50']}, p99 {lat['p99']}, max {lat['max']}; "
        f"stem cache speed-up x{result['speedup_vs_no_stem_cache']}; target "
        f"{result['target_texts_per_s']:.0f} texts/s "
        + ("[green]met[/green]" if result["target_met"] else "[red]not met[/red]")
    )


@app.command("pipeline")
def pipeline(
    model: str | None = typer.Option(
        None,
        "--model",
        help="models:/NAME@ALIAS | models:/NAME/N | a serving folder [default: the champion]",
    ),
    shape: str | None = typer.Option(
        None, "--shape", help="indobert-base: a random BERT-base-shaped model, built offline"
    ),
    events: int = typer.Option(2000, "--events", min=100, help="reviews to push through"),
    workers: int | None = typer.Option(
        None,
        "--workers",
        min=1,
        help="worker processes in the consumer group [one per core, at most the partitions]",
    ),
    threads: int | None = typer.Option(
        None, "--threads", min=1, help="ONNX Runtime threads per worker [cores / workers]"
    ),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object"),
) -> None:
    """Reviews in Kafka -> rows in PostgreSQL: events/s, latency p50/p99, and the ratio to the
    bare engine on the same model, on fresh topics, consumer group and database."""
    import json

    from rich.console import Console
    from rich.table import Table

    from trainer.errors import TrainerError
    from ulasan.bench_pipeline import run_pipeline_bench
    from ulasan.core.inference import InferenceError
    from ulasan.core.settings import Settings
    from ulasan.errors import UlasanError
    from ulasan.pipeline_tools import default_workers, worker_threads

    err = Console(stderr=True)
    if model is not None and shape is not None:
        err.print("[red]give at most one of --model and --shape[/red]")
        raise typer.Exit(2)
    settings = Settings()
    workers = workers or default_workers(settings.kafka.partitions)
    threads = threads or worker_threads(workers)
    try:
        folder = _serving_folder(model, shape, settings)
        result = run_pipeline_bench(
            settings,
            folder=folder,
            events=events,
            workers=workers,
            threads=threads,
            say=lambda line: err.print(f"… {line}"),
        )
    except (TrainerError, InferenceError, UlasanError) as exc:
        err.print(f"[red]benchmark failed:[/red] {exc}")
        raise typer.Exit(1) from exc
    if as_json:
        typer.echo(json.dumps(result))
        return
    table = Table(title=f"pipeline: {result['events']} reviews, {folder.name}, {workers} worker(s)")
    for col in ("events/s", "p50 ms", "p99 ms", "engine texts/s", "ratio"):
        table.add_column(col, justify="right")
    table.add_row(
        f"{result['events_per_s']:.1f}",
        f"{result['latency_p50_ms']:.1f}",
        f"{result['latency_p99_ms']:.1f}",
        f"{result['engine_texts_per_s']:.1f}",
        f"{result['ratio']:.2f}",
    )
    Console().print(table)


@app.command("gateway")
def gateway(
    model: str | None = typer.Option(
        None,
        "--model",
        help="models:/NAME@ALIAS | models:/NAME/N | a serving folder [default: the champion]",
    ),
    shape: str | None = typer.Option(
        None, "--shape", help="indobert-base: a random BERT-base-shaped model, built offline"
    ),
    concurrency: int = typer.Option(10, "--concurrency", min=1, help="concurrent clients"),
    duration: float = typer.Option(20.0, "--duration", min=1, help="seconds per protocol"),
    rate: float | None = typer.Option(
        None,
        "--rate",
        min=0.1,
        help="open loop: requests/s offered in total over the C clients, latency from the "
        "scheduled send time [default: closed loop, each client waits for its answer]",
    ),
    threads: int | None = typer.Option(
        None, "--threads", help="ONNX Runtime intra-op threads per worker [cores / workers]"
    ),
    workers: int | None = typer.Option(
        None,
        "--workers",
        min=1,
        help="worker processes in the group [one per core, at most the partitions]",
    ),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object"),
) -> None:
    """HTTP /predict and gRPC Predict through gateway, Kafka and a worker: requests/s and
    p50/p95/p99 from C clients (closed loop, or open loop at --rate), beside the bare engine's
    batch-1 latency."""
    import json

    from rich.console import Console
    from rich.table import Table

    from trainer.errors import TrainerError
    from ulasan.bench_gateway import run_gateway_bench
    from ulasan.core.inference import InferenceError
    from ulasan.core.settings import Settings
    from ulasan.errors import UlasanError
    from ulasan.pipeline_tools import default_workers, worker_threads

    err = Console(stderr=True)
    if model is not None and shape is not None:
        err.print("[red]give at most one of --model and --shape[/red]")
        raise typer.Exit(2)
    settings = Settings()
    n_workers = workers or default_workers(settings.kafka.partitions)
    try:
        folder = _serving_folder(model, shape, settings)
        result = run_gateway_bench(
            settings,
            folder=folder,
            concurrency=concurrency,
            duration_s=duration,
            rate=rate,
            threads=threads or worker_threads(n_workers),
            workers=n_workers,
            say=lambda line: err.print(f"… {line}"),
        )
    except (TrainerError, InferenceError, UlasanError) as exc:
        err.print(f"[red]benchmark failed:[/red] {exc}")
        raise typer.Exit(1) from exc
    if as_json:
        typer.echo(json.dumps(result))
        return
    engine = result["engine_batch1_p50_ms"]
    how = "closed loop" if rate is None else f"open loop, {rate:g} req/s offered"
    table = Table(title=f"gateway: {concurrency} clients, {how}, {folder.name}")
    for col in ("protocol", "req/s", "p50 ms", "p95 ms", "p99 ms", "errors"):
        table.add_column(col, justify="right")
    for proto in ("http", "grpc"):
        r = result[proto]
        table.add_row(
            proto,
            f"{r['rps']:.1f}",
            f"{r['p50_ms']:.1f}",
            f"{r['p95_ms']:.1f}",
            f"{r['p99_ms']:.1f}",
            str(sum(r["errors"].values())),
        )
    Console().print(table)
    Console().print(
        f"bare engine batch-1 p50: {engine:.1f} ms; targets: >= 100 req/s, "
        f"p50 <= {engine + 10:.1f} ms, p99 <= 100 ms"
    )
