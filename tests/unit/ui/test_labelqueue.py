"""The label queue's "most drifted" order."""

from __future__ import annotations

from ui import labelqueue


def test_only_drifted_per_review_signals_rank() -> None:
    signals = [
        {"name": "word_count", "drifted": True},
        {"name": "predicted", "drifted": True},  # a window-level signal: no per-review value
        {"name": "exclamation_marks", "drifted": False},
    ]
    assert labelqueue.drifted_columns(signals) == ["word_count"]


def test_reviews_far_from_the_previous_window_come_first() -> None:
    baseline = [
        {"review_id": f"b{i}", "word_count": 10 + i % 3, "confidence": 0.9} for i in range(30)
    ]
    window = [
        {"review_id": "near", "word_count": 11, "confidence": 0.5},
        {"review_id": "far", "word_count": 80, "confidence": 0.9},
        {"review_id": "mid", "word_count": 20, "confidence": 0.9},
    ]
    ranked = labelqueue.drift_scores(window, baseline, ["word_count"])
    assert [r["review_id"] for _, r in ranked] == ["far", "mid", "near"]
    assert ranked[0][0] > ranked[1][0] > ranked[2][0]


def test_without_a_baseline_the_window_is_its_own_reference() -> None:
    window = [{"review_id": str(i), "confidence": c} for i, c in enumerate([0.9, 0.9, 0.2])]
    ranked = labelqueue.drift_scores(window, [], ["confidence"])
    assert ranked[0][1]["review_id"] == "2"
