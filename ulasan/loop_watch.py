"""Watching the closed loop while ``ulasan run`` serves: drift -> retrain -> gate -> promotion ->
hot reload, each step with the time it was seen.

:class:`Timeline` turns the loop's events into lines (pure, no I/O). :class:`LoopWatch` feeds it
from a background thread: it tails drift.reports.v1, retrain.requests.v1 and model.updates.v1
(from their end), reads new rows of ``retrain_runs`` (training started, the gate's decision)
and, once a version was promoted, asks the gateway which version answers (the hot reload).
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import psycopg
from confluent_kafka import Consumer, TopicPartition

from schemas import topics
from schemas.codec import CodecError, decode
from schemas.events import DriftReport, ModelPromoted, RetrainRequested

log = logging.getLogger(__name__)

#: The text the hot-reload probe scores through the gateway.
PROBE_TEXT = "aplikasinya bagus, pengiriman cepat"
#: How often retrain_runs is read and the gateway probed (seconds).
POLL_S = 2.0


@dataclass(frozen=True)
class LoopEvent:
    """One step of the loop: when it was seen (UTC), which step, what it said."""

    at: datetime
    stage: str
    text: str


def _clock(at: datetime) -> str:
    return at.astimezone().strftime("%H:%M:%S")


def duration(seconds: float) -> str:
    """``4 min 24 s`` / ``38 s``."""
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes} min {secs} s" if minutes else f"{secs} s"


@dataclass
class Timeline:
    """The loop's steps for one registered model, and the time from trigger to hot reload."""

    model_name: str
    events: list[LoopEvent] = field(default_factory=list)
    #: the first drifted report (or retrain request, without one): where the loop starts
    started_at: datetime | None = None
    #: the version promoted to champion that no answer has come from yet
    pending_version: str | None = None
    runs: dict[str, str] = field(default_factory=dict)  # run id -> status seen
    loop_seconds: float | None = None

    def _add(self, stage: str, text: str, at: datetime) -> None:
        self.events.append(LoopEvent(at, stage, text))

    def drift(self, report: DriftReport, at: datetime) -> None:
        drifted = [s.name for s in report.signals if s.drifted]
        verdict = f"DRIFTED ({', '.join(drifted)})" if report.drifted else "no drift"
        self._add(
            "drift",
            f"window {_clock(report.window_start)}-{_clock(report.window_end)}: "
            f"{report.n_events} events, score {report.drift_score:.2f}, {verdict}",
            at,
        )
        if report.drifted and self.started_at is None:
            self.started_at = at

    def request(self, req: RetrainRequested, at: datetime) -> None:
        judged = f" of champion version {req.model_version}" if req.model_version else ""
        self._add("request", f"retrain requested{judged}: {', '.join(req.reasons)}", at)
        if self.started_at is None:
            self.started_at = at

    def run(self, row: dict[str, Any], at: datetime) -> None:
        """A ``retrain_runs`` row (run_id, reasons, status, duration_s, decision,
        promoted_version, error) seen now; a step when it is new or its status changed."""
        run_id, status = str(row["run_id"]), str(row["status"])
        if self.runs.get(run_id) == status:
            return
        first = run_id not in self.runs
        self.runs[run_id] = status
        if status == "running":
            self._add("training", f"run {run_id} started ({', '.join(row['reasons'])})", at)
            return
        if first:
            self._add("training", f"run {run_id} ({', '.join(row['reasons'])})", at)
        took = f" after {duration(row['duration_s'])}" if row.get("duration_s") else ""
        what = row.get("decision") or row.get("error") or ""
        promoted = row.get("promoted_version")
        verdict = f"promoted version {promoted}" if promoted else "not promoted"
        self._add("gate", f"run {run_id} {status}{took}: {verdict}; {str(what)[:200]}", at)

    def promoted(self, event: ModelPromoted, at: datetime) -> None:
        if event.model_name != self.model_name:
            return
        was = f" (was {event.previous_version})" if event.previous_version else ""
        self._add("promotion", f"version {event.version} is {event.alias}{was}", at)
        if event.alias == "champion":
            self.pending_version = event.version

    def answered(self, version: str, at: datetime) -> None:
        """The gateway answered with ``version``: the hot reload, when it is the promoted one."""
        if self.pending_version is None or version != self.pending_version:
            return
        self.pending_version = None
        self._add("reload", f"the workers serve version {version}", at)
        if self.started_at is not None:
            self.loop_seconds = (at - self.started_at).total_seconds()
            self._add(
                "loop",
                f"closed loop complete in {duration(self.loop_seconds)}: trigger "
                f"{_clock(self.started_at)} -> hot reload {_clock(at)}",
                at,
            )


class LoopWatch(threading.Thread):
    """Feeds a :class:`Timeline` from Kafka, PostgreSQL and the gateway; :meth:`drain` hands
    the new steps to the thread that prints them."""

    def __init__(
        self,
        *,
        bootstrap: str,
        prefix: str,
        dsn: str,
        model_name: str,
        gateway_url: str | None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        super().__init__(name="loop-watch", daemon=True)
        self.timeline = Timeline(model_name)
        self.dsn, self.gateway_url, self.now = dsn, gateway_url, now
        self.since = now()
        self._printed = 0
        self._lock = threading.Lock()
        self._halt = threading.Event()
        self._decoders: dict[str, Callable[[bytes, datetime], None]] = {
            prefix + topics.DRIFT_REPORTS: lambda v, at: self.timeline.drift(
                decode(v, DriftReport), at
            ),
            prefix + topics.RETRAIN_REQUESTS: lambda v, at: self.timeline.request(
                decode(v, RetrainRequested), at
            ),
            prefix + topics.MODEL_UPDATES: lambda v, at: self.timeline.promoted(
                decode(v, ModelPromoted), at
            ),
        }
        self._consumer = _tail_consumer(bootstrap, list(self._decoders))

    def run(self) -> None:
        next_poll = 0.0
        try:
            while not self._halt.is_set():
                msg = self._consumer.poll(0.5)
                if msg is not None and not msg.error():
                    self._handle(msg.topic() or "", msg.value())
                clock = self.now().timestamp()
                if clock >= next_poll:
                    next_poll = clock + POLL_S
                    self._poll_runs()
                    self._probe()
        finally:
            self._consumer.close()

    def _handle(self, topic: str, value: bytes | None) -> None:
        try:
            with self._lock:
                self._decoders[topic](value or b"", self.now())
        except (CodecError, KeyError) as exc:
            log.warning("loop watch: undecodable event on %s: %s", topic, exc)

    def _poll_runs(self) -> None:
        try:
            with psycopg.connect(self.dsn, connect_timeout=5) as conn:
                cur = conn.execute(
                    "SELECT run_id, reasons, status, duration_s, decision, promoted_version, "
                    "error FROM retrain_runs WHERE started_at >= %s ORDER BY started_at",
                    (self.since,),
                )
                cols = [d.name for d in cur.description or []]
                rows = [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]
        except psycopg.Error as exc:
            log.warning("loop watch: cannot read retrain_runs: %s", exc)
            return
        with self._lock:
            for row in rows:
                self.timeline.run(row, self.now())

    def _probe(self) -> None:
        if self.gateway_url is None or self.timeline.pending_version is None:
            return
        try:
            resp = httpx.post(f"{self.gateway_url}/predict", json={"text": PROBE_TEXT}, timeout=5)
            version = str(resp.json()["prediction"]["model_version"])
        except (httpx.HTTPError, ValueError, KeyError, TypeError):
            return  # the gateway or a worker is busy (reloading, rebalancing): ask again
        with self._lock:
            self.timeline.answered(version, self.now())

    def drain(self) -> list[LoopEvent]:
        """The steps not handed out yet."""
        with self._lock:
            new = self.timeline.events[self._printed :]
            self._printed = len(self.timeline.events)
        return new

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=10)


def _tail_consumer(bootstrap: str, names: Sequence[str]) -> Consumer:
    """A consumer of ``names`` from their current ends, outside any consumer group's work."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"ulasan-run-loop-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "log_level": 2,
        }
    )
    start = []
    meta = consumer.list_topics(timeout=10).topics
    for name in names:
        if name not in meta:
            continue
        for p in meta[name].partitions:
            _, high = consumer.get_watermark_offsets(TopicPartition(name, p), timeout=10)
            start.append(TopicPartition(name, p, high))
    consumer.assign(start)
    return consumer
