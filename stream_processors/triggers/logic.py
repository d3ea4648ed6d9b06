"""The five retraining triggers of the seed, pure: ``evaluate(state, inputs, config, now)``.

- time: the last training is ``max_interval_s`` (30 days) old: forced;
- data: ``data_min_labelled`` (500) new labelled reviews since the last training, and the last
  training at least ``min_interval_s`` (7 days) old (new data alone is no emergency);
- feedback: the rolling error rate over the last feedback outcomes is above 12%;
- performance: the rolling accuracy is more than 3 points below the champion's baseline;
- drift: the window's drift score is above 0.3 **and** at least ``drift_min_labelled`` (100)
  labelled reviews arrived for the serving champion. Drift without new labels is an alert only
  (:func:`unlabelled_drift`: a report, a metric and a log, no request): a retrain would train
  on the labelled data it was trained on already, and its firing would block a useful retrain
  for the cooldown (docs/drift.md "Drift without labels").

The rules are checked when a drift window closes and, for the rules that need no window
(``TIMER_RULES``: time and data), on a timer every ``check_interval_s``, so a quiet stream
still retrains when its champion is 30 days old.

A firing is suppressed for ``cooldown_s`` after the previous one (whatever its reasons), and
its dedupe key (champion version + window end) is never fired twice: the trainer ignores a
request whose key it has seen, so a replayed window cannot retrain twice.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, Field

from schemas.events import RetrainReason, RetrainRequested

DAY_S = 86400.0
REASONS: tuple[RetrainReason, ...] = ("time", "data", "feedback", "performance", "drift")
#: the rules checked on the timer too: they need no window, only the champion's age and labels
TIMER_RULES: tuple[RetrainReason, ...] = ("time", "data")


class TriggerConfig(BaseModel):
    """Thresholds of the triggers (``ULASAN_TRIGGERS__*``); defaults are the seed's."""

    enabled: bool = True
    min_interval_s: float = Field(7 * DAY_S, ge=0, description="data trigger: no sooner")
    max_interval_s: float = Field(30 * DAY_S, gt=0, description="time trigger: forced at")
    data_min_labelled: int = Field(500, ge=1, description="new labelled reviews for 'data'")
    feedback_error: float = Field(0.12, ge=0, le=1, description="rolling error rate above")
    feedback_min: int = Field(100, ge=1, description="outcomes the rolling error needs")
    accuracy_drop: float = Field(0.03, ge=0, le=1, description="accuracy drop (points/100) above")
    drift_score: float = Field(0.3, ge=0, le=1, description="window drift score above")
    drift_min_labelled: int = Field(
        100,
        ge=1,
        description="new labelled reviews (for the serving champion) a drift firing needs; "
        "drift with fewer is an alert only (no retrain on unchanged labelled data)",
    )
    cooldown_s: float = Field(3600.0, ge=0, description="quiet time after a firing")
    check_interval_s: float = Field(
        300.0,
        gt=0,
        description="how often the time and data rules are checked without a window closing",
    )


@dataclass(frozen=True)
class TriggerInputs:
    """What the triggers look at when a window closes (or feedback arrives).

    ``last_training_at`` is when the champion was trained (epoch s); ``labelled_since`` the
    labelled reviews that arrived since; ``rolling_error`` over ``rolling_n`` outcomes;
    ``baseline_accuracy`` the champion's accuracy on the fixed evaluation set (None: unknown).
    """

    model_version: str
    last_training_at: float
    labelled_since: int = 0
    rolling_error: float | None = None
    rolling_n: int = 0
    baseline_accuracy: float | None = None
    drift_score: float | None = None
    window_start: float | None = None
    window_end: float | None = None


def initial_state() -> dict[str, Any]:
    """Nothing fired yet."""
    return {"last_fired_at": None, "fired_keys": []}


def drifted(inputs: TriggerInputs, config: TriggerConfig) -> bool:
    """The window's drift score is above the threshold (labels or not)."""
    return inputs.drift_score is not None and inputs.drift_score > config.drift_score


def unlabelled_drift(inputs: TriggerInputs, config: TriggerConfig) -> bool:
    """Drift without the new labels a retrain needs: alert, do not retrain."""
    return drifted(inputs, config) and inputs.labelled_since < config.drift_min_labelled


def reasons_for(
    inputs: TriggerInputs,
    config: TriggerConfig,
    now: float,
    rules: Collection[RetrainReason] = REASONS,
) -> list[RetrainReason]:
    """Which of ``rules`` (default all five) hold now (before cooldown and dedupe)."""
    return [r for r in _reasons(inputs, config, now) if r in rules]


def _reasons(inputs: TriggerInputs, config: TriggerConfig, now: float) -> list[RetrainReason]:
    age = now - inputs.last_training_at
    reasons: list[RetrainReason] = []
    if age >= config.max_interval_s:
        reasons.append("time")
    if inputs.labelled_since >= config.data_min_labelled and age >= config.min_interval_s:
        reasons.append("data")
    enough = inputs.rolling_error is not None and inputs.rolling_n >= config.feedback_min
    if enough and inputs.rolling_error is not None:
        if inputs.rolling_error > config.feedback_error:
            reasons.append("feedback")
        if (
            inputs.baseline_accuracy is not None
            and inputs.baseline_accuracy - (1.0 - inputs.rolling_error) > config.accuracy_drop
        ):
            reasons.append("performance")
    if drifted(inputs, config) and not unlabelled_drift(inputs, config):
        reasons.append("drift")
    return reasons


def dedupe_key(inputs: TriggerInputs, now: float) -> str:
    """``<champion version>:<window end or now, seconds>``: one request per champion and window."""
    at = inputs.window_end if inputs.window_end is not None else now
    return f"{inputs.model_version}:{int(at)}"


def evaluate(
    state: dict[str, Any],
    inputs: TriggerInputs,
    config: TriggerConfig,
    now: float,
    rules: Collection[RetrainReason] = REASONS,
) -> tuple[dict[str, Any], RetrainRequested | None]:
    """The new state and the request to publish (None when nothing fires); only ``rules`` are
    checked (the timer checks ``TIMER_RULES``). Pure."""
    if not config.enabled:
        return state, None
    reasons = reasons_for(inputs, config, now, rules)
    if not reasons:
        return state, None
    last = state.get("last_fired_at")
    if last is not None and now - float(last) < config.cooldown_s:
        return state, None
    key = dedupe_key(inputs, now)
    if key in state.get("fired_keys", []):
        return state, None
    statistics: dict[str, float] = {
        "days_since_training": (now - inputs.last_training_at) / DAY_S,
        "labelled_since_training": float(inputs.labelled_since),
    }
    if inputs.rolling_error is not None:
        statistics["rolling_error"] = inputs.rolling_error
        statistics["rolling_n"] = float(inputs.rolling_n)
    if inputs.baseline_accuracy is not None:
        statistics["baseline_accuracy"] = inputs.baseline_accuracy
    if inputs.drift_score is not None:
        statistics["drift_score"] = inputs.drift_score
    request = RetrainRequested(
        request_id=hashlib.sha256(f"{key}:{now}".encode()).hexdigest()[:32],
        dedupe_key=key,
        reasons=reasons,
        statistics=statistics,
        model_version=inputs.model_version,
        window_start=_dt(inputs.window_start),
        window_end=_dt(inputs.window_end),
        requested_at=datetime.fromtimestamp(now, UTC),
    )
    fired = [*state.get("fired_keys", []), key][-100:]
    return {"last_fired_at": now, "fired_keys": fired}, request


def _dt(ts: float | None) -> datetime | None:
    return datetime.fromtimestamp(ts, UTC) if ts is not None else None


def check_due(last_checked_at: float | None, now: float, config: TriggerConfig) -> bool:
    """The timer's check of ``TIMER_RULES`` is due: never checked, or ``check_interval_s`` ago."""
    return last_checked_at is None or now - last_checked_at >= config.check_interval_s
