"""``ulasan smoke``: one round trip through every service of a running stack, with a summary.

Publishes a few ``ReviewReceived`` events to reviews.raw.v1, reads exactly those records back,
writes them into ``reviews`` and reads the rows back, then logs an MLflow run with the
timings. Each check compares what came back with what went in; any difference is an error.
The events carry ``source="smoke"`` and ids ``smoke-<run>-<n>``, so they are easy to tell apart.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime

import psycopg
import typer
from confluent_kafka import Consumer, KafkaError, Message, Producer, TopicPartition
from psycopg.rows import dict_row
from rich.console import Console
from rich.table import Table

from deploy.local.errors import ServiceUnavailable, StackError
from schemas import codec, topics
from schemas.events import ReviewReceived
from ulasan.core.settings import Settings, redact_dsn

SMOKE_SOURCE = "smoke"
SMOKE_EXPERIMENT = "ulasan-smoke"
SAMPLES: tuple[tuple[str, int], ...] = (
    ("Aplikasinya bagus banget, pengiriman cepat dan rapi!", 5),
    ("Biasa saja, kadang lambat tapi masih bisa dipakai.", 3),
    ("Kecewa, barang rusak dan penjual tidak membalas pesan.", 1),
)

console = Console()


@dataclass
class SmokeReport:
    """What the smoke flow did: per step, a duration in milliseconds and a detail line."""

    run: str
    steps: list[tuple[str, float, str]] = field(default_factory=list)

    @contextmanager
    def step(self, name: str) -> Iterator[list[str]]:
        detail: list[str] = []
        t0 = time.perf_counter()
        yield detail
        self.steps.append((name, (time.perf_counter() - t0) * 1000, "; ".join(detail)))


def smoke_events(run: str, now: datetime | None = None) -> list[ReviewReceived]:
    """The events of one smoke run (ids ``smoke-<run>-<n>``)."""
    now = now or datetime.now(UTC)
    return [
        ReviewReceived(
            review_id=f"smoke-{run}-{n}",
            source=SMOKE_SOURCE,
            app_id="dev.ulasan.smoke",
            text=text,
            rating=rating,
            review_time=now,
            ingested_at=now,
        )
        for n, (text, rating) in enumerate(SAMPLES)
    ]


def publish(bootstrap: str, events: list[ReviewReceived]) -> dict[str, tuple[int, int]]:
    """Produce ``events`` to reviews.raw.v1 (key review_id); return id -> (partition, offset)."""
    producer = Producer(
        {"bootstrap.servers": bootstrap, "enable.idempotence": True, "client.id": "ulasan-smoke"}
    )
    delivered: dict[str, tuple[int, int]] = {}
    failed: list[str] = []

    def on_delivery(err: KafkaError | None, msg: Message) -> None:
        key = (msg.key() or b"").decode()
        if err is not None:
            failed.append(f"{key}: {err.str()}")
        else:
            delivered[key] = (msg.partition() or 0, msg.offset() or 0)

    for event in events:
        producer.produce(
            topics.REVIEWS_RAW,
            key=event.review_id.encode(),
            value=codec.encode(event),
            on_delivery=on_delivery,
        )
    left = producer.flush(30)
    if left or failed:
        raise ServiceUnavailable(
            f"kafka at {bootstrap}: {left} record(s) undelivered after 30s; errors: {failed}"
        )
    return delivered


def read_back(
    bootstrap: str, run: str, delivered: dict[str, tuple[int, int]], timeout_s: float = 30.0
) -> dict[str, ReviewReceived]:
    """Read exactly the delivered records (by partition and offset) and decode them."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"ulasan-smoke-{run}",
            "enable.auto.commit": False,
            "client.id": "ulasan-smoke",
        }
    )
    wanted = {(p, o) for p, o in delivered.values()}
    start: dict[int, int] = {}
    for partition, offset in wanted:
        start[partition] = min(offset, start.get(partition, offset))
    consumer.assign([TopicPartition(topics.REVIEWS_RAW, p, o) for p, o in start.items()])
    found: dict[str, ReviewReceived] = {}
    deadline = time.monotonic() + timeout_s
    try:
        while len(found) < len(wanted) and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            error = msg.error()
            if error is not None:
                raise ServiceUnavailable(f"kafka at {bootstrap}: {error.str()}")
            if (msg.partition(), msg.offset()) in wanted:
                event = codec.decode(msg.value(), ReviewReceived)
                found[event.review_id] = event
    finally:
        consumer.close()
    if len(found) < len(wanted):
        raise ServiceUnavailable(
            f"kafka at {bootstrap}: read back {len(found)} of {len(wanted)} records "
            f"in {timeout_s:.0f}s"
        )
    return found


UPSERT_REVIEW = """
INSERT INTO reviews (review_id, source, app_id, text, rating, review_time, ingested_at)
VALUES (%(review_id)s, %(source)s, %(app_id)s, %(text)s, %(rating)s, %(review_time)s,
        %(ingested_at)s)
ON CONFLICT (review_id) DO UPDATE SET
    source = EXCLUDED.source, app_id = EXCLUDED.app_id, text = EXCLUDED.text,
    rating = EXCLUDED.rating, review_time = EXCLUDED.review_time,
    ingested_at = EXCLUDED.ingested_at
"""


def store_and_load(dsn: str, events: list[ReviewReceived]) -> list[ReviewReceived]:
    """Upsert ``events`` into ``reviews`` and read those rows back as events."""
    fields = ("review_id", "source", "app_id", "text", "rating", "review_time", "ingested_at")
    try:
        with psycopg.connect(dsn, connect_timeout=5, row_factory=dict_row) as conn:
            with conn.cursor() as cur:
                cur.executemany(UPSERT_REVIEW, [e.model_dump(include=set(fields)) for e in events])
            rows = conn.execute(
                f"SELECT {', '.join(fields)} FROM reviews WHERE review_id = ANY(%s) "
                "ORDER BY review_id",
                ([e.review_id for e in events],),
            ).fetchall()
    except psycopg.Error as exc:
        raise ServiceUnavailable(
            f"postgres at {redact_dsn(dsn)}: {redact_dsn(str(exc).strip())}"
        ) from exc
    return [ReviewReceived.model_validate(row) for row in rows]


def log_run(tracking_uri: str, run: str, report: SmokeReport, events: int) -> str:
    """Log the smoke run (params, step timings, the report as an artifact); return its run id."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    try:
        client = MlflowClient(tracking_uri=tracking_uri)
        experiment = client.get_experiment_by_name(SMOKE_EXPERIMENT)
        experiment_id = (
            experiment.experiment_id
            if experiment is not None
            else client.create_experiment(SMOKE_EXPERIMENT)
        )
        mlrun = client.create_run(experiment_id, run_name=f"smoke-{run}", tags={"smoke": run})
        run_id = str(mlrun.info.run_id)
        client.log_param(run_id, "events", events)
        client.log_param(run_id, "topic", topics.REVIEWS_RAW)
        for name, ms, _ in report.steps:
            client.log_metric(run_id, f"{name}_ms", ms)
        client.log_dict(
            run_id,
            {
                "run": run,
                "steps": [{"step": n, "ms": ms, "detail": d} for n, ms, d in report.steps],
            },
            "smoke_report.json",
        )
        client.set_terminated(run_id)
        logged = client.get_run(run_id)
        artifacts = [a.path for a in client.list_artifacts(run_id)]
    except MlflowException as exc:
        raise ServiceUnavailable(f"mlflow at {tracking_uri}: {exc.message}") from exc
    if logged.data.params.get("events") != str(events) or "smoke_report.json" not in artifacts:
        raise ServiceUnavailable(f"mlflow at {tracking_uri}: run {run_id} did not read back")
    return run_id


def run_smoke(settings: Settings, say: Callable[[str], None] = lambda _: None) -> SmokeReport:
    """The smoke flow against the services of ``settings``; raises a ``StackError`` on failure."""
    run = uuid.uuid4().hex[:10]
    report = SmokeReport(run)
    events = smoke_events(run)
    bootstrap = settings.kafka.bootstrap_servers
    say(f"publishing {len(events)} events to {topics.REVIEWS_RAW}")
    with report.step("kafka_publish") as detail:
        delivered = publish(bootstrap, events)
        partitions = sorted({p for p, _ in delivered.values()})
        detail.append(f"{len(delivered)} records to partitions {partitions}")
    with report.step("kafka_read_back") as detail:
        found = read_back(bootstrap, run, delivered)
        if [found.get(e.review_id) for e in events] != events:
            raise ServiceUnavailable("kafka: the records read back differ from those published")
        detail.append(f"{len(found)} records decoded and equal")
    with report.step("postgres_write_read") as detail:
        rows = store_and_load(settings.postgres.dsn, events)
        if rows != sorted(events, key=lambda e: e.review_id):
            raise ServiceUnavailable("postgres: the rows read back differ from those written")
        detail.append(f"{len(rows)} rows upserted into reviews and equal")
    say(f"logging an MLflow run to {settings.mlflow.uri}")
    import mlflow  # noqa: F401  (imported here so its import time is not the step's)

    with report.step("mlflow_log_run") as detail:
        run_id = log_run(settings.mlflow.uri, run, report, len(events))
        detail.append(f"run {run_id} in experiment {SMOKE_EXPERIMENT}")
    return report


def _print(report: SmokeReport, settings: Settings) -> None:
    table = Table(title=f"smoke run {report.run}", box=None, pad_edge=False)
    table.add_column("step")
    table.add_column("ms", justify="right")
    table.add_column("result")
    for name, ms, detail in report.steps:
        table.add_row(name, f"{ms:.0f}", detail)
    console.print(table)
    console.print(
        f"[green]smoke passed[/green]: Kafka, PostgreSQL and MLflow ({settings.mlflow.uri})"
    )


def smoke_command() -> None:
    """Round-trip a few reviews through Kafka, PostgreSQL and MLflow of the running stack."""
    settings = Settings()
    try:
        report = run_smoke(settings, say=lambda line: console.print(f"[dim]… {line}[/dim]"))
    except (StackError, codec.CodecError) as exc:
        console.print(f"[red]smoke failed:[/red] {exc}", highlight=False)
        console.print("is the stack up? `ulasan stack status` shows what runs")
        raise typer.Exit(1) from None
    _print(report, settings)
