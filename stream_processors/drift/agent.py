"""The closed-loop agents of a worker: feedback join, drift observations, drift windows, triggers.

Design (see docs/drift.md):
- ``observe_scores`` is called by the infer agent with each stored batch (cleaned reviews and
  their scores): the clean agent's features, label, confidence and the champion tokenizer's
  unknown-token counts become one message of observations on ``drift.observations.v1`` (ONE
  partition, so one worker sees the whole stream).
- ``feedback`` reads feedback.v1, stores it, joins it to the stored predictions in PostgreSQL
  and forwards each champion outcome (right or wrong) to the same observations topic.
- ``drift_windows`` reads the observations into a faust table (changelog-backed, so the open
  windows survive a restart): tumbling windows of ``window_s``, a rolling error, the trigger
  state. Ticks (a timer publishes them) close windows ``grace_s`` after their end: each closed
  window with enough events gives a DriftReport (drift.reports.v1 + drift_reports) and the
  triggers may publish a RetrainRequested (retrain.requests.v1).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import faust
from prometheus_client import Counter, Gauge

from schemas.events import DriftReport, LabelFeedback, ReviewCleaned, SentimentScored, TextFeatures
from stream_processors.drift.accumulator import (
    DriftAccumulator,
    FeedbackObservation,
    ScoreObservation,
    observation_from_json,
    window_accuracy,
)
from stream_processors.drift.config import DriftConfig
from stream_processors.drift.errors import DriftError, StateError
from stream_processors.drift.reference import BOOLEAN_FEATURES, NUMERIC_FEATURES, Reference
from stream_processors.feedback.logic import RollingError
from stream_processors.records import decode_records, records_of
from stream_processors.triggers.logic import TriggerConfig, TriggerInputs, evaluate, initial_state
from ulasan.core.registry import TAG_EVAL_ACCURACY
from ulasan.core.registry import client as registry_client

if TYPE_CHECKING:
    from stream_processors.app import Deps, Outputs
    from stream_processors.feedback.store import LoopStore

log = logging.getLogger(__name__)
STAGE = "drift"
KEY = b"drift"
WINDOW_PREFIX = "w:"
BATCH = "batch"
#: observations per message on drift.observations.v1 (and per drift_windows batch)
OBSERVATION_BATCH = 500


class LoopMetrics:
    """Metrics of the closed loop, on the worker's registry."""

    def __init__(self, registry: Any) -> None:
        self.windows = Counter(
            "ulasan_drift_windows",
            "Drift windows closed, by outcome (reported, too_few, no_reference).",
            ["outcome"],
            registry=registry,
        )
        self.drift_score = Gauge(
            "ulasan_drift_score", "Drift score of the last reported window.", registry=registry
        )
        self.late = Counter(
            "ulasan_drift_late_events",
            "Observations for a window already closed (counted, not judged).",
            registry=registry,
        )
        self.feedback_error = Gauge(
            "ulasan_feedback_error_rate",
            "Rolling error rate of the champion over the last feedback outcomes.",
            registry=registry,
        )
        self.outcomes = Counter(
            "ulasan_feedback_outcomes",
            "Predictions joined with their true label, by role and correctness.",
            ["role", "correct"],
            registry=registry,
        )
        self.retrain_requests = Counter(
            "ulasan_retrain_requests",
            "Retraining requests published, by reason.",
            ["reason"],
            registry=registry,
        )


@dataclass
class LoopDeps:
    """What the loop agents share beyond ``Deps``: settings groups, the store, caches."""

    drift: DriftConfig
    triggers: TriggerConfig
    store: LoopStore | None
    metrics: LoopMetrics
    references: dict[str, Reference | None] = field(default_factory=dict)
    tokens: dict[str, Any] = field(default_factory=dict)
    #: set by :func:`register`: the infer agent hands each stored batch's scores to it
    observe_scores: (
        Callable[[list[tuple[ReviewCleaned, SentimentScored]]], Awaitable[None]] | None
    ) = None


def window_start(t: float, size: float) -> float:
    """Start of the tumbling window of ``size`` seconds holding time ``t`` (epoch seconds)."""
    return math.floor(t / size) * size


def due(keys: list[str], now: float, size: float, grace: float) -> list[float]:
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


def register(app: faust.App, deps: Deps, outputs: Outputs, loop: LoopDeps) -> dict[str, Any]:
    """Attach the feedback, drift and trigger agents and their timers; return the agents."""
    from stream_processors.app import topic

    names = deps.topics
    cfg = loop.drift
    acc = DriftAccumulator(cfg)
    rolling = RollingError(cfg.error_window)
    observations = outputs.channels[names.drift_observations]
    table = app.Table(
        "drift",
        default=None,
        partitions=1,
        # faust derives a table's serializers from key_type/value_type; none given means JSON
    )

    async def observe(obs: dict[str, Any]) -> None:
        await observations.send(key=KEY, value=json.dumps(obs).encode())

    async def observe_many(items: list[dict[str, Any]]) -> None:
        """One message for a batch of observations: one produce and one consume per batch,
        not per review (the observations topic is a single partition every worker feeds)."""
        for i in range(0, len(items), OBSERVATION_BATCH):
            await observe({"kind": BATCH, "items": items[i : i + OBSERVATION_BATCH]})

    def unknown_counter() -> Any:
        predictor = deps.predictor.current
        version = predictor.model_version
        if version not in loop.tokens:
            folder = getattr(predictor, "folder", None)
            if folder is None:
                loop.tokens[version] = None
            else:
                from stream_processors.drift.tokens import UnknownTokens

                loop.tokens[version] = UnknownTokens(folder)
        return loop.tokens[version]

    # -- scored reviews (from the infer agent) -> observations --------------------------------
    async def observe_scores(pairs: list[tuple[ReviewCleaned, SentimentScored]]) -> None:
        """Observations of one scored batch: the clean agent's features (carried by the
        cleaned review: the reference profile used the same function), the label and
        confidence, and the champion tokenizer's unknown-token counts."""
        if not pairs:
            return
        counter = unknown_counter()
        texts = [scored.text or cleaned.text for cleaned, scored in pairs]
        counts = counter.count(texts) if counter is not None else [(0, 0)] * len(pairs)
        items = []
        for (cleaned, scored), c in zip(pairs, counts, strict=True):
            obs = score_observation(cleaned.features, scored, c).to_json()
            obs["t"] = scored.scored_at.timestamp()
            items.append(obs)
        await observe_many(items)

    loop.observe_scores = observe_scores

    # -- feedback.v1 -> feedback table, join, outcomes ---------------------------------------
    async def forward_outcomes(outcomes: list[Any]) -> None:
        items = []
        for o in outcomes:
            role = "shadow" if o.shadow else "champion"
            loop.metrics.outcomes.labels(role, str(o.correct).lower()).inc()
            if not o.shadow:
                obs = FeedbackObservation(o.correct, o.model_version).to_json()
                obs["t"] = time.time()
                items.append(obs)
        if items:
            await observe_many(items)

    @app.agent(topic(app, names.feedback), name=f"{app.conf.id}.feedback")
    async def feedback(stream: Any) -> None:
        async for events in stream.take_events(500, within=0.5):
            records = records_of(events)
            deps.metrics.events.labels("feedback").inc(len(records))
            good, bad = decode_records(records, LabelFeedback)
            for rejected in bad:
                await outputs.dead_letter(rejected, stage="feedback")
            if good and loop.store is not None:
                await forward_outcomes(await loop.store.record_feedback([g.event for g in good]))

    # -- observations -> windows, reports, triggers (one partition) --------------------------
    def get(key: str, make: Any) -> Any:
        value = table.get(key)
        return make() if value is None else value

    async def close_window(start: float, now: float) -> None:
        key = f"{WINDOW_PREFIX}{start}"
        state = table[key]
        del table[key]
        n = int(state["n"])
        if n < cfg.min_events:
            loop.metrics.windows.labels("too_few").inc()
            log.info(
                "drift window %s: %d events < min_events %d, no verdict", start, n, cfg.min_events
            )
            return
        reference = await current_reference()
        if reference is None:
            loop.metrics.windows.labels("no_reference").inc()
            return
        history = [tuple(h) for h in get("history", list)]
        verdict = acc.result(state, reference, history)
        end = start + cfg.window_s
        report = DriftReport(
            report_id=report_id(app.conf.id, start, cfg.window_s),
            window_start=datetime.fromtimestamp(start, UTC),
            window_end=datetime.fromtimestamp(end, UTC),
            n_events=n,
            model_version=verdict.model_version,
            signals=verdict.signals,
            drift_score=verdict.drift_score,
            drifted=verdict.drifted,
        )
        await outputs.send(names.drift_reports, report.report_id.encode(), report)
        if loop.store is not None:
            await loop.store.write_report(report)
        loop.metrics.windows.labels("reported").inc()
        loop.metrics.drift_score.set(verdict.drift_score)
        log.info(
            "drift window %s..%s: %d events, score %.2f, drifted %s: %s",
            report.window_start,
            report.window_end,
            n,
            verdict.drift_score,
            verdict.drifted,
            [s.name for s in verdict.signals if s.drifted],
        )
        accuracy = window_accuracy(state)
        if accuracy is not None and state["feedback"]["n"] >= cfg.min_feedback:
            horizon = end - cfg.trend_days * 86400.0
            kept = [h for h in history if h[0] >= horizon] + [(end, accuracy)]
            table["history"] = [list(h) for h in kept[-cfg.trend_max_points :]]
        await fire_triggers(now, reference, drift_score=verdict.drift_score, start=start, end=end)

    async def fire_triggers(
        now: float,
        reference: Reference,
        *,
        drift_score: float | None = None,
        start: float | None = None,
        end: float | None = None,
    ) -> None:
        err, count = rolling.result(get("rolling", rolling.initialize))
        labelled = get("labelled", dict)
        inputs = TriggerInputs(
            model_version=reference.model_version,
            last_training_at=reference.created_at,
            labelled_since=int(labelled.get("count", 0))
            if labelled.get("version") == reference.model_version
            else 0,
            rolling_error=err,
            rolling_n=count,
            baseline_accuracy=reference.baseline_accuracy,
            drift_score=drift_score,
            window_start=start,
            window_end=end,
        )
        state, request = evaluate(get("triggers", initial_state), inputs, loop.triggers, now)
        if request is None:
            return
        table["triggers"] = state
        await outputs.send(names.retrain_requests, request.dedupe_key.encode(), request)
        for reason in request.reasons:
            loop.metrics.retrain_requests.labels(reason).inc()
        log.warning("retraining requested (%s): %s", ", ".join(request.reasons), request.statistics)

    async def current_reference() -> Reference | None:
        predictor = deps.predictor.current
        version = predictor.model_version
        if version not in loop.references:
            folder = getattr(predictor, "folder", None)
            try:
                if folder is None:
                    raise DriftError(f"model version {version} has no serving folder")
                baseline = await asyncio.get_running_loop().run_in_executor(
                    None, baseline_accuracy, deps.settings, predictor.model_name, version
                )
                loop.references[version] = Reference.from_folder(
                    folder, model_version=version, baseline_accuracy=baseline
                )
            except DriftError as exc:
                log.error("no drift reference for version %s: %s", version, exc)
                loop.references[version] = None
        return loop.references[version]

    # Window and loop state touched by the current batch of observation messages: the table
    # (and its changelog) gets each touched key once per batch, not once per observation (a
    # window's state, reservoirs included, is tens of kilobytes of JSON).
    pending: dict[str, Any] = {}

    def state_of(key: str, make: Any) -> Any:
        if key not in pending:
            pending[key] = get(key, make)
        return pending[key]

    def flush(stream: Any, event: Any) -> None:
        # faust sends a table change to the changelog partition of the *current* event, which
        # take_events() does not set: make the batch's last event current while writing.
        stream._set_current_event(event)
        for key, value in pending.items():
            table[key] = value
        pending.clear()

    def apply(data: Any) -> None:
        """Fold one observation (JSON with its time ``t``) into the window and loop state."""
        if not isinstance(data, dict):
            raise StateError(f"an observation must be an object, got {type(data).__name__}")
        now = float(data.get("t", time.time()))
        obs = observation_from_json({k: v for k, v in data.items() if k != "t"})
        if isinstance(obs, FeedbackObservation):
            state = rolling.agg(state_of("rolling", rolling.initialize), obs.correct)
            err, _count = rolling.result(state)
            if err is not None:
                loop.metrics.feedback_error.set(err)
            labelled = state_of("labelled", dict)
            if labelled.get("version") != obs.model_version:
                labelled.clear()
                labelled.update(version=obs.model_version, count=0)
            labelled["count"] += 1
        start = window_start(now, cfg.window_s)
        key = f"{WINDOW_PREFIX}{start}"
        known = key in pending or table.get(key) is not None
        if not known and start + cfg.window_s + cfg.grace_s <= time.time():
            loop.metrics.late.inc()
            return
        acc.agg(state_of(key, lambda s=start: acc.initialize(s, s + cfg.window_s)), obs)

    @app.agent(observations, name=f"{app.conf.id}.drift_windows")
    async def drift_windows(stream: Any) -> None:
        async for events in stream.take_events(OBSERVATION_BATCH, within=0.5):
            for event, record in zip(events, records_of(events), strict=True):
                try:
                    data = json.loads(record.value)
                    if not isinstance(data, dict):
                        raise ValueError(f"not an object: {type(data).__name__}")
                except ValueError as exc:
                    deps.metrics.stream_errors.labels(STAGE, "bad_observation").inc()
                    log.warning("drift: undecodable observation: %s", exc)
                    continue
                if data.get("kind") == "tick":
                    flush(stream, event)
                    now = float(data.get("t", time.time()))
                    keys = [k for k in table if isinstance(k, str)]
                    for start in due(keys, now, cfg.window_s, cfg.grace_s):
                        await close_window(start, now)
                    continue
                items = data.get("items") if data.get("kind") == BATCH else [data]
                for item in items if isinstance(items, list) else [items]:
                    try:
                        apply(item)
                    except (StateError, TypeError, ValueError) as exc:
                        deps.metrics.stream_errors.labels(STAGE, "bad_observation").inc()
                        log.warning("drift: bad observation: %s", exc)
            flush(stream, events[-1])

    @app.timer(interval=cfg.effective_tick_s)  # type: ignore[untyped-decorator]
    async def _tick() -> None:
        await observe({"kind": "tick", "t": time.time()})

    @app.timer(interval=cfg.feedback_reconcile_s)  # type: ignore[untyped-decorator]
    async def _reconcile() -> None:
        if loop.store is not None:
            await forward_outcomes(await loop.store.reconcile())

    return {"feedback": feedback, "drift_windows": drift_windows}


_BASELINES: dict[tuple[str, str], float | None] = {}


def baseline_accuracy(settings: Any, model_name: str, version: str) -> float | None:
    """The version's recorded accuracy on the fixed evaluation set (MLflow tag), None when
    the model is a local folder or the registry does not know it."""
    if not version.isdigit():
        return None
    key = (model_name, version)
    if key not in _BASELINES:
        from mlflow.exceptions import MlflowException

        try:
            mv = registry_client(settings).get_model_version(model_name, version)
            value = mv.tags.get(TAG_EVAL_ACCURACY)
            _BASELINES[key] = float(value) if value is not None else None
        except (MlflowException, OSError, ValueError) as exc:
            log.warning("no baseline accuracy for %s/%s: %s", model_name, version, exc)
            return None
    return _BASELINES[key]
