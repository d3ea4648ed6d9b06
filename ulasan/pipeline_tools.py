"""Running and watching a stream worker: the subprocess, consumer lag, the sentiment tail.

Shared by the main job (``ulasan run``) and the pipeline benchmark (``ulasan bench pipeline``).
"""

from __future__ import annotations

import math
import os
import threading
import time
import uuid
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, KafkaException, TopicPartition

from schemas import codec
from schemas.events import SentimentScored
from ulasan.errors import MainJobError
from ulasan.procs import Service, child_env

#: faust's worker logs this once its agents run (consumer group joined, partitions assigned).
READY_MARK = "Ready"


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q`` (0..100) percentile by nearest rank; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100.0 * len(ordered)))
    return ordered[rank - 1]


class WorkerProcess(Service):
    """One ``ulasan worker`` subprocess in its own session, its output appended to ``log_path``."""

    def check_alive(self) -> None:
        """Raise :class:`MainJobError` with the log's tail when the worker has exited."""
        if self.child is not None and not self.child.alive():
            raise MainJobError(
                f"the stream worker exited with code {self.child.exit_code}; "
                f"its log ({self.log_path}) ends with:\n{self.log_tail()}"
            )

    def wait_ready(self, timeout_s: float = 180.0) -> None:
        """Wait until faust says the worker is ready; raise if it dies or takes too long."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self.check_alive()
            if READY_MARK in self.log_tail(200_000):
                return
            time.sleep(0.25)
        raise MainJobError(
            f"the stream worker was not ready after {timeout_s:.0f}s; its log "
            f"({self.log_path}) ends with:\n{self.log_tail()}"
        )


class LagProbe:
    """Consumer lag of a consumer group: end offsets minus committed offsets, summed."""

    def __init__(self, bootstrap: str, group: str, topics: Sequence[str]) -> None:
        self.topics = list(topics)
        # a consumer that never subscribes never joins the group: it only reads its offsets
        self._consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": group,
                "enable.auto.commit": False,
                "log_level": 2,
            }
        )
        self._parts: list[TopicPartition] | None = None

    def _partitions(self) -> list[TopicPartition]:
        if self._parts is None:
            meta = self._consumer.list_topics(timeout=5)
            self._parts = [
                TopicPartition(t, p)
                for t in self.topics
                if t in meta.topics
                for p in meta.topics[t].partitions
            ]
        return self._parts

    def lag(self) -> int | None:
        """Messages not yet committed by the group over all partitions; None if unknown."""
        try:
            parts = self._partitions()
            committed = self._consumer.committed(parts, timeout=5)
            total = 0
            for tp in committed:
                _, high = self._consumer.get_watermark_offsets(
                    TopicPartition(tp.topic, tp.partition), timeout=5, cached=False
                )
                low_mark = tp.offset if tp.offset >= 0 else 0
                total += max(high - low_mark, 0)
            return total
        except KafkaException:
            return None

    def close(self) -> None:
        self._consumer.close()


@dataclass
class MonitorState:
    """What the sentiment tail saw: labels and latencies of the expected reviews, and others."""

    labels: Counter[str] = field(default_factory=Counter)
    latencies_ms: list[float] = field(default_factory=list)
    scored: int = 0
    other_events: int = 0
    other_labels: Counter[str] = field(default_factory=Counter)
    undecodable: int = 0
    first_at: float | None = None
    last_at: float | None = None
    model_versions: Counter[str] = field(default_factory=Counter)
    #: model version -> when (monotonic) the first score by it was seen, any review
    first_by_version: dict[str, float] = field(default_factory=dict)


class SentimentMonitor(threading.Thread):
    """Tails a sentiment topic from its current end in a background thread.

    ``expected`` maps review ids to their ``ingested_at``; for each of them the first score is
    counted, with the latency ingested_at -> the sentiment event's Kafka timestamp (set when the
    worker produced it). Scores of other reviews are counted in ``other_events``.
    """

    def __init__(self, bootstrap: str, topic: str, expected: Mapping[str, datetime]) -> None:
        super().__init__(name="sentiment-monitor", daemon=True)
        self.topic = topic
        self.expected = expected
        self.state = MonitorState()
        self._seen: set[str] = set()
        self._halt = threading.Event()
        self._lock = threading.Lock()
        self._consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": f"ulasan-run-monitor-{uuid.uuid4().hex[:8]}",
                "enable.auto.commit": False,
                "log_level": 2,
            }
        )
        meta = self._consumer.list_topics(topic, timeout=10).topics.get(topic)
        if meta is None or meta.error is not None:
            raise MainJobError(f"topic {topic} does not exist: is the worker running?")
        start = []
        for p in meta.partitions:
            _, high = self._consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            start.append(TopicPartition(topic, p, high))
        self._consumer.assign(start)

    def run(self) -> None:
        try:
            while not self._halt.is_set():
                msg = self._consumer.poll(0.2)
                if msg is None or msg.error():
                    continue
                self._handle(msg.value(), msg.timestamp()[1])
        finally:
            self._consumer.close()

    def _handle(self, value: Any, timestamp_ms: int) -> None:
        try:
            event = codec.decode(value, SentimentScored)
        except codec.CodecError:
            with self._lock:
                self.state.undecodable += 1
            return
        rid = event.review_id
        ingested = self.expected.get(rid) if rid is not None else None
        with self._lock:
            self.state.first_by_version.setdefault(event.model_version, time.monotonic())
            if ingested is None or rid in self._seen:
                self.state.other_events += 1
                self.state.other_labels[event.label] += 1
                return
            self._seen.add(rid)  # type: ignore[arg-type]
            now = time.monotonic()
            self.state.first_at = self.state.first_at or now
            self.state.last_at = now
            self.state.scored += 1
            self.state.labels[event.label] += 1
            self.state.model_versions[f"{event.model_name} v{event.model_version}"] += 1
            if timestamp_ms > 0:
                self.state.latencies_ms.append(timestamp_ms - ingested.timestamp() * 1000.0)

    def snapshot(self) -> MonitorState:
        with self._lock:
            return MonitorState(
                labels=Counter(self.state.labels),
                latencies_ms=list(self.state.latencies_ms),
                scored=self.state.scored,
                other_events=self.state.other_events,
                other_labels=Counter(self.state.other_labels),
                undecodable=self.state.undecodable,
                first_at=self.state.first_at,
                last_at=self.state.last_at,
                model_versions=Counter(self.state.model_versions),
                first_by_version=dict(self.state.first_by_version),
            )

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=10)


def default_workers(partitions: int) -> int:
    """Worker processes for this machine: one per core (each worker's event loop is one
    Python thread), never more than the partitions they share."""
    return max(1, min(os.cpu_count() or 1, partitions))


def worker_threads(workers: int) -> int:
    """ONNX Runtime threads per worker when ``workers`` share the machine's cores."""
    return max(1, (os.cpu_count() or 1) // max(1, workers))


class WorkerGroup:
    """Several ``ulasan worker`` processes in one consumer group, handled as one."""

    def __init__(self, workers: list[WorkerProcess]) -> None:
        if not workers:
            raise MainJobError("a worker group needs at least one worker")
        self.workers = workers

    def start(self) -> None:
        for w in self.workers:
            w.start()

    def wait_ready(self, timeout_s: float = 180.0) -> None:
        for w in self.workers:
            w.wait_ready(timeout_s)

    def check_alive(self) -> None:
        for w in self.workers:
            w.check_alive()

    def alive(self) -> bool:
        return all(w.alive() for w in self.workers)

    def pids(self) -> list[int]:
        """The process ids of the started workers (in worker order)."""
        return [w.child.proc.pid for w in self.workers if w.child is not None]

    def stop(self, timeout_s: float = 60.0) -> list[int | None]:
        return [w.stop(timeout_s) for w in self.workers]

    @property
    def log_path(self) -> str:
        return ", ".join(str(w.log_path) for w in self.workers)

    def log_tail(self, chars: int = 3000) -> str:
        per = max(500, chars // len(self.workers))
        return "\n".join(f"[{w.log_path.name}]\n{w.log_tail(per)}" for w in self.workers)


def worker_group(
    *,
    model: str,
    app_id: str,
    overrides: Mapping[str, str],
    log_dir: Path,
    stem: str,
    ports: Sequence[int],
    lane: str | None = None,
) -> WorkerGroup:
    """``len(ports)`` ``ulasan worker`` processes of consumer group ``app_id`` serving ``model``
    with the ``ULASAN_*`` ``overrides``: worker ``n`` serves metrics on ``ports[n]`` (0: any
    free port) and logs to ``<log_dir>/<stem>-worker-<n>.log``; ``lane`` is their ``--lane``
    (None: the setting's, ``all`` by default). Not started yet."""
    lane_args = ["--lane", lane] if lane is not None else []
    return WorkerGroup(
        [
            WorkerProcess(
                f"worker-{n}",
                ["worker", "--model", model, "--metrics-port", str(port), "--app-id", app_id]
                + lane_args,
                child_env(overrides),
                log_dir / f"{stem}-worker-{n}.log",
            )
            for n, port in enumerate(ports)
        ]
    )


def requests_lane(
    *,
    model: str,
    app_id: str,
    overrides: Mapping[str, str],
    log_dir: Path,
    stem: str,
    port: int,
) -> WorkerProcess:
    """One ``ulasan worker --lane requests`` beside the (``--lane reviews``) workers of
    ``app_id``: it scores only predict.requests.v1, in the consumer group ``<app_id>-requests``,
    serves metrics on ``port`` (0: any free port) and logs to
    ``<log_dir>/<stem>-requests.log``. Not started yet."""
    return WorkerProcess(
        "requests-lane",
        ["worker", "--model", model, "--metrics-port", str(port), "--app-id", app_id]
        + ["--lane", "requests"],
        child_env(overrides),
        log_dir / f"{stem}-requests.log",
    )
