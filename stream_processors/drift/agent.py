"""The closed-loop agents of a worker: feedback join, drift windows, triggers (see docs/drift.md).

- The infer agent hands each stored batch to a ``drift.observe.ScoreObserver``: one message of
  observations on ``drift.observations.v1`` (ONE partition, so one worker sees the whole stream).
- ``feedback`` reads feedback.v1, stores it, joins it to the stored predictions in PostgreSQL
  and forwards each champion outcome (right or wrong) to the same observations topic.
- ``drift_windows`` folds the observations into a faust table (changelog-backed, so the open
  windows survive a restart) with the pure core of ``drift.window``: tumbling windows of
  ``window_s``, a rolling error, the trigger state. Ticks (a timer publishes them) close windows
  ``grace_s`` after their end: each closed window with enough events gives a DriftReport
  (drift.reports.v1 + drift_reports) and the triggers may publish a RetrainRequested
  (retrain.requests.v1). A drifted window without new labels is an alert only (metric
  ``ulasan_drift_alerts_total{kind="unlabelled"}`` and a warning). Every
  ``triggers.check_interval_s`` a tick also checks the time and data rules, so a quiet stream
  whose windows never close still retrains.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from functools import partial
from typing import Any

import faust

from schemas.events import DriftReport, LabelFeedback, RetrainRequested
from stream_processors.drift.errors import StateError
from stream_processors.drift.models import ModelCaches
from stream_processors.drift.observe import OBSERVATION_BATCH, ObservationSender
from stream_processors.drift.window import Closed, DriftWindows, StateBuffer, parse_message
from stream_processors.feedback.logic import Outcome
from stream_processors.kafka import compat
from stream_processors.kafka.guard import BatchGuard
from stream_processors.records import decode_records, records_of
from stream_processors.triggers.logic import check_due
from stream_processors.wiring import Deps, LoopDeps, Outputs, raw_topic

log = logging.getLogger(__name__)
STAGE = "drift"


class DriftShell:
    """The I/O around :class:`DriftWindows`: the faust table, the reference, sends, metrics."""

    def __init__(
        self,
        deps: Deps,
        outputs: Outputs,
        loop: LoopDeps,
        table: Any,
        models: ModelCaches,
        app_id: str,
    ) -> None:
        self.deps = deps
        self.outputs = outputs
        self.loop = loop
        self.table = table
        self.models = models
        self.windows = DriftWindows(loop.drift, loop.triggers, app_id)
        self.buffer = StateBuffer(table)
        #: when the timer last checked the time and data rules (tick time; None: not yet)
        self.last_check: float | None = None

    def flush(self, stream: Any, event: Any) -> None:
        # faust sends a table change to the changelog partition of the *current* event, which
        # take_events() does not set: make the batch's last event current while writing.
        compat.set_current_event(stream, event)
        self.buffer.flush()

    def fold(self, item: Any) -> None:
        """One observation into the buffered state; a bad one is counted and logged."""
        metrics = self.loop.metrics
        try:
            folded = self.windows.fold(self.buffer, item, wall_now=time.time())
        except (StateError, TypeError, ValueError) as exc:
            self.deps.metrics.stream_errors.labels(STAGE, "bad_observation").inc()
            log.warning("drift: bad observation: %s", exc)
            return
        if folded.feedback_error is not None:
            metrics.feedback_error.set(folded.feedback_error)
        if folded.late:
            metrics.late.inc()

    async def handle(self, stream: Any, event: Any, value: bytes) -> None:
        """One message of the observations topic: a tick closes what is due, else fold."""
        try:
            message = parse_message(value, time.time())
        except ValueError as exc:
            self.deps.metrics.stream_errors.labels(STAGE, "bad_observation").inc()
            log.warning("drift: undecodable observation: %s", exc)
            return
        if message.tick is None:
            for item in message.items:
                self.fold(item)
            return
        self.flush(stream, event)
        for start in self.windows.due(self.table, message.tick):
            await self.close(start, message.tick)
        await self.check_timer(message.tick)

    async def check_timer(self, now: float) -> None:
        """The time and data rules, every ``check_interval_s`` (windows or not)."""
        if not check_due(self.last_check, now, self.loop.triggers):
            return
        self.last_check = now
        reference = await self.models.reference()
        if reference is None:
            return
        request = self.windows.timer_request(self.table, now, reference)
        if request is not None:
            await self.publish_request(request)

    async def close(self, start: float, now: float) -> None:
        state, closed = self.windows.pop(self.table, start)
        reference = None
        if closed is None:
            reference = await self.models.reference()
            closed = self.windows.judge(self.table, start, state, reference)
        if closed.report is None or reference is None:
            self.loop.metrics.windows.labels(closed.outcome).inc()
            if closed.outcome == "too_few":
                log.info(
                    "drift window %s: %d events < min_events %d, no verdict",
                    start,
                    closed.n_events,
                    self.loop.drift.min_events,
                )
            return
        await self.publish_report(closed, closed.report)
        if self.windows.unlabelled_drift(self.table, reference, closed):
            self.alert_unlabelled(closed.report)
        self.windows.record_accuracy(self.table, closed, state)
        request = self.windows.retrain_request(self.table, now, reference, closed)
        if request is not None:
            await self.publish_request(request)

    async def publish_report(self, closed: Closed, report: DriftReport) -> None:
        names, metrics = self.deps.topics, self.loop.metrics
        await self.outputs.send(names.drift_reports, report.report_id.encode(), report)
        if self.loop.store is not None:
            await self.loop.store.write_report(report)
        metrics.windows.labels("reported").inc()
        metrics.drift_score.set(report.drift_score)
        log.info(
            "drift window %s..%s: %d events, score %.2f, drifted %s: %s",
            report.window_start,
            report.window_end,
            report.n_events,
            report.drift_score,
            report.drifted,
            [s.name for s in report.signals if s.drifted],
        )

    def alert_unlabelled(self, report: DriftReport) -> None:
        """Drift with too few new labels: counted and logged; no retrain on the labelled data
        the champion was trained on (docs/drift.md "Drift without labels")."""
        self.loop.metrics.drift_alerts.labels("unlabelled").inc()
        log.warning(
            "drift window %s..%s drifted (score %.2f) with fewer than %d new labels: alert "
            "only, no retrain request (label reviews, or retrain by hand: ulasan trainer)",
            report.window_start,
            report.window_end,
            report.drift_score,
            self.loop.triggers.drift_min_labelled,
        )

    async def publish_request(self, request: RetrainRequested) -> None:
        names = self.deps.topics
        await self.outputs.send(names.retrain_requests, request.dedupe_key.encode(), request)
        for reason in request.reasons:
            self.loop.metrics.retrain_requests.labels(reason).inc()
        log.warning("retraining requested (%s): %s", ", ".join(request.reasons), request.statistics)


def register(
    app: faust.App,
    deps: Deps,
    outputs: Outputs,
    loop: LoopDeps,
    sender: ObservationSender,
    models: ModelCaches,
) -> dict[str, Any]:
    """Attach the feedback and drift-window agents and their timers; return the agents."""
    # faust derives a table's serializers from key_type/value_type; none given means JSON
    table = app.Table("drift", default=None, partitions=1)
    shell = DriftShell(deps, outputs, loop, table, models, app.conf.id)

    async def forward(outcomes: list[Outcome]) -> None:
        for o in outcomes:
            role = "shadow" if o.shadow else "champion"
            loop.metrics.outcomes.labels(role, str(o.correct).lower()).inc()
        await sender.outcomes(outcomes)

    # Both bodies run in a BatchGuard (kafka/guard.py): a store or send failure retries the
    # batch, a record that fails alone (feedback PostgreSQL refuses, e.g. a NUL in review_id)
    # is dead-lettered and the rest stored; nothing is acked unprocessed.
    feedback_guard = BatchGuard("feedback", outputs, deps.metrics)
    drift_guard = BatchGuard(STAGE, outputs, deps.metrics)

    async def record_feedback(events: Sequence[Any]) -> None:
        good, bad = decode_records(records_of(events), LabelFeedback)
        for rejected in bad:
            await outputs.dead_letter(rejected, stage="feedback")
        if good and loop.store is not None:
            await forward(await loop.store.record_feedback([g.event for g in good]))

    @app.agent(raw_topic(app, deps.topics.feedback), name=f"{app.conf.id}.feedback")
    async def feedback(stream: Any) -> None:
        async for events in stream.take_events(500, within=0.5):
            deps.metrics.events.labels("feedback").inc(len(events))
            await feedback_guard.run(events, record_feedback)

    async def fold_observations(stream: Any, events: Sequence[Any]) -> None:
        shell.buffer = StateBuffer(table)  # a retried attempt must not fold twice
        for event, record in zip(events, records_of(events), strict=True):
            await shell.handle(stream, event, record.value)
        shell.flush(stream, events[-1])

    @app.agent(sender.channel, name=f"{app.conf.id}.drift_windows")
    async def drift_windows(stream: Any) -> None:
        async for events in stream.take_events(OBSERVATION_BATCH, within=0.5):
            await drift_guard.run(events, partial(fold_observations, stream))

    @app.timer(interval=loop.drift.effective_tick_s)  # type: ignore[untyped-decorator]
    async def _tick() -> None:
        await sender.tick(time.time())

    @app.timer(interval=loop.drift.feedback_reconcile_s)  # type: ignore[untyped-decorator]
    async def _reconcile() -> None:
        if loop.store is not None:
            await forward(await loop.store.reconcile())

    return {"feedback": feedback, "drift_windows": drift_windows}
