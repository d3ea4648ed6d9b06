"""The main job (``ulasan run``, ``make run``): stack, champion, every process, the review stream.

It starts and supervises (:mod:`ulasan.supervisor`) the worker group and, unless ``--once``,
the gateway, the trainer consumer and the UI (:mod:`ulasan.run_services`); replays the review
file with its rating feedback; shows live progress and, while it serves, the closed loop's
steps (:mod:`ulasan.loop_watch`) under the run's loop profile (:mod:`ulasan.profiles`).

Each run replays the review file under a new *run id*, which is mixed into every review id
(see :mod:`producers.replay`): a second run publishes the file again as new reviews, so the
pipeline is seen working every time, and reuses the trained champion. ``ulasan produce
replay`` (no run id) is the exactly-once way to feed a file.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from rich.console import Console, Group
from rich.live import Live
from rich.rule import Rule
from rich.table import Table

from deploy.local import manager
from deploy.local.errors import StackError
from producers.checkpoints import PostgresCheckpoints
from producers.cli import report_bad_rows
from producers.files import count_lines
from producers.publish import Publisher, prefixed_topics
from producers.replay import PRDECT_FILE, ReplaySpec, replay
from producers.replay import preset as replay_preset
from producers.runner import RunStats
from schemas import topics
from schemas.events import LABELS, Event
from stream_processors.settings import configured_review_topics, requests_group
from trainer import shipped
from trainer.config import load_config
from trainer.errors import TrainerError
from trainer.pipeline import run_training
from ulasan.core.kafka_admin import ensure_topics
from ulasan.core.settings import Settings
from ulasan.errors import MainJobError
from ulasan.loop_watch import LoopWatch, duration
from ulasan.pipeline_tools import (
    LagProbe,
    MonitorState,
    SentimentMonitor,
    WorkerGroup,
    default_workers,
    percentile,
    requests_lane,
    worker_group,
    worker_threads,
)
from ulasan.procs import free_port, stop_signals_deferred
from ulasan.profiles import profile
from ulasan.run_services import (
    Ports,
    ServiceSpec,
    address_lines,
    pick_ports,
    ui_available,
    wait_gateway,
)
from ulasan.supervisor import Supervisor

#: The nice value of the review workers beside a requests lane (> 0: the kernel runs the lane
#: first when both want the cores). 0: on the loaded machine a nice of 10 did not reliably help
#: the lane and slowed the drain (docs/benchmarks.md, "Session 10: ad-hoc lane"); the quiet
#: machine's `ulasan bench burst` (its lane_nice setup) decides.
REVIEWS_NICE = 0
#: How long the pipeline may make no progress at all before the run gives up.
STALL_TIMEOUT_S = 180.0


@dataclass(frozen=True)
class RunOptions:
    """What ``ulasan run`` was asked to do."""

    file: Path = PRDECT_FILE
    preset: str | None = "prdect"
    once: bool = False
    train_config: Path | None = None
    model: str | None = None
    rate: float | None = None
    max_rows: int | None = None
    topic_prefix: str = ""
    app_id: str = "ulasan-worker"
    start_stack: bool = True
    stall_timeout_s: float = STALL_TIMEOUT_S
    #: worker processes in the consumer group (None: one per core, at most the partitions)
    workers: int | None = None
    #: the drift windows and trigger cool-downs of the workers (:mod:`ulasan.profiles`)
    profile: str = "production"


@dataclass
class RunSummary:
    """The outcome of one run, also printed as the summary."""

    run_id: str
    published: int = 0
    bad_rows: int = 0
    scored: int = 0
    labels: dict[str, int] = field(default_factory=dict)
    events_per_s: float = 0.0
    latency_p50_ms: float | None = None
    latency_p99_ms: float | None = None
    rows: dict[str, int] = field(default_factory=dict)
    model: str = ""
    elapsed_s: float = 0.0


class RecordingSink:
    """Publishes through a Publisher and remembers each review's ingested_at (for latency)."""

    def __init__(self, publisher: Any) -> None:
        self.publisher = publisher
        self.ingested: dict[str, datetime] = {}

    def publish(self, topic: str, key: str, event: Event) -> None:
        self.publisher.publish(topic, key, event)
        if topic == topics.REVIEWS_RAW:
            self.ingested[key] = event.ingested_at  # type: ignore[attr-defined]

    def flush(self, timeout_s: float = 60.0) -> None:
        self.publisher.flush(timeout_s)


def new_run_id() -> str:
    return "run" + datetime.now(UTC).strftime("%Y%m%dT%H%M%S")


def start_stack(settings: Settings, console: Console) -> None:
    """``ulasan stack up`` (idempotent): services, migrations and topics."""
    with console.status("bringing the local stack up"):
        try:
            results = manager.up(settings, say=lambda line: console.log(line))
        except StackError as exc:
            raise MainJobError(f"the local stack did not come up: {exc}") from exc
    for r in results:
        console.print(f"  {r.name:<11} {r.action:<16} {r.address}", highlight=False)


def ensure_champion(settings: Settings, train_config: Path | None, console: Console) -> str:
    """The champion's ``models:/NAME/VERSION``; trains and promotes one first if there is none."""
    from trainer import registry  # noqa: PLC0415 - heavy, onnxruntime

    name = settings.mlflow.registered_model
    try:
        info = registry.champion(settings)
    except Exception as exc:  # MLflow's client raises many types; all mean "cannot ask"
        raise MainJobError(
            f"cannot ask MLflow at {settings.mlflow.uri} for the champion of {name}: {exc}"
        ) from exc
    if info is not None:
        console.print(f"model: [bold]{name}[/bold] champion is version {info.version} (reused)")
        return info.uri
    if train_config is None:
        uri = register_shipped(settings, console)
        if uri is not None:
            return uri
    what = train_config or "configs/ulasan-mini.yaml"
    console.print(f"model: {name} has no champion yet: training one ({what})")
    try:
        cfg = load_config(train_config).with_overrides({"register_model": True, "promote": True})
        result = run_training(cfg, settings, console=console, progress=True)
        info = registry.champion(settings)
    except TrainerError as exc:
        raise MainJobError(f"training the first model failed: {exc}") from exc
    if info is None:
        reason = (result.gate or {}).get("reason", "no gate decision")
        raise MainJobError(
            f"the trained model (version {result.model_version}) was not promoted: {reason}; "
            "see `ulasan train --help`, or pass --model FOLDER|models:/NAME/VERSION"
        )
    console.print(f"model: trained and promoted {name} version {info.version}")
    return info.uri


def register_shipped(settings: Settings, console: Console) -> str | None:
    """Register and promote the shipped champion (``models/ulasan-mini``); its URI, or None
    (with the reason printed) when there is none or it cannot serve this code."""
    started = time.monotonic()
    try:
        found = shipped.load(shipped.default_folder(settings))
        if found is None:
            return None
        test = found.card["scores"].get("smsa-test", {}).get("macro_f1")
        console.print(
            f"model: registering the shipped champion {found.folder} "
            f"(SmSA test macro-F1 {test:.3f}, trained in "
            f"{found.card['training']['wall_seconds'] / 60:.0f} min; see its MODEL_CARD.md)"
        )
        version, promoted = shipped.register(settings, found)
    except TrainerError as exc:
        console.print(f"[yellow]model: the shipped champion cannot be used: {exc}[/yellow]")
        return None
    if not promoted:
        console.print(f"[yellow]model: shipped version {version.version} was not promoted[/yellow]")
        return None
    took = time.monotonic() - started
    console.print(f"model: registered and promoted version {version.version} in {took:.1f} s")
    return version.uri


def count_rows(dsn: str, ids: list[str]) -> dict[str, int]:
    """Rows of ``ids`` in the three tables the worker writes."""
    out = {}
    with psycopg.connect(dsn, connect_timeout=5) as conn:
        for table in ("reviews", "text_features", "prediction_logs"):
            row = conn.execute(
                f"SELECT count(DISTINCT review_id) FROM {table} WHERE review_id = ANY(%s)",
                (ids,),
            ).fetchone()
            out[table] = int(row[0]) if row else 0
    return out


def _progress_table(
    run_id: str,
    stats: RunStats | None,
    total: int | None,
    mon: MonitorState,
    lag: int | None,
    rows: int,
    started: float,
) -> Table:
    elapsed = max(time.monotonic() - started, 1e-9)
    published = stats.published if stats else 0
    table = Table(title=f"ulasan run {run_id}", title_justify="left", show_header=False)
    table.add_column("what", style="bold")
    table.add_column("value")
    of = f" of {total}" if total else ""
    table.add_row("published", f"{published}{of} reviews ({published / elapsed:.0f}/s)")
    if stats and stats.bad_rows:
        table.add_row("bad rows", f"{len(stats.bad_rows)} skipped")
    table.add_row("scored", f"{mon.scored} ({mon.scored / elapsed:.0f}/s) on sentiment.v1")
    table.add_row("in PostgreSQL", f"{rows} prediction rows")
    table.add_row("consumer lag", "unknown" if lag is None else str(lag))
    table.add_row("labels", "  ".join(f"{label} {mon.labels.get(label, 0)}" for label in LABELS))
    p50 = percentile(mon.latencies_ms, 50)
    if p50 is not None:
        table.add_row("latency p50", f"{p50:.0f} ms")
    return table


@dataclass
class _Job:
    """One run of the main job: what it was asked, and the processes it started."""

    options: RunOptions
    settings: Settings
    console: Console
    run_id: str
    model: str
    supervisor: Supervisor
    worker: WorkerGroup
    metrics_ports: list[int]
    #: the gateway's and the UI's ports; None with --once (workers only)
    ports: Ports | None = None

    @property
    def prefix(self) -> str:
        return self.options.topic_prefix

    @property
    def log_dir(self) -> Path:
        return self.settings.state_dir / "logs"


def _ensure_job_topics(settings: Settings, prefix: str) -> None:
    kafka = settings.kafka
    ensure_topics(
        kafka.bootstrap_servers,
        [prefix + t for t in topics.all_topics_with_dlq()],
        kafka.partitions,
        kafka.replication_factor,
    )


def _add_workers(
    options: RunOptions, settings: Settings, run_id: str, model: str, supervisor: Supervisor
) -> tuple[WorkerGroup, list[int]]:
    """The consumer group serving ``model`` with the run's loop profile, supervised (restarted
    when one dies); the workers and their metrics ports (the configured port and up, or free
    ones). Not started yet."""
    n_workers = options.workers or default_workers(settings.kafka.partitions)
    ports = [free_port(settings.metrics_port + n) for n in range(n_workers)]
    overrides = {
        "ULASAN_WORKER__TOPIC_PREFIX": options.topic_prefix,
        "ULASAN_WORKER__INTRA_OP_THREADS": str(worker_threads(n_workers)),
        **profile(options.profile).worker_env(),
    }
    # with a gateway, its requests get a lane of their own (they never wait behind reviews);
    # --once serves no gateway, so one lane does everything
    lanes = not options.once
    logs = settings.state_dir / "logs"
    worker = worker_group(
        model=model,
        app_id=options.app_id,
        log_dir=logs,
        overrides=overrides | ({"ULASAN_WORKER__NICE": str(REVIEWS_NICE)} if lanes else {}),
        stem=run_id,
        ports=ports,
        lane="reviews" if lanes else None,
    )
    for w in worker.workers:
        supervisor.add(w, restart=True, essential=True)
    if not lanes:
        return worker, ports
    ports.append(free_port(settings.metrics_port + n_workers))
    lane = requests_lane(
        model=model,
        app_id=options.app_id,
        log_dir=logs,
        # one thread: a request is batch 1 to a few texts, and the cores belong to the reviews
        overrides=overrides | {"ULASAN_WORKER__INTRA_OP_THREADS": "1"},
        stem=run_id,
        port=ports[-1],
    )
    supervisor.add(lane, restart=True, essential=True)
    return WorkerGroup([*worker.workers, lane]), ports


def _add_services(job: _Job) -> None:
    """The gateway, the trainer consumer and the UI (when this installation has one),
    supervised. Not started yet."""
    options = job.options
    with job.console.status("looking for `ulasan ui`"):
        with_ui = ui_available()
    job.ports = pick_ports(with_ui=with_ui)
    spec = ServiceSpec(
        log_dir=job.log_dir,
        stem=job.run_id,
        prefix=options.topic_prefix,
        app_id=options.app_id,
        requests_group=requests_group(options.app_id),
        ports=job.ports,
        train_config=options.train_config,
    )
    job.supervisor.add(spec.gateway(), restart=True)
    # not restarted: a retrain cut short would not resume (its claim stays)
    job.supervisor.add(spec.trainer(), restart=False)
    ui = spec.ui()
    if ui is None:
        job.console.print(
            "ui: not started, this installation has no `ulasan ui` command", highlight=False
        )
    else:
        job.supervisor.add(ui, restart=True)


def _start(job: _Job) -> None:
    """Start every process, wait for the workers (and the gateway), print where things are."""
    console = job.console
    job.supervisor.start()
    started = ", ".join(
        f"{e.service.name} (pid {e.service.child.proc.pid})"
        for e in job.supervisor.entries
        if e.service.child is not None
    )
    console.print(f"started: {started}; logs in {job.log_dir}", highlight=False)
    with console.status("waiting for the workers to join their consumer group"):
        job.worker.wait_ready()
    console.print("workers: ready")
    if job.ports is not None:
        gateway = next(e.service for e in job.supervisor.entries if e.service.name == "gateway")
        with console.status("waiting for the gateway to be ready"):
            ready = wait_gateway(job.ports, gateway, job.supervisor.check)
        if not ready:
            console.print(f"[yellow]gateway: not ready yet[/yellow]; see {gateway.log_path}")
    console.print(profile(job.options.profile).describe(), highlight=False)
    console.print(Rule("addresses", align="left"))
    for line in address_lines(job.settings, job.ports, job.metrics_ports, job.log_dir):
        console.print(line, highlight=False, markup=False, soft_wrap=True)
    console.print(Rule())


@dataclass
class _Stream:
    """The replay's sink and what watches its effect: the sentiment tail and the lag."""

    spec: ReplaySpec
    total: int
    sink: RecordingSink
    monitor: SentimentMonitor
    probe: LagProbe

    def close(self) -> None:
        self.monitor.stop()
        self.probe.close()


def _open_stream(job: _Job) -> _Stream:
    """The replay spec, the rows it will publish, the publisher, and the watchers (started)."""
    options, settings, run_id = job.options, job.settings, job.run_id
    # the ratings become feedback (feedback.v1): the labels the drift and feedback triggers
    # judge the model by, and the retrain learns from
    spec = (
        replay_preset(options.preset, run_id=run_id, emit_feedback=True)
        if options.preset
        else ReplaySpec(run_id=run_id, emit_feedback=True)
    )
    total = max(count_lines(options.file) - (1 if spec.header else 0), 0)
    if options.max_rows:
        total = min(total, options.max_rows)
    publisher = Publisher(settings, topic_overrides=prefixed_topics(job.prefix))
    publisher.check_connection()
    sink = RecordingSink(publisher)
    bootstrap = settings.kafka.bootstrap_servers
    monitor = SentimentMonitor(bootstrap, job.prefix + topics.SENTIMENT, sink.ingested)
    monitor.start()
    try:
        # the topics the worker group consumes (sentiment.v1 is its output: counting it showed
        # every score as lag)
        consumed = (*configured_review_topics(), topics.FEEDBACK)
        probe = LagProbe(bootstrap, options.app_id, [job.prefix + t for t in consumed])
    except BaseException:
        monitor.stop()
        raise
    return _Stream(spec, total, sink, monitor, probe)


class _Replay(threading.Thread):
    """Replays the review file into the stream's sink; its outcome is read by the main thread."""

    def __init__(self, job: _Job, stream: _Stream) -> None:
        super().__init__(name="replay", daemon=True)
        self.job, self.stream = job, stream
        self.stats: RunStats | None = None  # set when the replay is done
        self.progress: RunStats | None = None
        self.error: BaseException | None = None

    def run(self) -> None:
        options = self.job.options
        checkpoints = PostgresCheckpoints(self.job.settings.postgres.dsn)
        try:
            self.stats = replay(
                options.file,
                self.stream.spec,
                publisher=self.stream.sink,
                checkpoints=checkpoints,
                rate=options.rate,
                max_rows=options.max_rows,
                on_progress=lambda stats, _line: setattr(self, "progress", stats),
            )
        except BaseException as exc:  # shown by the main thread
            self.error = exc
        finally:
            checkpoints.close()


class _Stall:
    """Raises :class:`MainJobError` when a progress marker stops changing for ``timeout_s``."""

    def __init__(self, job: _Job) -> None:
        self.job = job
        self.last: tuple[int, int, int] | None = None
        self.since = time.monotonic()

    def check(self, published: int, scored: int, rows: int, now: float) -> None:
        marker = (published, scored, rows)
        if marker != self.last:
            self.last, self.since = marker, now
            return
        timeout_s = self.job.options.stall_timeout_s
        if now - self.since > timeout_s:
            worker = self.job.worker
            raise MainJobError(
                f"no progress for {timeout_s:.0f}s (published {published}, "
                f"scored {scored}, rows {rows}); the worker log ({worker.log_path}) ends "
                f"with:\n{worker.log_tail()}"
            )


def _print_loop(console: Console, loop: LoopWatch | None, started: datetime) -> None:
    """The loop's new steps, each with its clock time and the time since the replay began."""
    if loop is None:
        return
    for ev in loop.drain():
        since = duration((ev.at - started).total_seconds())
        at = ev.at.astimezone().strftime("%H:%M:%S")
        line = f"loop {at} (+{since})  {ev.stage:<9} {ev.text}"
        console.print(line, highlight=False, markup=False)


def _watch(
    job: _Job, stream: _Stream, producer: _Replay, loop: LoopWatch | None, started: float
) -> None:
    """Show live progress until every published review is scored and in PostgreSQL."""
    rows, next_count = 0, 0.0
    stall = _Stall(job)
    began = datetime.now(UTC)
    with Live(console=job.console, refresh_per_second=4, transient=False) as live:
        while True:
            job.supervisor.check()
            _print_loop(job.console, loop, began)
            if producer.error is not None:
                raise producer.error
            mon = stream.monitor.snapshot()
            now = time.monotonic()
            if now >= next_count:
                ids = list(stream.sink.ingested)
                rows = count_rows(job.settings.postgres.dsn, ids)["prediction_logs"] if ids else 0
                next_count = now + 1.0
            stats = producer.stats or producer.progress
            lag = stream.probe.lag()
            live.update(_progress_table(job.run_id, stats, stream.total, mon, lag, rows, started))
            done_producing = producer.stats is not None
            published = len(stream.sink.ingested)
            if done_producing and mon.scored >= published and rows >= published:
                return
            stall.check(published, mon.scored, rows, now)
            time.sleep(0.25)


def _summarise(job: _Job, stream: _Stream, stats: RunStats, started: float) -> RunSummary:
    mon = stream.monitor.snapshot()
    ids = list(stream.sink.ingested)
    span = (mon.last_at or time.monotonic()) - started
    return RunSummary(
        run_id=job.run_id,
        published=stats.published,
        bad_rows=len(stats.bad_rows),
        scored=mon.scored,
        labels={label: mon.labels.get(label, 0) for label in LABELS},
        events_per_s=mon.scored / span if span > 0 else 0.0,
        latency_p50_ms=percentile(mon.latencies_ms, 50),
        latency_p99_ms=percentile(mon.latencies_ms, 99),
        rows=count_rows(job.settings.postgres.dsn, ids) if ids else {},
        model=", ".join(mon.model_versions) if mon.model_versions else job.model,
        elapsed_s=time.monotonic() - started,
    )


def run_main_job(
    options: RunOptions,
    settings: Settings,
    console: Console,
    *,
    on_summary: Callable[[RunSummary], None] | None = None,
) -> RunSummary:
    """Run the main job; see the module docstring. Ctrl-C (and SIGTERM, see
    :func:`ulasan.procs.interrupt_on_stop_signals`) stops every process it started."""
    run_id = new_run_id()
    profile(options.profile)  # an unknown name fails before anything starts
    if options.start_stack:
        start_stack(settings, console)
    trained = options.model or ensure_champion(settings, options.train_config, console)
    # the champion alias, not the version just found: workers follow promotions (hot reload)
    model = options.model or f"models:/{settings.mlflow.registered_model}@champion"
    _ensure_job_topics(settings, options.topic_prefix)
    supervisor = Supervisor(say=lambda line: console.print(line, highlight=False, markup=False))
    try:
        worker, ports = _add_workers(options, settings, run_id, model, supervisor)
        job = _Job(options, settings, console, run_id, trained, supervisor, worker, ports)
        if not options.once:
            _add_services(job)
        _start(job)
        return _stream_and_serve(job, on_summary)
    finally:
        with stop_signals_deferred():
            codes = supervisor.stop()
        stopped = ", ".join(f"{name} ({code})" for name, code in codes.items())
        console.print(f"stopped: {stopped}", highlight=False)


def _stream_and_serve(job: _Job, on_summary: Callable[[RunSummary], None] | None) -> RunSummary:
    """Replay the stream with live progress, print the summary, then (without --once) serve
    and show the loop until Ctrl-C."""
    stream: _Stream | None = None
    loop: LoopWatch | None = None
    try:
        stream = _open_stream(job)
        if job.ports is not None:
            loop = LoopWatch(
                bootstrap=job.settings.kafka.bootstrap_servers,
                prefix=job.prefix,
                dsn=job.settings.postgres.dsn,
                model_name=job.settings.mlflow.registered_model,
                gateway_url=job.ports.gateway_url,
            )
            loop.start()
        producer = _Replay(job, stream)
        started, began = time.monotonic(), datetime.now(UTC)
        producer.start()
        _watch(job, stream, producer, loop, started)
        assert producer.stats is not None  # _watch returns once the replay is done
        summary = _summarise(job, stream, producer.stats, started)
        print_summary(summary, producer.stats, job.console)
        if on_summary is not None:
            on_summary(summary)
        if not job.options.once:
            serve_until_interrupted(job, stream, loop, began)
            _loop_verdict(job.console, loop)
        return summary
    finally:
        if loop is not None:
            loop.stop()
        if stream is not None:
            stream.close()


def _loop_verdict(console: Console, loop: LoopWatch | None) -> None:
    """One line on the way out: how long the closed loop took, or how far it got."""
    if loop is None:
        return
    timeline = loop.timeline
    if timeline.loop_seconds is not None:
        console.print(f"closed loop: complete in {duration(timeline.loop_seconds)}")
    elif timeline.events:
        last = timeline.events[-1]
        console.print(
            f"closed loop: not complete; its last step was {last.stage}: {last.text}",
            markup=False,
        )
    else:
        console.print("closed loop: no drift report or retrain request was seen in this run")


def serve_until_interrupted(
    job: _Job, stream: _Stream, loop: LoopWatch | None, began: datetime
) -> None:
    """Keep every process serving, show what flows by and the loop's steps, until Ctrl-C."""
    console = job.console
    console.print(
        "serving: the workers keep consuming reviews.raw.v1 (publish more with "
        "`ulasan produce ...`, or predict through the gateway); press Ctrl-C to stop"
    )
    try:
        with Live(console=console, refresh_per_second=1) as live:
            while True:
                job.supervisor.check()
                _print_loop(console, loop, began)
                mon = stream.monitor.snapshot()
                table = Table(show_header=False)
                table.add_row("scored since the replay", str(mon.other_events))
                table.add_row(
                    "labels",
                    "  ".join(f"{label} {mon.other_labels.get(label, 0)}" for label in LABELS),
                )
                table.add_row("consumer lag", str(stream.probe.lag()))
                table.add_row("running", ", ".join(s.name for s in job.supervisor.running()))
                live.update(table)
                time.sleep(1.0)
    except KeyboardInterrupt:
        console.print("stopping")


def print_summary(summary: RunSummary, stats: RunStats, console: Console) -> None:
    """The summary: counts per label, throughput, latency and rows (addresses: printed when
    the processes came up)."""
    console.print()
    report_bad_rows(stats.bad_rows, show=10)
    labels = Table(title="labels", title_justify="left")
    labels.add_column("label")
    labels.add_column("reviews", justify="right")
    labels.add_column("share", justify="right")
    for label, n in summary.labels.items():
        share = n / summary.scored if summary.scored else 0.0
        labels.add_row(label, str(n), f"{share:.1%}")
    figures = Table(title="pipeline", title_justify="left", show_header=False)
    figures.add_column("what", style="bold")
    figures.add_column("value")
    figures.add_row("run id", summary.run_id)
    figures.add_row("model", summary.model)
    figures.add_row("published", f"{summary.published} reviews ({summary.bad_rows} bad rows)")
    figures.add_row("scored", f"{summary.scored}")
    figures.add_row("throughput", f"{summary.events_per_s:.0f} reviews/s end to end")
    lat = (
        f"p50 {summary.latency_p50_ms:.0f} ms, p99 {summary.latency_p99_ms:.0f} ms "
        "(ingested_at -> sentiment event produced)"
        if summary.latency_p50_ms is not None and summary.latency_p99_ms is not None
        else "n/a"
    )
    figures.add_row("latency", lat)
    figures.add_row("rows", ", ".join(f"{t} {n}" for t, n in summary.rows.items()))
    console.print(Group(labels, figures))
