"""``ulasan bench pipeline``: reviews in Kafka to rows in PostgreSQL, beside the bare engine.

Every run gets its own topics (a unique prefix), consumer group and database, so results are
clean. The benchmark database's prediction_logs gets one extra column, ``bench_committed_at
DEFAULT clock_timestamp()``, set as the sink inserts each row inside its write transaction:
per-event latency is that minus the review's ``ingested_at`` (stamped by the producer), and
throughput is events / (last row written - first review ingested). Warm-up reviews load the
model and fill the caches first and are not measured. The engine figure is the better of
``bench engine``'s length-sorted runs of the same serving folder over the pipeline's own text
pool (sorted over all its texts, not per micro-batch) at the worker's micro-batch size and at its
ONNX Runtime call size, each run ``ENGINE_ROUNDS`` times: one short run on a 2-core machine can
land on a busy moment, and a low baseline flatters the ratio.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from producers.publish import Publisher, prefixed_topics
from schemas import topics
from schemas.events import ReviewReceived
from ulasan.bench_profile import Profiler
from ulasan.core.kafka_admin import ensure_topics
from ulasan.core.settings import Settings
from ulasan.errors import BenchError
from ulasan.pipeline_tools import WorkerGroup, percentile, worker_group
from ulasan.proc_cpu import CpuWindow
from ulasan.sandbox import create_database, delete_topics, drop_database

WARMUP_EVENTS = 200


def _count(dsn: str, like: str) -> int:
    with psycopg.connect(dsn, connect_timeout=5) as conn:
        row = conn.execute(
            "SELECT count(*) FROM prediction_logs WHERE review_id LIKE %s", (like,)
        ).fetchone()
    return int(row[0]) if row else 0


def _wait_rows(
    dsn: str, like: str, n: int, worker: WorkerGroup, stall_s: float, poll_s: float = 0.2
) -> None:
    last, since = -1, time.monotonic()
    while True:
        worker.check_alive()
        have = _count(dsn, like)
        if have >= n:
            return
        if have != last:
            last, since = have, time.monotonic()
        elif time.monotonic() - since > stall_s:
            raise BenchError(
                f"no new rows for {stall_s:.0f}s ({have} of {n}); worker log "
                f"{worker.log_path}:\n{worker.log_tail()}"
            )
        time.sleep(poll_s)


@dataclass
class _PipelineRun:
    """One benchmark run: its settings and knobs, and the private topics, group and database."""

    settings: Settings
    folder: Path
    events: int
    workers: int
    threads: int | None
    stall_s: float
    say: Callable[[str], None]
    #: where py-spy's files go (None: no profile)
    profile: Path | None = None
    suffix: str = field(default_factory=lambda: uuid.uuid4().hex[:10])
    #: where the CPU went while the measured reviews flowed (set by ``_measure``)
    cpu: dict[str, Any] | None = None

    @property
    def prefix(self) -> str:
        return f"bench-{self.suffix}."

    @property
    def dbname(self) -> str:
        return f"bench_{self.suffix}"

    @property
    def app_id(self) -> str:
        return f"ulasan-bench-{self.suffix}"

    @property
    def dsn(self) -> str:
        pg = self.settings.postgres
        return f"postgresql://{pg.user}@{pg.host}:{pg.port}/{self.dbname}"


def _start_workers(run: _PipelineRun) -> WorkerGroup:
    """The consumer group on the run's topics and database (not started yet)."""
    overrides = {"ULASAN_WORKER__TOPIC_PREFIX": run.prefix, "ULASAN_POSTGRES__DBNAME": run.dbname}
    if run.threads is not None:
        overrides["ULASAN_WORKER__INTRA_OP_THREADS"] = str(run.threads)
    return worker_group(
        model=str(run.folder),
        app_id=run.app_id,
        overrides=overrides,
        log_dir=run.settings.state_dir / "logs",
        stem=f"bench-pipeline-{run.suffix}",
        ports=[0] * run.workers,
    )


def _prepare(run: _PipelineRun) -> None:
    """The run's database (migrated, with the ``bench_committed_at`` column) and topics."""
    run.say(f"database {run.dbname}, topics {run.prefix}*")
    create_database(run.settings.postgres.dsn, run.dbname, run.dsn)
    with psycopg.connect(run.dsn, autocommit=True) as conn:
        conn.execute(
            "ALTER TABLE prediction_logs ADD COLUMN bench_committed_at timestamptz "
            "NOT NULL DEFAULT clock_timestamp()"
        )
    kafka = run.settings.kafka
    ensure_topics(
        kafka.bootstrap_servers,
        [run.prefix + t for t in topics.all_topics_with_dlq()],
        kafka.partitions,
        kafka.replication_factor,
    )


def _publish(publisher: Publisher, id_prefix: str, texts: Sequence[str]) -> None:
    for i, text in enumerate(texts):
        publisher.publish_review(
            ReviewReceived(review_id=f"{id_prefix}-{i}", source="bench", text=text)
        )
    publisher.flush()


def _measure(
    run: _PipelineRun, worker: WorkerGroup, pool: Sequence[str], profiler: Profiler | None
) -> list[Any]:
    """Warm up, then publish the measured reviews and wait for their rows (``profiler``
    recording the workers meanwhile); per row the latency (ms), the review's ingested_at and
    the row's commit time (epoch seconds)."""
    # log_level 4: no notice when the topics are deleted at the end under a live producer
    publisher = Publisher(
        run.settings, topic_overrides=prefixed_topics(run.prefix), config={"log_level": 4}
    )
    publisher.check_connection()
    run.say(f"warming up with {WARMUP_EVENTS} reviews")
    _publish(publisher, "warm", [pool[i % len(pool)] for i in range(WARMUP_EVENTS)])
    _wait_rows(run.dsn, "warm-%", WARMUP_EVENTS, worker, run.stall_s)
    if profiler is not None:
        run.say(f"recording the workers with py-spy into {profiler.out}")
        profiler.start()
    pids = {f"worker-{i}": pid for i, pid in enumerate(worker.pids())} | {"bench": os.getpid()}
    try:
        with CpuWindow(pids) as cpu:
            run.say(f"publishing {run.events} reviews")
            _publish(publisher, "bench", [pool[i % len(pool)] for i in range(run.events)])
            _wait_rows(run.dsn, "bench-%", run.events, worker, run.stall_s)
        run.cpu = cpu.result()
    finally:
        if profiler is not None:
            profiler.stop()
    with psycopg.connect(run.dsn) as conn:
        return conn.execute(
            "SELECT extract(epoch FROM p.bench_committed_at - r.ingested_at) * 1000, "
            "extract(epoch FROM r.ingested_at), extract(epoch FROM p.bench_committed_at) "
            "FROM prediction_logs p JOIN reviews r USING (review_id) "
            "WHERE p.review_id LIKE 'bench-%'"
        ).fetchall()


def _cleanup(run: _PipelineRun) -> None:
    """Remove the run's topics (its own and its consumer group's) and its database."""
    try:
        delete_topics(run.settings.kafka.bootstrap_servers, (run.prefix, run.app_id))
        drop_database(run.settings.postgres.dsn, run.dbname)
    except Exception as exc:  # noqa: BLE001 - cleanup must not hide the result or the error
        run.say(f"cleanup failed: {exc}")


#: the texts the pipeline's reviews are drawn from (the engine baseline runs the same pool)
POOL_TEXTS = 1260
#: runs of the engine baseline per batch size; the best counts
ENGINE_ROUNDS = 3


def _best_engine(
    folder: Path, sizes: Sequence[int], engine_texts: int, say: Callable[[str], None]
) -> tuple[float, int, list[float]]:
    """The engine's best length-sorted throughput over the whole text set at each batch size
    (the worker's micro-batch and its ONNX Runtime call size), ``ENGINE_ROUNDS`` runs each:
    (texts/s, batch size, every run's texts/s)."""
    from trainer.bench_engine import sorted_throughput  # noqa: PLC0415 - heavy, onnxruntime

    sizes = sorted(set(sizes))
    say(f"bare engine on the same model ({engine_texts} texts, batches {sizes}, x{ENGINE_ROUNDS})")
    runs = sorted_throughput(folder, n_texts=engine_texts, batch_sizes=sizes, rounds=ENGINE_ROUNDS)
    best_tps, best_batch = max((tps, size) for size, every in runs.items() for tps in every)
    return best_tps, best_batch, [tps for size in sizes for tps in runs[size]]


def run_pipeline_bench(
    settings: Settings,
    *,
    folder: Path,
    events: int,
    say: Callable[[str], None] = lambda _: None,
    stall_s: float = 120.0,
    engine_texts: int = POOL_TEXTS,
    workers: int = 1,
    threads: int | None = None,
    profile: Path | None = None,
) -> dict[str, Any]:
    """Measure the pipeline on ``folder`` (a serving folder) with ``events`` reviews through
    ``workers`` worker processes in one consumer group (``threads``: ONNX Runtime threads per
    worker, None = its default). ``profile``: a folder for py-spy's recordings of the workers
    while the measured reviews flow; the result then has a ``profile`` (time per stage)."""
    if workers < 1:
        raise BenchError(f"workers must be >= 1, got {workers}")
    # the worker settings import the stream processors (onnxruntime, scipy)
    from stream_processors.settings import WorkerSettings  # noqa: PLC0415 - heavy
    from trainer.bench_engine import bench_texts  # noqa: PLC0415 - heavy, onnxruntime

    run = _PipelineRun(settings, folder, events, workers, threads, stall_s, say, profile)
    config = WorkerSettings().worker  # as the workers read it (ULASAN_WORKER__* included)
    rows, profiler = _run_workers(run, bench_texts(POOL_TEXTS))
    result = _result(run, rows)
    engine_tps, engine_batch, engine_runs = _best_engine(
        folder, [config.max_batch, config.inference_batch], engine_texts, say
    )
    result["engine_texts_per_s"] = round(engine_tps, 1)
    result["engine_batch"] = engine_batch
    result["engine_runs_texts_per_s"] = engine_runs
    result["ratio"] = round(result["events_per_s"] / engine_tps, 3) if engine_tps else None
    result["workers"] = workers
    result["max_batch"] = config.max_batch
    # one agent cleans and scores (the default) or the infer agent reads reviews.clean.v1
    result["clean_and_score"] = config.clean_and_score
    result["cpu"] = run.cpu
    if profiler is not None:
        result["profile"] = profiler.result(events)
    return result


def _run_workers(run: _PipelineRun, pool: Sequence[str]) -> tuple[list[Any], Profiler | None]:
    """Start the workers on fresh topics and database, measure, clean up: the rows of
    :func:`_measure` and the profiler that recorded the workers (if asked for)."""
    worker = _start_workers(run)
    profiler: Profiler | None = None
    try:
        _prepare(run)
        run.say(f"starting {run.workers} worker(s) in one consumer group")
        worker.start()
        worker.wait_ready()
        if run.profile is not None:
            profiler = Profiler(run.profile, worker.pids())
        rows = _measure(run, worker, pool, profiler)
    finally:
        worker.stop()
        _cleanup(run)
    return rows, profiler


def _result(run: _PipelineRun, rows: list[Any]) -> dict[str, Any]:
    """Throughput and latency of the measured rows (the engine figures are added after)."""
    if len(rows) != run.events:
        raise BenchError(f"expected {run.events} joined rows, found {len(rows)}")
    latencies = [float(r[0]) for r in rows]
    span = max(float(r[2]) for r in rows) - min(float(r[1]) for r in rows)
    events_per_s = run.events / span if span > 0 else 0.0
    return {
        "events": run.events,
        "events_per_s": round(events_per_s, 1),
        "latency_p50_ms": round(percentile(latencies, 50) or 0.0, 1),
        "latency_p99_ms": round(percentile(latencies, 99) or 0.0, 1),
    }
