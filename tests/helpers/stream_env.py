"""A private corner of the real local stack for stream tests: own topics, own database, workers.

Every :class:`StreamEnv` gets a unique topic prefix (so its topics and consumer group collide with
nobody), a fresh PostgreSQL database with the migrations applied, and starts ``ulasan worker``
as real subprocesses pointed at them through ``ULASAN_*`` environment overrides.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import psycopg
from confluent_kafka import Consumer, Producer, TopicPartition

from deploy.local.database import migrate
from schemas import topics
from schemas.codec import decode
from schemas.events import DeadLetter, SentimentScored
from stream_processors.settings import configured_review_topics
from tests.helpers.stream_checks import (
    SentimentCopies,
    assert_committed_at_end,
    assert_one_row_per_published_id,
    assert_sentiment_bounded,
    sentiment_copies,
)
from ulasan.core.kafka_admin import admin_client, ensure_topics
from ulasan.core.settings import Settings
from ulasan.procs import ULASAN_BIN, Child, child_env, free_port, spawn

__all__ = ["ULASAN", "BackgroundProducer", "StreamEnv", "Worker", "free_port", "wait_until"]

T = TypeVar("T")
ULASAN = ULASAN_BIN
TABLES = ("reviews", "text_features", "prediction_logs")


def wait_until(check: Callable[[], T], timeout_s: float, what: str, interval_s: float = 0.25) -> T:
    """Poll ``check`` until it returns something truthy; fail with ``what`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {what} (last: {last!r})")


def review_payload(i: int, *, text: str | None = None, **extra: Any) -> bytes:
    body = {
        "review_id": f"rev-{i:06d}",
        "source": "test",
        "app_id": "com.example",
        "text": text
        if text is not None
        else f"Aplikasi nomor {i} bagus sekali, tapi kadang lambat",
        "rating": 1 + i % 5,
        **extra,
    }
    return json.dumps(body).encode()


@dataclass
class Worker(Child):
    """One ``ulasan worker`` subprocess, its log file and its metrics port."""

    metrics_port: int

    def stop(self, timeout_s: float = 60.0, kill_wait_s: float = 30.0) -> int:
        """SIGTERM and wait for a clean exit; SIGKILL if it does not come (and fail)."""
        if not self.terminate(timeout_s, kill_wait_s):
            raise AssertionError(
                f"worker {self.name} ignored SIGTERM for {timeout_s}s:\n{self.log()[-3000:]}"
            )
        return self.proc.wait()


@dataclass
class StreamEnv:
    """Topics ``<prefix>reviews.raw.v1`` etc., database ``dbname``, and the workers started."""

    settings: Settings
    model_dir: Path
    workdir: Path
    prefix: str = field(default_factory=lambda: f"t{uuid.uuid4().hex[:10]}.")
    workers: list[Worker] = field(default_factory=list)
    pg_port: int | None = None
    partitions: int = 6

    def __post_init__(self) -> None:
        self.dbname = "stream_" + self.prefix.strip(".")
        self.app_id = f"ulasan-test-{self.prefix.strip('.')}"

    # -- topics and database ----------------------------------------------------------------
    def topic(self, canonical: str) -> str:
        return self.prefix + canonical

    @property
    def topic_names(self) -> list[str]:
        raw, clean, sent = (
            self.topic(t) for t in (topics.REVIEWS_RAW, topics.REVIEWS_CLEAN, topics.SENTIMENT)
        )
        return [raw, clean, sent, topics.dlq(raw), topics.dlq(clean), topics.dlq(sent)]

    @property
    def bootstrap(self) -> str:
        return self.settings.kafka.bootstrap_servers

    @property
    def dsn(self) -> str:
        pg = self.settings.postgres
        port = self.pg_port or pg.port
        return f"postgresql://{pg.user}@{pg.host}:{port}/{self.dbname}"

    def admin_dsn(self) -> str:
        pg = self.settings.postgres
        port = self.pg_port or pg.port
        return f"postgresql://{pg.user}@{pg.host}:{port}/{pg.dbname}"

    def create(self, *, topic_names: list[str] | None = None) -> None:
        """Create the topics (all of them unless ``topic_names``) and the migrated database."""

        ensure_topics(self.bootstrap, topic_names or self.topic_names, self.partitions, 1)
        with psycopg.connect(self.admin_dsn(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{self.dbname}"')
        migrate(self.dsn)

    def destroy(self) -> None:

        for w in self.workers:
            w.kill()
        try:
            admin = admin_client(self.bootstrap)
            # the workers create the rest of their topics under the same prefix
            mine = {t for t in admin.list_topics(timeout=10).topics if t.startswith(self.prefix)}
            doomed = sorted(mine | set(self.topic_names))
            for fut in admin.delete_topics(doomed, operation_timeout=30).values():  # type: ignore[attr-defined]
                fut.result()
        except Exception as exc:  # noqa: BLE001 - cleanup must not hide the test's own failure
            print(f"cleanup: deleting topics failed: {exc}")
        try:
            with psycopg.connect(self.admin_dsn(), autocommit=True, connect_timeout=5) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{self.dbname}" WITH (FORCE)')
        except Exception as exc:  # noqa: BLE001
            print(f"cleanup: dropping {self.dbname} failed: {exc}")

    # -- workers ------------------------------------------------------------------------------
    def env(self, **extra: str) -> dict[str, str]:
        """This process's environment without its ``ULASAN_*`` settings, pointed at the topics,
        the database and the model of this env, and ``extra`` on top."""
        return child_env(
            {
                "ULASAN_KAFKA__BOOTSTRAP_SERVERS": self.bootstrap,
                "ULASAN_KAFKA__PARTITIONS": str(self.partitions),
                "ULASAN_POSTGRES__HOST": self.settings.postgres.host,
                "ULASAN_POSTGRES__PORT": str(self.pg_port or self.settings.postgres.port),
                "ULASAN_POSTGRES__USER": self.settings.postgres.user,
                "ULASAN_POSTGRES__DBNAME": self.dbname,
                "ULASAN_STATE_DIR": str(self.workdir / "state"),
                "ULASAN_WORKER__APP_ID": self.app_id,
                "ULASAN_WORKER__TOPIC_PREFIX": self.prefix,
                "ULASAN_WORKER__MODEL": str(self.model_dir),
                "ULASAN_WORKER__COMMIT_INTERVAL_S": "0.5",
                "ULASAN_WORKER__SESSION_TIMEOUT_S": "6",
                "ULASAN_WORKER__HEARTBEAT_INTERVAL_S": "1",
                "ULASAN_WORKER__PG_RETRY_MAX_S": "2",
                "ULASAN_WORKER__LAG_INTERVAL_S": "1",
                "ULASAN_WORKER__INTRA_OP_THREADS": "1",
                **extra,
            },
            inherit_settings=False,
        )

    def start_worker(self, name: str = "w1", **extra_env: str) -> Worker:
        port = free_port()
        log_path = self.workdir / f"worker-{name}-{len(self.workers)}.log"
        proc = spawn(
            ["worker", "--metrics-port", str(port)],
            env=self.env(**extra_env),
            log_path=log_path,
            cwd=self.workdir,
        )
        worker = Worker(name, proc, log_path, port)
        self.workers.append(worker)
        return worker

    def wait_assigned(self, worker: Worker, timeout_s: float = 90.0) -> None:
        """Until the worker's consumer holds partitions (its lag gauge names some)."""

        def assigned() -> bool:
            if not worker.alive():
                raise AssertionError(f"worker {worker.name} exited:\n{worker.log()[-4000:]}")
            return 'ulasan_consumer_lag{partition="' in self.metrics(worker)

        wait_until(assigned, timeout_s, f"worker {worker.name} to get partitions")

    def metrics(self, worker: Worker) -> str:

        try:
            return httpx.get(f"http://127.0.0.1:{worker.metrics_port}/metrics", timeout=2).text
        except httpx.HTTPError:
            return ""

    # -- data in and out ----------------------------------------------------------------------
    def produce(self, payloads: Iterable[tuple[bytes | None, bytes]]) -> int:

        producer = Producer({"bootstrap.servers": self.bootstrap, "linger.ms": 5, "acks": "all"})
        n = 0
        for key, value in payloads:
            producer.produce(self.topic(topics.REVIEWS_RAW), key=key, value=value)
            n += 1
            if n % 1000 == 0:
                producer.poll(0)
        left = producer.flush(30)
        assert left == 0, f"{left} records were not delivered to Kafka"
        return n

    def produce_to(self, topic: str, records: Iterable[tuple[bytes | None, bytes]]) -> int:
        """Publish ``records`` (key, value) to ``topic`` (a full name) and wait for delivery."""
        producer = Producer({"bootstrap.servers": self.bootstrap, "acks": "all"})
        n = 0
        for key, value in records:
            producer.produce(topic, key=key, value=value)
            n += 1
        left = producer.flush(30)
        assert left == 0, f"{left} records were not delivered to Kafka"
        return n

    def assert_committed(self, *canonical: str, timeout_s: float = 30.0) -> None:
        """The worker group's committed offsets reached the log end of these topics."""
        assert_committed_at_end(
            self.bootstrap, self.app_id, [self.topic(t) for t in canonical], timeout_s
        )

    def produce_reviews(self, start: int, stop: int) -> int:
        return self.produce(
            (f"rev-{i:06d}".encode(), review_payload(i)) for i in range(start, stop)
        )

    def count(self, table: str) -> int:

        with psycopg.connect(self.dsn, connect_timeout=5) as conn:
            row = conn.execute(f"SELECT count(*) FROM {table}").fetchone()  # noqa: S608
            return int(row[0]) if row else 0

    def counts(self) -> dict[str, int]:
        return {t: self.count(t) for t in TABLES}

    def wait_rows(self, n: int, timeout_s: float) -> dict[str, int]:
        def done() -> dict[str, int] | None:
            for w in self.workers:
                if w.proc.poll() not in (None, -9, -15) and w.proc.returncode != 0:
                    raise AssertionError(f"worker {w.name} died:\n{w.log()[-4000:]}")
            c = self.counts()
            return c if all(v >= n for v in c.values()) else None

        try:
            return wait_until(done, timeout_s, f"{n} rows in each of {TABLES}", interval_s=0.5)
        except AssertionError as exc:
            raise AssertionError(
                f"{exc}; counts {self.counts()}\n{self.offsets_report()}\n"
                f"{self.missing_report()}\n{self.log_report()}"
            ) from None

    def offsets_report(self) -> str:
        """Per partition of the review topics: the group's committed offset and the log end.

        Committed == end with rows missing means records were lost; committed < end with an
        idle worker means a stalled partition (records fetched but never processed).
        """

        consumer = Consumer({"bootstrap.servers": self.bootstrap, "group.id": self.app_id})
        lines = ["offsets (partition: committed/end):"]
        try:
            for canonical in configured_review_topics():
                name = self.topic(canonical)
                tps = [TopicPartition(name, p) for p in range(self.partitions)]
                committed = consumer.committed(tps, timeout=10)
                cells = []
                for tp in committed:
                    _, end = consumer.get_watermark_offsets(tp, timeout=10)
                    cells.append(f"{tp.partition}: {tp.offset}/{end}")
                lines.append(f"  {name}: " + ", ".join(cells))
        except Exception as exc:  # noqa: BLE001 - a diagnostic must not hide the real failure
            lines.append(f"  (not available: {exc!r})")
        finally:
            consumer.close()
        return "\n".join(lines)

    def missing_report(self) -> str:
        """Where the reviews missing from PostgreSQL are: raw, clean and sentiment records
        (partition@offset) holding each review id, so a failure says which stage lost them."""

        def located(canonical: str) -> dict[str, list[str]]:
            name = self.topic(canonical)
            found: dict[str, list[str]] = {}
            consumer = Consumer({"bootstrap.servers": self.bootstrap, "group.id": "diag"})
            try:
                for p in range(self.partitions):
                    low, high = consumer.get_watermark_offsets(TopicPartition(name, p), timeout=10)
                    consumer.assign([TopicPartition(name, p, low)])
                    seen = low
                    deadline = time.monotonic() + 20
                    while seen < high and time.monotonic() < deadline:
                        for m in consumer.consume(1000, timeout=1):
                            if m.error():
                                continue
                            seen = m.offset() + 1
                            try:
                                rid = json.loads(m.value()).get("review_id")
                            except ValueError:
                                continue
                            found.setdefault(str(rid), []).append(f"{p}@{m.offset()}")
            finally:
                consumer.close()
            return found

        try:
            with psycopg.connect(self.dsn, connect_timeout=5) as conn:
                stored = {r[0] for r in conn.execute("SELECT review_id FROM reviews")}
            raw = located(topics.REVIEWS_RAW)
            clean = located(topics.REVIEWS_CLEAN)
            scored = located(topics.SENTIMENT)
        except Exception as exc:  # noqa: BLE001 - a diagnostic must not hide the real failure
            return f"missing reviews: not available ({exc!r})"
        missing = sorted(set(raw) - stored)
        lines = [f"missing reviews ({len(missing)} of {len(raw)} in the raw topic):"]
        for rid in missing[:20]:
            lines.append(
                f"  {rid}: raw {raw.get(rid)}, clean {clean.get(rid)}, sentiment {scored.get(rid)}"
            )
        return "\n".join(lines)

    def log_report(self) -> str:
        """The workers' notable log lines (errors, crashes, rebalances), then each log's tail."""
        notable = (
            *("ERROR", "Traceback", "rash", "Skipping", "Discarded", "dead letter", "Joined"),
            *("Heartbeat failed", "Revoking", "WAITING", "failed (attempt"),
        )
        parts = []
        for w in self.workers:
            lines = w.log().splitlines()
            picked = [ln for ln in lines if any(k in ln for k in notable)][:40]
            parts.append(f"--- {w.name}: notable\n" + "\n".join(picked))
            parts.append(f"--- {w.name}: tail\n" + "\n".join(lines[-15:]))
        return "\n".join(parts)

    def read_topic(self, topic: str, expect: int, timeout_s: float = 60.0) -> list[bytes]:
        """Every record value of ``topic`` from the beginning: at least ``expect`` of them."""

        consumer = Consumer(
            {
                "bootstrap.servers": self.bootstrap,
                "group.id": f"reader-{uuid.uuid4().hex}",
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
                "enable.partition.eof": True,
            }
        )
        consumer.subscribe([topic])
        values: list[bytes] = []
        eof: set[int] = set()
        deadline = time.monotonic() + timeout_s
        try:
            while time.monotonic() < deadline:
                msgs = consumer.consume(500, timeout=0.5)
                for m in msgs:
                    if m.error():
                        if m.error().code() == -191:  # _PARTITION_EOF
                            eof.add(m.partition())
                        continue
                    values.append(m.value())
                if len(values) >= expect and len(eof) >= self.partitions:
                    break
        finally:
            consumer.close()
        assert len(values) >= expect, f"{topic}: {len(values)} records, expected {expect}"
        return values

    def sentiment(self, expect: int) -> list[SentimentScored]:
        values = self.read_topic(self.topic(topics.SENTIMENT), expect)
        return [decode(v, SentimentScored) for v in values]

    def dead_letters(self, source_canonical: str, expect: int) -> list[DeadLetter]:
        values = self.read_topic(topics.dlq(self.topic(source_canonical)), expect)
        return [decode(v, DeadLetter) for v in values]

    def review_ids(self, start: int, stop: int) -> list[str]:
        """The ids :meth:`produce_reviews` publishes for ``start..stop``."""
        return [f"rev-{i:06d}" for i in range(start, stop)]

    def assert_drained(
        self,
        published: Collection[str],
        *,
        max_sentiment_duplicates: int,
        topics_read: Iterable[str] | None = None,
        commit_timeout_s: float = 30.0,
    ) -> SentimentCopies:
        """The checks of every stream fault test (``tests.helpers.stream_checks``): exactly one
        row per published id in each table, the group committed to the log end of every
        partition of ``topics_read`` (canonical names; default: the review topics workers of
        this environment read), every review on sentiment.v1 under one
        event id with at most ``max_sentiment_duplicates`` extra copies; the copies, reported."""
        assert_one_row_per_published_id(self.dsn, published)
        read = configured_review_topics() if topics_read is None else topics_read
        assert_committed_at_end(
            self.bootstrap, self.app_id, [self.topic(t) for t in read], commit_timeout_s
        )
        copies = sentiment_copies(self.bootstrap, self.topic(topics.SENTIMENT), published)
        assert_sentiment_bounded(copies, published, max_sentiment_duplicates)
        return copies


class BackgroundProducer:
    """Produces reviews ``start..stop`` spread over about ``seconds`` on a thread."""

    def __init__(self, env: StreamEnv, start: int, stop: int, seconds: float) -> None:

        self.env, self.start_i, self.stop_i, self.seconds = env, start, stop, seconds
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> BackgroundProducer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.join()

    def _run(self) -> None:
        try:
            chunks = 20
            per = max(1, (self.stop_i - self.start_i) // chunks)
            pause = self.seconds / chunks
            for lo in range(self.start_i, self.stop_i, per):
                self.env.produce_reviews(lo, min(lo + per, self.stop_i))
                time.sleep(pause)
        except BaseException as exc:  # noqa: BLE001 - re-raised in join()
            self.error = exc

    def join(self, timeout_s: float = 120.0) -> None:
        self._thread.join(timeout_s)
        assert not self._thread.is_alive(), "the background producer did not finish"
        if self.error is not None:
            raise AssertionError(f"producing failed: {self.error!r}") from self.error
