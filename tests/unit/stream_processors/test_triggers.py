"""The five retraining triggers as a table, plus cooldown and dedupe."""

from __future__ import annotations

import pytest

from stream_processors.triggers.logic import (
    DAY_S,
    TIMER_RULES,
    TriggerConfig,
    TriggerInputs,
    check_due,
    evaluate,
    initial_state,
    reasons_for,
    unlabelled_drift,
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
        ({"drift_score": 0.31, "labelled_since": 100}, ["drift"]),
        ({"drift_score": 0.3, "labelled_since": 100}, []),
        # drift without new labels: an alert, never a retrain on unchanged labelled data
        ({"drift_score": 0.9}, []),
        ({"drift_score": 0.9, "labelled_since": 99}, []),
        (
            {"drift_score": 0.5, "last_training_at": NOW - 31 * DAY_S, "labelled_since": 600},
            ["time", "data", "drift"],
        ),
    ],
)
def test_reasons(kw: dict[str, object], expected: list[str]) -> None:
    assert reasons_for(inputs(**kw), CFG, NOW) == expected


def test_thresholds_are_configurable() -> None:
    cfg = TriggerConfig(drift_score=0.1, feedback_error=0.5, feedback_min=10, drift_min_labelled=5)
    seen = inputs(drift_score=0.2, rolling_error=0.3, rolling_n=10, labelled_since=5)
    assert reasons_for(seen, cfg, NOW) == ["drift"]


def test_fire_cooldown_and_dedupe() -> None:
    cfg = TriggerConfig(cooldown_s=600)
    fired = inputs(drift_score=0.9, window_start=NOW - 60, window_end=NOW, labelled_since=100)
    state, request = evaluate(initial_state(), fired, cfg, NOW)
    assert request is not None
    assert request.reasons == ["drift"] and request.model_version == "3"
    assert request.dedupe_key == f"3:{int(NOW)}"
    assert request.statistics["drift_score"] == 0.9
    # inside the cooldown nothing fires, even for another window
    later = inputs(drift_score=0.9, window_end=NOW + 60, labelled_since=100)
    assert evaluate(state, later, cfg, NOW + 60)[1] is None
    # after it, the same window (a replay) is deduplicated, a new one fires
    assert evaluate(state, fired, cfg, NOW + 700)[1] is None
    newer = inputs(drift_score=0.9, window_end=NOW + 700, labelled_since=100)
    state2, again = evaluate(state, newer, cfg, NOW + 700)
    assert again is not None and again.dedupe_key != request.dedupe_key
    assert state2["last_fired_at"] == NOW + 700


def test_disabled_or_quiet_changes_nothing() -> None:
    state = initial_state()
    assert evaluate(state, inputs(drift_score=0.9), TriggerConfig(enabled=False), NOW) == (
        state,
        None,
    )
    assert evaluate(state, inputs(), CFG, NOW) == (state, None)


def test_unlabelled_drift_is_an_alert_and_no_request() -> None:
    quiet_labels = inputs(drift_score=0.9, window_end=NOW, labelled_since=10)
    assert unlabelled_drift(quiet_labels, CFG)
    assert evaluate(initial_state(), quiet_labels, CFG, NOW) == (initial_state(), None)
    labelled = inputs(drift_score=0.9, window_end=NOW, labelled_since=CFG.drift_min_labelled)
    assert not unlabelled_drift(labelled, CFG)
    assert evaluate(initial_state(), labelled, CFG, NOW)[1] is not None
    assert not unlabelled_drift(inputs(drift_score=0.1), CFG)  # no drift: nothing to alert


def test_unlabelled_drift_still_lets_the_other_rules_fire() -> None:
    old = inputs(drift_score=0.9, last_training_at=NOW - 31 * DAY_S)
    _, request = evaluate(initial_state(), old, CFG, NOW)
    assert request is not None and request.reasons == ["time"]


def test_the_timer_checks_only_the_rules_that_need_no_window() -> None:
    everything = inputs(
        last_training_at=NOW - 31 * DAY_S,
        labelled_since=600,
        rolling_error=0.5,
        rolling_n=500,
        baseline_accuracy=0.9,
        drift_score=0.9,
    )
    assert reasons_for(everything, CFG, NOW, TIMER_RULES) == ["time", "data"]
    # a quiet stream: no window, the champion 30 days old -> the time trigger fires
    state, request = evaluate(
        initial_state(), inputs(last_training_at=NOW - 30 * DAY_S), CFG, NOW, TIMER_RULES
    )
    assert request is not None and request.reasons == ["time"]
    assert request.window_end is None and request.dedupe_key == f"3:{int(NOW)}"
    # the cooldown holds the next checks back
    assert (
        evaluate(state, inputs(last_training_at=NOW - 30 * DAY_S), CFG, NOW + 60, TIMER_RULES)[1]
        is None
    )
    assert evaluate(initial_state(), inputs(), CFG, NOW, TIMER_RULES)[1] is None


@pytest.mark.parametrize(
    ("last", "now", "due"),
    [(None, NOW, True), (NOW - 299.0, NOW, False), (NOW - 300.0, NOW, True)],
)
def test_the_timer_check_is_due_every_check_interval(
    last: float | None, now: float, due: bool
) -> None:
    assert check_due(last, now, CFG) is due
