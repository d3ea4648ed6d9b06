"""``ulasan bench pipeline``: reviews in Kafka to rows in PostgreSQL, beside the bare engine.

Every run gets its own topics (a unique prefix), consumer group and database, so results are
clean. The benchmark database's prediction_logs gets one extra column, ``bench_committed_at
DEFAULT clock_timestamp()``, set as the sink inserts each row inside its write transaction:
per-event latency is that minus the review's ``ingested_at`` (stamped by the producer), and
throughput is events / (last row written - first review ingested). Warm-up reviews load the
model and fill the caches first and are not measured. The engine figure is the better of
``bench engine``'s length-sorted runs of the same serving folder (sorted over all its texts, not
per micro-batch) at the worker's micro-batch size and at its ONNX Runtime call size.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from schemas import topics
from schemas.events import ReviewReceived
from ulasan.core.settings import Settings
from ulasan.errors import BenchError
from ulasan.pipeline_tools import WorkerGroup, WorkerProcess, percentile, worker_env

WARMUP_EVENTS = 200


def _count(dsn: str, like: str) -> int:
    import psycopg

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


def run_pipeline_bench(
    settings: Settings,
    *,
    folder: Path,
    events: int,
    say: Callable[[str], None] = lambda _: None,
    stall_s: float = 120.0,
    engine_texts: int = 256,
    workers: int = 1,
    threads: int | None = None,
) -> dict[str, Any]:
    """Measure the pipeline on ``folder`` (a serving folder) with ``events`` reviews through
    ``workers`` worker processes in one consumer group (``threads``: ONNX Runtime threads per
    worker, None = its default)."""
    if workers < 1:
        raise BenchError(f"workers must be >= 1, got {workers}")
    import psycopg

    from deploy.local.database import migrate
    from producers.publish import Publisher, prefixed_topics
    from stream_processors.settings import WorkerConfig
    from trainer.bench_engine import bench_texts, run_engine_bench
    from ulasan.core.kafka_admin import admin_client, ensure_topics

    suffix = uuid.uuid4().hex[:10]
    prefix, dbname, app_id = f"bench-{suffix}.", f"bench_{suffix}", f"ulasan-bench-{suffix}"
    pg = settings.postgres
    dsn = f"postgresql://{pg.user}@{pg.host}:{pg.port}/{dbname}"
    batch, call_batch = WorkerConfig().max_batch, WorkerConfig().inference_batch
    pool = bench_texts(1260)
    texts = [pool[i % len(pool)] for i in range(events)]
    env = {"ULASAN_WORKER__TOPIC_PREFIX": prefix, "ULASAN_POSTGRES__DBNAME": dbname}
    if threads is not None:
        env["ULASAN_WORKER__INTRA_OP_THREADS"] = str(threads)
    group = [
        WorkerProcess(
            ["--model", str(folder), "--metrics-port", "0", "--app-id", app_id],
            worker_env(env),
            settings.state_dir / "logs" / f"bench-pipeline-{suffix}-worker-{n}.log",
        )
        for n in range(workers)
    ]
    worker = WorkerGroup(group)
    names = [prefix + t for t in topics.all_topics_with_dlq()]
    try:
        say(f"database {dbname}, topics {prefix}*")
        with psycopg.connect(pg.dsn, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{dbname}"')
        migrate(dsn)
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(
                "ALTER TABLE prediction_logs ADD COLUMN bench_committed_at timestamptz "
                "NOT NULL DEFAULT clock_timestamp()"
            )
        ensure_topics(
            settings.kafka.bootstrap_servers,
            names,
            settings.kafka.partitions,
            settings.kafka.replication_factor,
        )
        say(f"starting {workers} worker(s) in one consumer group")
        worker.start()
        worker.wait_ready()
        # log_level 4: no notice when the topics are deleted at the end under a live producer
        publisher = Publisher(
            settings, topic_overrides=prefixed_topics(prefix), config={"log_level": 4}
        )
        publisher.check_connection()
        say(f"warming up with {WARMUP_EVENTS} reviews")
        for i in range(WARMUP_EVENTS):
            publisher.publish_review(
                ReviewReceived(review_id=f"warm-{i}", source="bench", text=pool[i % len(pool)])
            )
        publisher.flush()
        _wait_rows(dsn, "warm-%", WARMUP_EVENTS, worker, stall_s)
        say(f"publishing {events} reviews")
        for i, text in enumerate(texts):
            publisher.publish_review(
                ReviewReceived(review_id=f"bench-{i}", source="bench", text=text)
            )
        publisher.flush()
        _wait_rows(dsn, "bench-%", events, worker, stall_s)
        with psycopg.connect(dsn) as conn:
            rows = conn.execute(
                "SELECT extract(epoch FROM p.bench_committed_at - r.ingested_at) * 1000, "
                "extract(epoch FROM r.ingested_at), extract(epoch FROM p.bench_committed_at) "
                "FROM prediction_logs p JOIN reviews r USING (review_id) "
                "WHERE p.review_id LIKE 'bench-%'"
            ).fetchall()
    finally:
        worker.stop()
        try:
            admin = admin_client(settings.kafka.bootstrap_servers)
            doomed = [
                t for t in admin.list_topics(timeout=10).topics if t.startswith((prefix, app_id))
            ]
            if doomed:
                for fut in admin.delete_topics(doomed, operation_timeout=30).values():
                    fut.result()
            with psycopg.connect(pg.dsn, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
        except Exception as exc:  # noqa: BLE001 - cleanup must not hide the result or the error
            say(f"cleanup failed: {exc}")
    if len(rows) != events:
        raise BenchError(f"expected {events} joined rows, found {len(rows)}")
    latencies = [float(r[0]) for r in rows]
    span = max(float(r[2]) for r in rows) - min(float(r[1]) for r in rows)
    events_per_s = events / span if span > 0 else 0.0

    # The engine's best length-sorted throughput over the whole text set, at the worker's
    # micro-batch size and at its ONNX Runtime call size: the ratio is against the better one.
    engine_tps, engine_batch = 0.0, batch
    for size in sorted({batch, call_batch}):
        say(f"bare engine on the same model ({engine_texts} texts, batch {size})")
        engine = run_engine_bench(folder, None, n_texts=engine_texts, batch_size=size)
        for r in engine["runs"]:
            if (
                r["batch"] == size
                and r["padding"] == "length-sorted"
                and r["texts_per_s"] > engine_tps
            ):
                engine_tps, engine_batch = float(r["texts_per_s"]), size
    return {
        "events": events,
        "events_per_s": round(events_per_s, 1),
        "latency_p50_ms": round(percentile(latencies, 50) or 0.0, 1),
        "latency_p99_ms": round(percentile(latencies, 99) or 0.0, 1),
        "engine_texts_per_s": round(engine_tps, 1),
        "engine_batch": engine_batch,
        "ratio": round(events_per_s / engine_tps, 3) if engine_tps else None,
        "workers": workers,
    }
