"""validate(): every reason as a table, duplicates and conflicts, imbalance, the report."""

from __future__ import annotations

import json

import pytest

from trainer.data import RATING_RAW, Example, load_smsa
from trainer.errors import DataError
from trainer.validation import REASONS, validate


def ex(text: str, label: str | None = "positive", **kw: object) -> Example:
    return Example(text, label, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("example", "reason"),
    [
        (ex(""), "empty_text"),
        (ex("   \n"), "empty_text"),
        (ex("ab"), "too_short"),
        (ex("x" * 51), "too_long"),
        (ex("bagus", None), "missing_label"),
        (ex("bagus", "good"), "bad_label"),
        (ex("bagus", "positive", rating=0), "bad_rating"),
        (ex("bagus", "positive", rating=6), "bad_rating"),
        (ex("bagus", None, meta={RATING_RAW: "lima"}), "missing_label"),
        (ex("bagus", "positive", meta={RATING_RAW: "lima"}), "bad_rating"),
        (ex("bagus sekali", "positive", rating=5), None),
    ],
)
def test_row_reasons(example: Example, reason: str | None) -> None:
    report = validate([example], min_chars=3, max_chars=50)
    if reason is None:
        assert report.accepted == [example] and not report.rejected
    else:
        assert not report.accepted
        assert [(r.index, r.reason) for r in report.rejected] == [(0, reason)]
        assert report.reason_counts[reason] == 1


def test_every_reason_is_documented() -> None:
    report = validate([ex("bagus")])
    assert set(report.reason_counts) == set(REASONS)


def test_duplicates_keep_the_first_and_compare_cleaned_text() -> None:
    rows = [
        ex("Barang bagus!", id="a"),
        ex("barang   BAGUS!", id="b"),  # the same once cleaned
        ex("barang bagus!!!!", id="c"),  # squeezed to "!!": a different text
        ex("Barang bagus!", id="d"),
    ]
    report = validate(rows)
    assert [e.id for e in report.accepted] == ["a", "c"]
    assert [(r.index, r.reason, r.id) for r in report.rejected] == [
        (1, "duplicate", "b"),
        (3, "duplicate", "d"),
    ]


def test_conflicting_labels_reject_every_copy() -> None:
    rows = [
        ex("lumayan", "positive"),
        ex("oke", "neutral"),
        ex("Lumayan", "neutral"),
        ex("lumayan", "positive"),
    ]
    report = validate(rows)
    assert [e.text for e in report.accepted] == ["oke"]
    assert [(r.index, r.reason) for r in report.rejected] == [
        (0, "conflicting_label"),
        (2, "conflicting_label"),
        (3, "conflicting_label"),
    ]


def test_rows_rejected_for_themselves_do_not_take_part_in_conflicts() -> None:
    report = validate([ex("bagus", "positive"), ex("bagus", "bad")])
    assert [e.label for e in report.accepted] == ["positive"]
    assert report.rejected[0].reason == "bad_label"


def test_unlabelled_rows_when_labels_are_not_required() -> None:
    rows = [ex("satu", None), ex("dua", None), ex("satu", None), ex("satu", "positive")]
    report = validate(rows, require_label=False)
    assert [e.text for e in report.accepted] == ["satu", "dua"]
    assert [r.reason for r in report.rejected] == ["duplicate", "duplicate"]


def test_imbalance_is_a_warning_with_the_ratio() -> None:
    rows = [ex(f"bagus {i}") for i in range(12)] + [ex("jelek", "negative"), ex("biasa", "neutral")]
    report = validate(rows, max_imbalance=5.0)
    assert len(report.accepted) == 14
    assert report.imbalance_ratio == 12.0
    assert any("12.00:1" in w and "positive 12" in w for w in report.warnings)
    balanced = validate(rows[:1] + rows[-2:])
    assert balanced.imbalance_ratio == 1.0 and not balanced.warnings


def test_a_missing_class_is_a_warning() -> None:
    report = validate([ex("bagus"), ex("jelek", "negative")])
    assert report.warnings == ["no examples of label 'neutral'"]


def test_report_to_dict_is_json_and_bounded() -> None:
    rows = [ex("")] * 5 + [ex("bagus"), ex("jelek " * 30, "negative")]
    report = validate(rows, max_chars=100)
    d = report.to_dict(max_rejections=3)
    json.dumps(d)
    assert d["total"] == 7 and d["accepted"] == 1 and d["rejected"] == 6
    assert d["reason_counts"]["empty_text"] == 5 and d["reason_counts"]["too_long"] == 1
    assert len(d["rejections"]) == 3 and d["rejections_left_out"] == 3
    assert d["label_distribution"] == {"negative": 0, "neutral": 0, "positive": 1}
    assert report.rejected[-1].preview.endswith("…") and len(report.rejected[-1].preview) == 80


def test_check_raises_when_too_much_is_rejected() -> None:
    report = validate([ex(""), ex(""), ex("bagus")])
    report.check(max_rejected_fraction=0.7)
    with pytest.raises(DataError, match="empty_text=2"):
        report.check(max_rejected_fraction=0.5)
    with pytest.raises(DataError, match="only 0 of 1"):
        validate([ex("")]).check()


def test_bad_bounds_are_refused() -> None:
    with pytest.raises(DataError, match="bounds"):
        validate([], min_chars=10, max_chars=5)


def test_smsa_train_validates_with_only_duplicates_rejected() -> None:
    report = validate(load_smsa("train"))
    counts = {k: v for k, v in report.reason_counts.items() if v}
    assert counts == {"duplicate": 67}
    assert len(report.accepted) == 11000 - 67
    assert report.imbalance_ratio is not None and report.imbalance_ratio > 5  # positive vs neutral
