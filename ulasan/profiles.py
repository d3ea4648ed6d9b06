"""Named loop profiles: the drift windows and trigger cool-downs a supervised run gives its workers.

``production`` keeps every default (1 h drift windows, 1 h cool-down: a retrain is hours away).
``demo`` is the short-window set-up of ``ulasan scenario domain-shift``, one home for both: a
drift window of 20 s, a verdict from 100 events, so a replay shows the closed loop (drift report
-> retrain request -> training -> gate -> promotion -> hot reload) within minutes.
"""

from __future__ import annotations

from dataclasses import dataclass

from stream_processors.drift.config import DriftConfig
from stream_processors.triggers.logic import TriggerConfig


@dataclass(frozen=True)
class LoopProfile:
    """Drift and trigger settings for the workers; None keeps the production default."""

    name: str
    window_s: float | None = None
    grace_s: float | None = None
    min_events: int | None = None
    feedback_reconcile_s: float | None = None
    feedback_min: int | None = None
    cooldown_s: float | None = None

    def worker_env(self) -> dict[str, str]:
        """The ``ULASAN_DRIFT__*`` / ``ULASAN_TRIGGERS__*`` overrides of this profile."""
        return loop_env(
            window_s=self.window_s,
            grace_s=self.grace_s,
            min_events=self.min_events,
            feedback_reconcile_s=self.feedback_reconcile_s,
            feedback_min=self.feedback_min,
            cooldown_s=self.cooldown_s,
        )

    def describe(self) -> str:
        """One line: each value with the production default it replaces."""
        drift, triggers = DriftConfig(), TriggerConfig()
        values = [
            ("drift window", self.window_s, drift.window_s, "s"),
            ("grace", self.grace_s, drift.grace_s, "s"),
            ("min events", self.min_events, drift.min_events, ""),
            ("feedback reconcile", self.feedback_reconcile_s, drift.feedback_reconcile_s, "s"),
            ("feedback min", self.feedback_min, triggers.feedback_min, ""),
            ("trigger cool-down", self.cooldown_s, triggers.cooldown_s, "s"),
        ]
        parts = [
            f"{what} {_num(default if value is None else value)}{unit}"
            + ("" if value is None else f" (production {_num(default)}{unit})")
            for what, value, default, unit in values
        ]
        return f"profile {self.name}: " + ", ".join(parts)


def _num(value: float) -> str:
    return f"{value:g}"


def loop_env(
    *,
    window_s: float | None = None,
    grace_s: float | None = None,
    min_events: int | None = None,
    feedback_reconcile_s: float | None = None,
    feedback_min: int | None = None,
    cooldown_s: float | None = None,
) -> dict[str, str]:
    """The worker environment for these drift and trigger values (None: not overridden)."""
    pairs = {
        "ULASAN_DRIFT__WINDOW_S": window_s,
        "ULASAN_DRIFT__GRACE_S": grace_s,
        "ULASAN_DRIFT__MIN_EVENTS": min_events,
        "ULASAN_DRIFT__FEEDBACK_RECONCILE_S": feedback_reconcile_s,
        "ULASAN_TRIGGERS__FEEDBACK_MIN": feedback_min,
        "ULASAN_TRIGGERS__COOLDOWN_S": cooldown_s,
    }
    return {key: str(value) for key, value in pairs.items() if value is not None}


#: The short windows of ``ulasan scenario domain-shift`` (its defaults come from here).
DEMO_WINDOW_S = 20.0
DEMO_MIN_EVENTS = 100
#: long enough that one demo run retrains once, not on every window
DEMO_COOLDOWN_S = 1800.0

PROFILES: dict[str, LoopProfile] = {
    "production": LoopProfile("production"),
    "demo": LoopProfile(
        "demo",
        window_s=DEMO_WINDOW_S,
        grace_s=2.0,
        min_events=DEMO_MIN_EVENTS,
        feedback_reconcile_s=2.0,
        feedback_min=DEMO_MIN_EVENTS,
        cooldown_s=DEMO_COOLDOWN_S,
    ),
}


def profile(name: str) -> LoopProfile:
    """The profile called ``name``; ``ValueError`` naming the known ones otherwise."""
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown profile {name!r} (known: {', '.join(PROFILES)})") from None
