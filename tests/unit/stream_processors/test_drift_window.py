"""The drift windows' pure core (``drift.window``) on plain dict tables: no Kafka, no faust."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from stream_processors.drift.accumulator import FeedbackObservation
from stream_processors.drift.config import DriftConfig
from stream_processors.drift.errors import StateError
from stream_processors.drift.reference import Reference
from stream_processors.drift.window import (
    DriftWindows,
    Message,
    StateBuffer,
    due,
    parse_message,
    report_id,
    window_start,
)
from stream_processors.triggers.logic import TriggerConfig
from tests.unit.stream_processors.test_drift import observe, reference_from

WINDOW_S = 60.0
T0 = 1_736_000_040.0  # a window start (a multiple of WINDOW_S), 4 days after the reference
APP = "ulasan-test"


def windows(**drift: Any) -> DriftWindows:
    config = DriftConfig(**{"window_s": WINDOW_S, "grace_s": 5.0, "min_events": 50, **drift})
    triggers = TriggerConfig(feedback_min=10, cooldown_s=0.0)
    return DriftWindows(config, triggers, APP)


@pytest.fixture(scope="module")
def reference() -> Reference:
    return reference_from(np.random.default_rng(1))


def scores(n: int, t: float, seed: int = 0, shift: float = 0.0) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    return [{**observe(rng, shift=shift).to_json(), "t": t} for _ in range(n)]


def feedback(correct: bool, t: float, version: str = "1") -> dict[str, Any]:
    return {**FeedbackObservation(correct, version).to_json(), "t": t}


def fold_all(core: DriftWindows, table: dict[str, Any], items: list[Any], now: float) -> None:
    buffer = StateBuffer(table)
    for item in items:
        core.fold(buffer, item, wall_now=now)
    buffer.flush()


@pytest.mark.parametrize(
    ("t", "size", "start"),
    [(0.0, 60.0, 0.0), (59.9, 60.0, 0.0), (60.0, 60.0, 60.0), (T0 + 61.0, 60.0, T0 + 60.0)],
)
def test_window_start(t: float, size: float, start: float) -> None:
    assert window_start(t, size) == start


@pytest.mark.parametrize(
    ("keys", "now", "expected"),
    [
        (["w:0.0", "w:60.0", "rolling", "history"], 64.9, []),  # end 60 + grace 5 not passed
        (["w:0.0", "w:60.0", "rolling"], 65.0, [0.0]),
        (["w:60.0", "w:0.0"], 1000.0, [0.0, 60.0]),  # oldest first
        (["triggers", "labelled"], 1000.0, []),
    ],
)
def test_due_windows(keys: list[str], now: float, expected: list[float]) -> None:
    assert due(keys, now, 60.0, 5.0) == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (b'{"kind": "tick", "t": 12.5}', Message(tick=12.5)),
        (b'{"kind": "tick"}', Message(tick=99.0)),  # a tick without a time is now
        (b'{"kind": "batch", "items": [{"a": 1}, 2]}', Message(items=({"a": 1}, 2))),
        (b'{"kind": "batch", "items": {"a": 1}}', Message(items=({"a": 1},))),
        (b'{"kind": "score", "x": 1}', Message(items=({"kind": "score", "x": 1},))),
    ],
)
def test_parse_message(value: bytes, message: Message) -> None:
    assert parse_message(value, 99.0) == message


@pytest.mark.parametrize("value", [b"{not json", b"[1, 2]", b'"text"'])
def test_parse_message_refuses_what_is_not_an_object(value: bytes) -> None:
    with pytest.raises(ValueError):
        parse_message(value, 0.0)


def test_observations_fill_their_window_and_reach_the_table_once_per_batch() -> None:
    core, table = windows(), {}
    buffer = StateBuffer(table)
    for item in scores(30, T0 + 1.0) + scores(5, T0 + WINDOW_S + 1.0, seed=1):
        assert not core.fold(buffer, item, wall_now=T0 + 2.0).late
    assert table == {}  # nothing written before the flush
    buffer.flush()
    assert sorted(table) == [f"w:{T0}", f"w:{T0 + WINDOW_S}"]
    assert table[f"w:{T0}"]["n"] == 30 and table[f"w:{T0 + WINDOW_S}"]["n"] == 5
    assert table[f"w:{T0}"]["start"] == T0 and table[f"w:{T0}"]["end"] == T0 + WINDOW_S
    assert json.loads(json.dumps(table)) == table  # the whole state is JSON
    # a second batch continues the stored state
    fold_all(core, table, scores(10, T0 + 2.0, seed=2), T0 + 3.0)
    assert table[f"w:{T0}"]["n"] == 40


def test_an_observation_for_a_closed_window_is_late_unless_the_window_is_still_open() -> None:
    core, table = windows(), {}
    old = scores(1, T0 + 1.0)[0]
    after_grace = T0 + WINDOW_S + 5.0
    assert core.fold(StateBuffer(table), old, wall_now=after_grace).late
    assert table == {}
    fold_all(core, table, scores(1, T0 + 1.0), T0 + 2.0)  # the window exists (not yet closed)
    folded = core.fold(StateBuffer(table), old, wall_now=after_grace + 100.0)
    assert not folded.late


def test_feedback_folds_into_the_rolling_error_the_labelled_count_and_the_window() -> None:
    core, table = windows(), {}
    buffer = StateBuffer(table)
    errors = [
        core.fold(buffer, feedback(c, T0 + 1.0), wall_now=T0 + 2.0).feedback_error
        for c in (True, False, False, True)
    ]
    assert errors == [0.0, 0.5, 2 / 3, 0.5]
    assert core.fold(buffer, scores(1, T0 + 1.0)[0], wall_now=T0 + 2.0).feedback_error is None
    buffer.flush()
    assert table["labelled"] == {"version": "1", "count": 4}
    assert table["rolling"] == {"outcomes": [0, 1, 1, 0]}
    assert table[f"w:{T0}"]["feedback"] == {"n": 4, "correct": 2}
    fold_all(core, table, [feedback(True, T0 + 1.0, version="2")], T0 + 2.0)
    assert table["labelled"] == {"version": "2", "count": 1}  # a new version starts over


@pytest.mark.parametrize(
    ("item", "error"),
    [
        ([1, 2], StateError),
        ({"kind": "nope", "t": T0}, StateError),
        ({"kind": "score", "t": T0, "label": "positive"}, StateError),  # missing fields
        ({"kind": "feedback", "t": "soon", "correct": True, "model_version": "1"}, ValueError),
    ],
)
def test_bad_observations_raise(item: Any, error: type[Exception]) -> None:
    with pytest.raises(error):
        windows().fold(StateBuffer({}), item, wall_now=T0)


def test_a_window_under_min_events_closes_without_a_verdict() -> None:
    core, table = windows(), {}
    fold_all(core, table, scores(49, T0 + 1.0), T0 + 2.0)
    state, closed = core.pop(table, T0)
    assert closed is not None and (closed.outcome, closed.n_events) == ("too_few", 49)
    assert state["n"] == 49 and f"w:{T0}" not in table


def test_a_window_without_a_reference_closes_without_a_report() -> None:
    core, table = windows(), {}
    fold_all(core, table, scores(50, T0 + 1.0), T0 + 2.0)
    state, closed = core.pop(table, T0)
    assert closed is None  # enough events: judge it
    closed = core.judge(table, T0, state, None)
    assert closed.outcome == "no_reference" and closed.report is None


@pytest.mark.parametrize(("shift", "drifted"), [(0.0, False), (0.6, True)])
def test_a_closed_window_is_reported(reference: Reference, shift: float, drifted: bool) -> None:
    core, table = windows(), {}
    fold_all(core, table, scores(400, T0 + 1.0, seed=5, shift=shift), T0 + 2.0)
    state, _ = core.pop(table, T0)
    closed = core.judge(table, T0, state, reference)
    report = closed.report
    assert closed.outcome == "reported" and report is not None and closed.verdict is not None
    assert report.report_id == report_id(APP, T0, WINDOW_S)
    assert report.window_start.timestamp() == T0
    assert report.window_end.timestamp() == T0 + WINDOW_S
    assert (report.n_events, report.model_version, report.drifted) == (400, "1", drifted)
    assert report.drift_score == closed.verdict.drift_score


@pytest.mark.parametrize(
    ("n_feedback", "min_feedback", "recorded"), [(20, 10, True), (9, 10, False), (0, 1, False)]
)
def test_a_reported_windows_accuracy_joins_the_history(
    reference: Reference, n_feedback: int, min_feedback: int, recorded: bool
) -> None:
    core, table = windows(min_feedback=min_feedback), {}
    items = scores(60, T0 + 1.0) + [feedback(i % 4 != 0, T0 + 1.0) for i in range(n_feedback)]
    fold_all(core, table, items, T0 + 2.0)
    state, _ = core.pop(table, T0)
    closed = core.judge(table, T0, state, reference)
    core.record_accuracy(table, closed, state)
    expected = [[T0 + WINDOW_S, 0.75]] if recorded else None
    assert table.get("history") == expected


def test_the_history_keeps_trend_max_points_within_trend_days(reference: Reference) -> None:
    core, table = windows(trend_max_points=3, trend_days=1.0, min_feedback=1), {}
    table["history"] = [[T0 - 2 * 86400.0, 0.9], [T0 - 10.0, 0.8], [T0 - 5.0, 0.8], [T0, 0.7]]
    fold_all(core, table, scores(50, T0 + 1.0) + [feedback(True, T0 + 1.0)], T0 + 2.0)
    state, _ = core.pop(table, T0)
    core.record_accuracy(table, core.judge(table, T0, state, reference), state)
    # the 2-day-old point is past trend_days; of the rest, the last three are kept
    assert table["history"] == [[T0 - 5.0, 0.8], [T0, 0.7], [T0 + WINDOW_S, 1.0]]


def test_triggers_fire_on_the_rolling_error_once_per_window(reference: Reference) -> None:
    core, table = windows(), {}
    items = scores(50, T0 + 1.0) + [feedback(False, T0 + 1.0) for _ in range(10)]
    fold_all(core, table, items, T0 + 2.0)
    state, _ = core.pop(table, T0)
    closed = core.judge(table, T0, state, reference)
    now = T0 + WINDOW_S + 6.0
    request = core.retrain_request(table, now, reference, closed)
    assert request is not None and {"feedback", "performance"} <= set(request.reasons)
    assert request.dedupe_key == f"1:{int(T0 + WINDOW_S)}"
    assert request.statistics["rolling_error"] == 1.0
    assert request.statistics["labelled_since_training"] == 10.0
    assert table["triggers"]["fired_keys"] == [request.dedupe_key]
    # the same window never fires twice; the stored state is left as it was
    assert core.retrain_request(table, now + 1.0, reference, closed) is None
    assert table["triggers"]["fired_keys"] == [request.dedupe_key]


def test_no_trigger_leaves_the_trigger_state_unset(reference: Reference) -> None:
    core, table = windows(), {}
    fold_all(core, table, scores(50, T0 + 1.0), T0 + 2.0)
    state, _ = core.pop(table, T0)
    closed = core.judge(table, T0, state, reference)
    assert core.retrain_request(table, T0 + WINDOW_S + 6.0, reference, closed) is None
    assert "triggers" not in table


def _drifted_window(core: DriftWindows, table: dict[str, Any], reference: Reference, n_fb: int):  # noqa: ANN202
    items = scores(400, T0 + 1.0, seed=5, shift=0.6)
    items += [feedback(True, T0 + 1.0) for _ in range(n_fb)]
    fold_all(core, table, items, T0 + 2.0)
    state, _ = core.pop(table, T0)
    closed = core.judge(table, T0, state, reference)
    assert closed.report is not None and closed.report.drifted
    return closed


def test_drift_without_new_labels_is_an_alert_not_a_retrain(reference: Reference) -> None:
    core, table = windows(), {}
    closed = _drifted_window(core, table, reference, n_fb=0)
    assert core.unlabelled_drift(table, reference, closed)
    assert core.retrain_request(table, T0 + WINDOW_S + 6.0, reference, closed) is None
    assert "triggers" not in table  # nothing fired: no cooldown blocks the next retrain


def test_drift_with_new_labels_requests_a_retrain(reference: Reference) -> None:
    core, table = windows(), {}
    labels = TriggerConfig().drift_min_labelled
    closed = _drifted_window(core, table, reference, n_fb=labels)
    assert not core.unlabelled_drift(table, reference, closed)
    request = core.retrain_request(table, T0 + WINDOW_S + 6.0, reference, closed)
    assert request is not None and request.reasons == ["drift"]
    assert request.statistics["labelled_since_training"] == labels


def test_the_timer_fires_the_time_trigger_on_a_quiet_stream(reference: Reference) -> None:
    core, table = windows(), {}  # no observation at all: no window ever closes
    trained = reference.created_at
    assert core.timer_request(table, trained + 29 * 86400.0, reference) is None
    request = core.timer_request(table, trained + 30 * 86400.0, reference)
    assert request is not None and request.reasons == ["time"]
    assert request.model_version == reference.model_version and request.window_end is None
    assert table["triggers"]["fired_keys"] == [request.dedupe_key]
