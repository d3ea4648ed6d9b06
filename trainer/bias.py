"""Decision bias: per-class offsets added to a fine-tuned classifier's output bias, chosen for
macro-F1 on held-out rows of the domain it will serve.

Argmax of the probabilities is the accuracy-optimal rule, not the macro-F1-optimal one: for a
class the model separates poorly (rating-3 "neutral" product reviews: F1 0.15-0.25) the
F1-optimal threshold lies well below one half (Lipton et al., 2014, "Thresholding classifiers
to maximize F1 score"). Adding ``b_c`` to class ``c``'s logit is the same as multiplying its
probability by ``exp(b_c)`` and renormalising (a prior shift), so the label stays the argmax of
the served probabilities. The offsets go into the classification head's bias before the ONNX
export: the serving folder needs nothing new. One offset per named class from a coarse grid,
so a few hundred held-out rows are enough to choose it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from schemas.events import LABELS
from trainer.errors import TrainingError

#: the offsets tried for each class (0 = the model as trained)
GRID: tuple[float, ...] = (-1.0, -0.75, -0.5, -0.25, 0.0, 0.25, 0.5, 0.75, 1.0)


@dataclass(frozen=True)
class BiasChoice:
    """The chosen offsets and macro-F1 on the choosing rows without and with them."""

    offsets: dict[str, float]
    macro_f1_before: float
    macro_f1_after: float
    n: int
    scores: dict[str, list[float]] = field(default_factory=dict)  # per class, over GRID

    def as_dict(self) -> dict[str, Any]:
        return {
            "offsets": self.offsets,
            "macro_f1_before": round(self.macro_f1_before, 4),
            "macro_f1_after": round(self.macro_f1_after, 4),
            "n": self.n,
        }


def macro_f1(truth: np.ndarray, pred: np.ndarray, n_classes: int) -> float:
    scores = []
    for c in range(n_classes):
        tp = float(np.sum((pred == c) & (truth == c)))
        fp = float(np.sum((pred == c) & (truth != c)))
        fn = float(np.sum((pred != c) & (truth == c)))
        scores.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
    return float(np.mean(scores))


def choose_bias(
    log_probs: np.ndarray,
    labels: Sequence[str],
    classes: Sequence[str],
    *,
    grid: Sequence[float] = GRID,
) -> BiasChoice:
    """Offsets for ``classes`` (in order, each given the ones chosen before it) that maximise
    macro-F1 of ``argmax(log_probs + offsets)`` against ``labels``; a tie keeps the offset
    nearest 0. ``log_probs`` is ``(n, len(LABELS))`` in LABELS order."""
    unknown = sorted(set(classes) - set(LABELS))
    if unknown:
        raise TrainingError(f"decision bias for unknown classes {unknown} (labels: {LABELS})")
    if log_probs.ndim != 2 or log_probs.shape != (len(labels), len(LABELS)):
        raise TrainingError(
            f"{log_probs.shape} scores for {len(labels)} rows of {len(LABELS)} classes"
        )
    if not len(labels):
        raise TrainingError("no rows to choose a decision bias on")
    truth = np.asarray([LABELS.index(label) for label in labels])
    offsets = np.zeros(len(LABELS))
    before = macro_f1(truth, log_probs.argmax(axis=1), len(LABELS))
    scores: dict[str, list[float]] = {}
    for name in classes:
        c = LABELS.index(name)
        row = []
        for value in grid:
            trial = offsets.copy()
            trial[c] = value
            row.append(macro_f1(truth, (log_probs + trial).argmax(axis=1), len(LABELS)))
        best = max(row)
        offsets[c] = min((v for v, s in zip(grid, row, strict=True) if s == best), key=abs)
        scores[name] = [round(s, 4) for s in row]
    after = macro_f1(truth, (log_probs + offsets).argmax(axis=1), len(LABELS))
    return BiasChoice(
        {name: float(offsets[LABELS.index(name)]) for name in classes},
        before,
        after,
        len(labels),
        scores,
    )


def apply_bias(model: Any, offsets: dict[str, float]) -> None:
    """Add ``offsets`` to the classification head's output bias (in place)."""
    import torch

    head = getattr(model, "classifier", None)
    bias = getattr(head, "bias", None)
    if bias is None or bias.shape[0] != len(LABELS):
        raise TrainingError("the model has no classification head bias of one row per label")
    id2label = {int(k): str(v).lower() for k, v in model.config.id2label.items()}
    if [id2label.get(i) for i in range(len(LABELS))] != list(LABELS):
        raise TrainingError(f"the model's labels {id2label} are not {LABELS} in that order")
    with torch.no_grad():
        for name, value in offsets.items():
            bias[LABELS.index(name)] += float(value)
