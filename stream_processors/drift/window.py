"""The drift windows' core: observations folded into tumbling windows, closed windows judged,
the retraining triggers evaluated. Pure: no Kafka, no faust, no clock of its own.

All state is JSON in one mapping (a faust table in a worker, a dict in tests), under the keys
``w:<start>`` (one window's accumulator state), ``rolling`` (the rolling feedback error),
``labelled`` (outcomes since the serving version), ``history`` (earlier windows' accuracy) and
``triggers`` (the trigger state). Messages on drift.observations.v1 are JSON objects: a batch
``{"kind": "batch", "items": [...]}`` of observations (each with its time ``t``), a single
observation, or a tick ``{"kind": "tick", "t": ...}`` that closes the windows that are due.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Collection, Iterable, MutableMapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from schemas.events import (
    DriftReport,
    RetrainReason,
    RetrainRequested,
    SentimentScored,
    TextFeatures,
)
from stream_processors.drift.accumulator import (
    DriftAccumulator,
    FeedbackObservation,
    ScoreObservation,
    observation_from_json,
    window_accuracy,
)
from stream_processors.drift.config import DriftConfig
from stream_processors.drift.errors import StateError
from stream_processors.drift.reference import BOOLEAN_FEATURES, NUMERIC_FEATURES, Reference
from stream_processors.drift.stats import DriftVerdict
from stream_processors.feedback.logic import RollingError
from stream_processors.triggers.logic import (
    REASONS,
    TIMER_RULES,
    TriggerConfig,
    TriggerInputs,
    evaluate,
    initial_state,
    unlabelled_drift,
)

WINDOW_PREFIX = "w:"
BATCH = "batch"
TICK = "tick"

#: the drift state: JSON values by key (a faust table in a worker)
State = MutableMapping[str, Any]


def window_start(t: float, size: float) -> float:
    """Start of the tumbling window of ``size`` seconds holding time ``t`` (epoch seconds)."""
    return math.floor(t / size) * size


def window_key(start: float) -> str:
    return f"{WINDOW_PREFIX}{start}"


def due(keys: Iterable[str], now: float, size: float, grace: float) -> list[float]:
    """Starts of the open windows (table keys ``w:<start>``) whose end + grace has passed."""
    starts = sorted(float(k[len(WINDOW_PREFIX) :]) for k in keys if k.startswith(WINDOW_PREFIX))
    return [s for s in starts if s + size + grace <= now]


def report_id(app_id: str, start: float, size: float) -> str:
    return hashlib.sha256(f"{app_id}:{start}:{size}".encode()).hexdigest()[:32]


def score_observation(
    f: TextFeatures, event: SentimentScored, tokens: tuple[int, int]
) -> ScoreObservation:
    """The drift observation of one scored review with its features ``f``."""
    return ScoreObservation(
        numeric={name: float(getattr(f, name)) for name in NUMERIC_FEATURES},
        flags={name: bool(getattr(f, name)) for name in BOOLEAN_FEATURES},
        label=event.label,
        confidence=event.confidence,
        tokens=tokens[0],
        unknown_tokens=tokens[1],
        model_version=event.model_version,
    )


@dataclass(frozen=True)
class Message:
    """One decoded message of drift.observations.v1: a tick (``tick`` = its time) or
    observations (``items``, each still JSON; :meth:`DriftWindows.fold` checks them)."""

    tick: float | None = None
    items: tuple[Any, ...] = ()


def parse_message(value: bytes | str, now: float) -> Message:
    """Decode one message; ``now`` is a tick's time when it carries none. Raises ``ValueError``
    for a message that is not a JSON object."""
    data = json.loads(value)
    if not isinstance(data, dict):
        raise ValueError(f"not an object: {type(data).__name__}")
    if data.get("kind") == TICK:
        return Message(tick=float(data.get("t", now)))
    items = data.get("items") if data.get("kind") == BATCH else [data]
    return Message(items=tuple(items) if isinstance(items, list) else (items,))


class StateBuffer:
    """The keys one batch of messages touches: read from ``table`` once, written back once
    (:meth:`flush`), so a window's state (tens of kilobytes of JSON with its reservoirs) reaches
    the table and its changelog once per batch, not once per observation."""

    def __init__(self, table: State) -> None:
        self.table = table
        self.pending: dict[str, Any] = {}

    def get(self, key: str, make: Callable[[], Any]) -> Any:
        if key not in self.pending:
            value = self.table.get(key)
            self.pending[key] = make() if value is None else value
        return self.pending[key]

    def known(self, key: str) -> bool:
        return key in self.pending or self.table.get(key) is not None

    def flush(self) -> None:
        for key, value in self.pending.items():
            self.table[key] = value
        self.pending.clear()


@dataclass(frozen=True)
class Folded:
    """What folding one observation did: ``late`` (its window had closed: not counted) and the
    rolling feedback error after it (None: not a feedback observation, or no outcome yet)."""

    late: bool = False
    feedback_error: float | None = None


@dataclass(frozen=True)
class Closed:
    """A closed window's outcome: ``reported`` (with ``report`` and ``verdict``), ``too_few``
    (fewer than ``min_events``) or ``no_reference`` (the serving version has no reference)."""

    outcome: str
    start: float
    n_events: int
    report: DriftReport | None = None
    verdict: DriftVerdict | None = None


class DriftWindows:
    """The drift windows of one worker group (``app_id`` makes report ids unique)."""

    def __init__(self, config: DriftConfig, triggers: TriggerConfig, app_id: str) -> None:
        self.config = config
        self.triggers = triggers
        self.app_id = app_id
        self.acc = DriftAccumulator(config)
        self.rolling = RollingError(config.error_window)

    # -- observations ---------------------------------------------------------------------------
    def fold(self, buffer: StateBuffer, data: Any, *, wall_now: float) -> Folded:
        """Fold one observation (JSON with its time ``t``; ``wall_now`` when it has none) into
        the window and loop state. An observation for a window whose end + grace is before
        ``wall_now`` and that is no longer open is late: not folded. Raises :class:`StateError`,
        ``TypeError`` or ``ValueError`` for a bad observation."""
        if not isinstance(data, dict):
            raise StateError(f"an observation must be an object, got {type(data).__name__}")
        now = float(data.get("t", wall_now))
        obs = observation_from_json({k: v for k, v in data.items() if k != "t"})
        error = self._fold_feedback(buffer, obs) if isinstance(obs, FeedbackObservation) else None
        cfg = self.config
        start = window_start(now, cfg.window_s)
        key = window_key(start)
        if not buffer.known(key) and start + cfg.window_s + cfg.grace_s <= wall_now:
            return Folded(late=True, feedback_error=error)
        state = buffer.get(key, lambda: self.acc.initialize(start, start + cfg.window_s))
        self.acc.agg(state, obs)
        return Folded(feedback_error=error)

    def _fold_feedback(self, buffer: StateBuffer, obs: FeedbackObservation) -> float | None:
        state = self.rolling.agg(buffer.get("rolling", self.rolling.initialize), obs.correct)
        error, _count = self.rolling.result(state)
        labelled = buffer.get("labelled", dict)
        if labelled.get("version") != obs.model_version:
            labelled.clear()
            labelled.update(version=obs.model_version, count=0)
        labelled["count"] += 1
        return error

    # -- closing --------------------------------------------------------------------------------
    def due(self, table: State, now: float) -> list[float]:
        """Starts of the windows in ``table`` to close at ``now``, oldest first."""
        keys = [k for k in table if isinstance(k, str)]
        return due(keys, now, self.config.window_s, self.config.grace_s)

    def pop(self, table: State, start: float) -> tuple[dict[str, Any], Closed | None]:
        """Remove the window of ``start`` from ``table``: its state, and its :class:`Closed`
        outcome already when it has too few events to judge (else None: judge it)."""
        key = window_key(start)
        state = table[key]
        del table[key]
        n = int(state["n"])
        if n < self.config.min_events:
            return state, Closed("too_few", start, n)
        return state, None

    def judge(
        self, table: State, start: float, state: dict[str, Any], reference: Reference | None
    ) -> Closed:
        """The report of a popped window against ``reference`` (and the accuracy ``history``
        of earlier windows, for the trend)."""
        n = int(state["n"])
        if reference is None:
            return Closed("no_reference", start, n)
        cfg = self.config
        history = [tuple(h) for h in _get(table, "history", list)]
        verdict = self.acc.result(state, reference, history)
        report = DriftReport(
            report_id=report_id(self.app_id, start, cfg.window_s),
            window_start=datetime.fromtimestamp(start, UTC),
            window_end=datetime.fromtimestamp(start + cfg.window_s, UTC),
            n_events=n,
            model_version=verdict.model_version,
            signals=verdict.signals,
            drift_score=verdict.drift_score,
            drifted=verdict.drifted,
        )
        return Closed("reported", start, n, report, verdict)

    def record_accuracy(self, table: State, closed: Closed, state: dict[str, Any]) -> None:
        """Add a reported window's feedback accuracy (when it had ``min_feedback`` outcomes)
        to the ``history`` the accuracy trend reads (``trend_days`` and ``trend_max_points``
        bound it)."""
        cfg = self.config
        accuracy = window_accuracy(state)
        if accuracy is None or state["feedback"]["n"] < cfg.min_feedback:
            return
        end = closed.start + cfg.window_s
        history = [tuple(h) for h in _get(table, "history", list)]
        horizon = end - cfg.trend_days * 86400.0
        kept = [h for h in history if h[0] >= horizon] + [(end, accuracy)]
        table["history"] = [list(h) for h in kept[-cfg.trend_max_points :]]

    def trigger_inputs(
        self, table: State, reference: Reference, closed: Closed | None = None
    ) -> TriggerInputs:
        """What the triggers see now: the champion's age and baseline (``reference``), the
        labelled reviews and rolling error since it serves, and ``closed``'s drift score."""
        err, count = self.rolling.result(_get(table, "rolling", self.rolling.initialize))
        labelled = _get(table, "labelled", dict)
        verdict = closed.verdict if closed is not None else None
        return TriggerInputs(
            model_version=reference.model_version,
            last_training_at=reference.created_at,
            labelled_since=int(labelled.get("count", 0))
            if labelled.get("version") == reference.model_version
            else 0,
            rolling_error=err,
            rolling_n=count,
            baseline_accuracy=reference.baseline_accuracy,
            drift_score=verdict.drift_score if verdict is not None else None,
            window_start=closed.start if closed is not None else None,
            window_end=closed.start + self.config.window_s if closed is not None else None,
        )

    def retrain_request(
        self, table: State, now: float, reference: Reference, closed: Closed
    ) -> RetrainRequested | None:
        """Evaluate the triggers at ``now`` after the reported window ``closed``: a request
        (its new trigger state stored in ``table``) or None."""
        return self._evaluate(table, now, self.trigger_inputs(table, reference, closed))

    def timer_request(
        self, table: State, now: float, reference: Reference
    ) -> RetrainRequested | None:
        """Evaluate the rules that need no window (time, data) at ``now``: the timer's check,
        so a quiet stream whose windows never close still retrains its 30-day-old champion."""
        inputs = self.trigger_inputs(table, reference)
        return self._evaluate(table, now, inputs, TIMER_RULES)

    def unlabelled_drift(self, table: State, reference: Reference, closed: Closed) -> bool:
        """The window ``closed`` drifted but too few new labels exist to retrain on: the
        drift policy's alert (docs/drift.md "Drift without labels")."""
        return unlabelled_drift(self.trigger_inputs(table, reference, closed), self.triggers)

    def _evaluate(
        self,
        table: State,
        now: float,
        inputs: TriggerInputs,
        rules: Collection[RetrainReason] = REASONS,
    ) -> RetrainRequested | None:
        state = _get(table, "triggers", initial_state)
        state, request = evaluate(state, inputs, self.triggers, now, rules)
        if request is not None:
            table["triggers"] = state
        return request


def _get(table: State, key: str, make: Callable[[], Any]) -> Any:
    value = table.get(key)
    return make() if value is None else value
