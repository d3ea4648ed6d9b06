"""Unit tests of trainer.metrics: against scikit-learn and hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    f1_score,
    precision_recall_fscore_support,
)

from schemas.events import LABELS
from trainer.errors import MetricsError
from trainer.metrics import classification_report, plot_confusion

label_lists = st.lists(st.sampled_from(LABELS), min_size=1, max_size=60)


def test_hand_computed_report() -> None:
    y_true = ["negative", "neutral", "positive", "positive"]
    y_pred = ["negative", "positive", "positive", "positive"]
    probs = np.array([[0.9, 0.05, 0.05], [0.2, 0.3, 0.5], [0.1, 0.1, 0.8], [0.0, 0.0, 1.0]])
    report = classification_report(y_true, y_pred, probs)
    assert report["n"] == 4
    assert report["accuracy"] == pytest.approx(0.75)
    # F1: negative 1.0, neutral 0.0 (never predicted), positive 0.8.
    assert report["macro_f1"] == pytest.approx(0.6)
    assert report["per_class"]["neutral"] == {
        "precision": 0.0,
        "recall": 0.0,
        "f1": 0.0,
        "support": 1,
    }
    assert report["per_class"]["positive"]["precision"] == pytest.approx(2 / 3)
    assert report["confusion_matrix"] == [[1, 0, 0], [0, 0, 1], [0, 0, 2]]
    # Gaps per example: |1-.9|, |0-.5|, |1-.8|, |1-1|, each in its own bin.
    assert report["ece"] == pytest.approx(0.2)


def test_ece_is_none_without_probs() -> None:
    assert classification_report(["positive"], ["positive"])["ece"] is None


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_matches_scikit_learn(data: st.DataObject) -> None:
    y_true = data.draw(label_lists)
    y_pred = data.draw(
        st.lists(st.sampled_from(LABELS), min_size=len(y_true), max_size=len(y_true))
    )
    report = classification_report(y_true, y_pred)
    labels = list(LABELS)
    assert report["accuracy"] == pytest.approx(accuracy_score(y_true, y_pred))
    assert report["macro_f1"] == pytest.approx(
        f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)
    )
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    for i, label in enumerate(labels):
        assert report["per_class"][label]["precision"] == pytest.approx(p[i])
        assert report["per_class"][label]["recall"] == pytest.approx(r[i])
        assert report["per_class"][label]["f1"] == pytest.approx(f[i])
        assert report["per_class"][label]["support"] == s[i]
    assert report["confusion_matrix"] == confusion_matrix(y_true, y_pred, labels=labels).tolist()


def test_perfectly_calibrated_confident_model_has_zero_ece() -> None:
    y = ["negative", "neutral", "positive"]
    report = classification_report(y, y, np.eye(3))
    assert report["ece"] == pytest.approx(0.0)


@pytest.mark.parametrize(
    ("y_true", "y_pred", "probs", "message"),
    [
        ([], [], None, "no examples"),
        (["positive"], ["positive", "negative"], None, "1 true labels but 2"),
        (["Positive"], ["positive"], None, "not among"),
        (["positive"], ["good"], None, "not among"),
        (["positive"], ["positive"], np.array([[0.5, 0.5]]), "shape"),
        (["positive"], ["positive"], np.array([[np.nan, 0.5, 0.5]]), "finite"),
    ],
)
def test_bad_input_is_a_clear_error(y_true, y_pred, probs, message) -> None:
    with pytest.raises(MetricsError, match=message):
        classification_report(y_true, y_pred, probs)


def test_plot_confusion_writes_a_png(tmp_path) -> None:
    report = classification_report(["negative", "positive"], ["negative", "neutral"])
    path = plot_confusion(report, tmp_path / "sub" / "cm.png", title="test")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
