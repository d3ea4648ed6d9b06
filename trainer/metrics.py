"""Classification metrics of a sentiment model: accuracy, macro-F1, per class, confusion, ECE."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from schemas.events import LABELS
from trainer.errors import MetricsError

ECE_BINS = 10


def classification_report(
    y_true: Sequence[str],
    y_pred: Sequence[str],
    probs: np.ndarray | None = None,
    labels: Sequence[str] = LABELS,
) -> dict[str, Any]:
    """Score predictions against the truth.

    ``probs`` (optional) is an ``(n, len(labels))`` array of class probabilities in ``labels``
    order; it is needed for the expected calibration error (``ece``: 10 equal-width confidence
    bins, weighted mean of ``|accuracy - confidence|``), which is ``None`` without it.

    Returns a JSON-serialisable dict: ``n``, ``accuracy``, ``macro_f1`` (unweighted mean of the
    per-class F1 over every label in ``labels``), ``per_class`` (label -> precision, recall, f1,
    support), ``confusion_matrix`` (rows = true, columns = predicted, in ``labels`` order),
    ``labels`` and ``ece``. A class that is never predicted has precision 0.

    Raises :class:`MetricsError` on empty input, length mismatches, labels outside ``labels``
    or a malformed ``probs`` array.
    """
    labels = list(labels)
    index = _check_labels(y_true, y_pred, labels)
    k = len(labels)
    t = np.fromiter((index[y] for y in y_true), dtype=np.int64, count=len(y_true))
    p = np.fromiter((index[y] for y in y_pred), dtype=np.int64, count=len(y_pred))
    cm = np.zeros((k, k), dtype=np.int64)
    np.add.at(cm, (t, p), 1)

    per_class = _per_class(cm, labels)
    f1s = [float(scores["f1"]) for scores in per_class.values()]

    ece = None
    if probs is not None:
        ece = expected_calibration_error(probs, t, n_classes=k)

    return {
        "n": len(y_true),
        "accuracy": float(np.trace(cm) / cm.sum()),
        "macro_f1": float(np.mean(f1s)),
        "per_class": per_class,
        "confusion_matrix": cm.tolist(),
        "labels": labels,
        "ece": ece,
    }


def _check_labels(
    y_true: Sequence[str], y_pred: Sequence[str], labels: list[str]
) -> dict[str, int]:
    """Each label's index; :class:`MetricsError` on what classification_report refuses."""
    if len(set(labels)) != len(labels) or not labels:
        raise MetricsError(f"labels must be distinct and non-empty, got {labels}")
    if len(y_true) != len(y_pred):
        raise MetricsError(f"{len(y_true)} true labels but {len(y_pred)} predictions")
    if not y_true:
        raise MetricsError("nothing to score: no examples")
    index = {label: i for i, label in enumerate(labels)}
    unknown = sorted({str(y) for y in (*y_true, *y_pred) if y not in index})
    if unknown:
        raise MetricsError(f"labels {unknown} are not among {labels}")
    return index


def _per_class(cm: np.ndarray, labels: list[str]) -> dict[str, dict[str, float | int]]:
    """Precision, recall, F1 and support of each label from the confusion matrix."""
    per_class: dict[str, dict[str, float | int]] = {}
    for i, label in enumerate(labels):
        tp = int(cm[i, i])
        predicted = int(cm[:, i].sum())
        support = int(cm[i, :].sum())
        precision = tp / predicted if predicted else 0.0
        recall = tp / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[label] = {
            "precision": precision,
            "recall": recall,
            "f1": f1,
            "support": support,
        }
    return per_class


def macro_f1(truth: np.ndarray, pred: np.ndarray, n_classes: int) -> float:
    """Macro-F1 of integer class arrays (classes ``0..n_classes-1``; a class neither present
    nor predicted scores 0): the array core of :func:`classification_report`'s ``macro_f1``,
    cheap enough to call in a bootstrap loop."""
    cm = np.bincount(truth * n_classes + pred, minlength=n_classes * n_classes).reshape(
        n_classes, n_classes
    )
    tp = np.diag(cm).astype(np.float64)
    denominator = cm.sum(axis=0) + cm.sum(axis=1)  # 2 tp + fp + fn
    f1 = np.divide(2 * tp, denominator, out=np.zeros(n_classes), where=denominator > 0)
    return float(f1.mean())


def expected_calibration_error(
    probs: np.ndarray, true_index: np.ndarray, *, n_classes: int, bins: int = ECE_BINS
) -> float:
    """Top-label ECE: bin by the predicted class's probability, weight by the bin's share."""
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 2 or probs.shape != (len(true_index), n_classes):
        raise MetricsError(
            f"probs must have shape ({len(true_index)}, {n_classes}), got {probs.shape}"
        )
    if not np.all(np.isfinite(probs)) or probs.min() < 0 or probs.max() > 1 + 1e-6:
        raise MetricsError("probs must be finite probabilities in [0, 1]")
    confidence = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == true_index).astype(np.float64)
    # Bin i holds confidences in (i/bins, (i+1)/bins]; a confidence of exactly 0 joins bin 0.
    bin_of = np.clip(np.ceil(confidence * bins).astype(np.int64) - 1, 0, bins - 1)
    ece = 0.0
    n = len(confidence)
    for b in range(bins):
        in_bin = bin_of == b
        count = int(in_bin.sum())
        if count:
            gap = abs(correct[in_bin].mean() - confidence[in_bin].mean())
            ece += count / n * gap
    return float(ece)


def plot_confusion(report: dict[str, Any], path: str | Path, *, title: str | None = None) -> Path:
    """Draw ``report["confusion_matrix"]`` as a PNG at ``path`` (counts and row shares)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cm = np.asarray(report["confusion_matrix"], dtype=np.int64)
    labels = list(report.get("labels") or LABELS)
    if cm.shape != (len(labels), len(labels)):
        raise MetricsError(f"confusion matrix of shape {cm.shape} does not match {labels}")
    row_sums = cm.sum(axis=1, keepdims=True)
    shares = np.divide(cm, row_sums, out=np.zeros(cm.shape, dtype=np.float64), where=row_sums > 0)

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(4.8, 4.2), dpi=120)
    try:
        ax.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0)
        ax.set_xticks(range(len(labels)), labels=labels)
        ax.set_yticks(range(len(labels)), labels=labels)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        heading = title or "confusion matrix"
        ax.set_title(
            f"{heading}\nn={int(cm.sum())}  acc={report['accuracy']:.3f}  "
            f"macro-F1={report['macro_f1']:.3f}",
            fontsize=9,
        )
        for i in range(len(labels)):
            for j in range(len(labels)):
                ax.text(
                    j,
                    i,
                    f"{cm[i, j]}\n{shares[i, j]:.0%}",
                    ha="center",
                    va="center",
                    fontsize=8,
                    color="white" if shares[i, j] > 0.5 else "black",
                )
        fig.tight_layout()
        fig.savefig(path, format="png")
    finally:
        plt.close(fig)
    return path
