"""The five retraining triggers as a table, plus cooldown and dedupe."""

from __future__ import annotations

import pytest

from stream_processors.triggers.logic import (
    DAY_S,
    TriggerConfig,
    TriggerInputs,
    evaluate,
    initial_state,
    reasons_for,
)

NOW = 100 * DAY_S
CFG = TriggerConfig()


def inputs(**kw: object) -> TriggerInputs:
    base: dict[str, object] = {"model_version": "3", "last_training_at": NOW - 1 * DAY_S}
    base.update(kw)
    return TriggerInputs(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kw", "expected"),
    [
        ({}, []),
        ({"last_training_at": NOW - 30 * DAY_S}, ["time"]),
        ({"last_training_at": NOW - 29.9 * DAY_S}, []),
        ({"labelled_since": 500, "last_training_at": NOW - 8 * DAY_S}, ["data"]),
        ({"labelled_since": 500, "last_training_at": NOW - 6 * DAY_S}, []),  # too soon
        ({"labelled_since": 499, "last_training_at": NOW - 8 * DAY_S}, []),
        ({"rolling_error": 0.13, "rolling_n": 100}, ["feedback"]),
        ({"rolling_error": 0.12, "rolling_n": 100}, []),
        ({"rolling_error": 0.5, "rolling_n": 99}, []),  # too few outcomes
        ({"rolling_error": 0.10, "rolling_n": 100, "baseline_accuracy": 0.95}, ["performance"]),
        ({"rolling_error": 0.10, "rolling_n": 100, "baseline_accuracy": 0.92}, []),
        (
            {"rolling_error": 0.2, "rolling_n": 200, "baseline_accuracy": 0.9},
            ["feedback", "performance"],
        ),
        ({"drift_score": 0.31}, ["drift"]),
        ({"drift_score": 0.3}, []),
        (
            {"drift_score": 0.5, "last_training_at": NOW - 31 * DAY_S, "labelled_since": 600},
            ["time", "data", "drift"],
        ),
    ],
)
def test_reasons(kw: dict[str, object], expected: list[str]) -> None:
    assert reasons_for(inputs(**kw), CFG, NOW) == expected


def test_thresholds_are_configurable() -> None:
    cfg = TriggerConfig(drift_score=0.1, feedback_error=0.5, feedback_min=10)
    assert reasons_for(inputs(drift_score=0.2, rolling_error=0.3, rolling_n=10), cfg, NOW) == [
        "drift"
    ]


def test_fire_cooldown_and_dedupe() -> None:
    cfg = TriggerConfig(cooldown_s=600)
    fired = inputs(drift_score=0.9, window_start=NOW - 60, window_end=NOW)
    state, request = evaluate(initial_state(), fired, cfg, NOW)
    assert request is not None
    assert request.reasons == ["drift"] and request.model_version == "3"
    assert request.dedupe_key == f"3:{int(NOW)}"
    assert request.statistics["drift_score"] == 0.9
    # inside the cooldown nothing fires, even for another window
    later = inputs(drift_score=0.9, window_end=NOW + 60)
    assert evaluate(state, later, cfg, NOW + 60)[1] is None
    # after it, the same window (a replay) is deduplicated, a new one fires
    assert evaluate(state, fired, cfg, NOW + 700)[1] is None
    state2, again = evaluate(state, inputs(drift_score=0.9, window_end=NOW + 700), cfg, NOW + 700)
    assert again is not None and again.dedupe_key != request.dedupe_key
    assert state2["last_fired_at"] == NOW + 700


def test_disabled_or_quiet_changes_nothing() -> None:
    state = initial_state()
    assert evaluate(state, inputs(drift_score=0.9), TriggerConfig(enabled=False), NOW) == (
        state,
        None,
    )
    assert evaluate(state, inputs(), CFG, NOW) == (state, None)
