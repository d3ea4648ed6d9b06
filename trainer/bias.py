"""Decision bias: per-class offsets added to a fine-tuned classifier's output bias, chosen for
macro-F1 on held-out rows of the domain it will serve.

Argmax of the probabilities is the accuracy-optimal rule, not the macro-F1-optimal one: for a
class the model separates poorly (rating-3 "neutral" product reviews: F1 0.15-0.25) the
F1-optimal threshold lies well below one half (Lipton et al., 2014, "Thresholding classifiers
to maximize F1 score"). Adding ``b_c`` to class ``c``'s logit is the same as multiplying its
probability by ``exp(b_c)`` and renormalising (a prior shift), so the label stays the argmax of
the served probabilities. The offsets go into the classification head's bias before the ONNX
export: the serving folder needs nothing new.

One offset per named class. On a few hundred held-out rows with a rare class the best grid
point is noisy, so the offset is bagged: the best grid point (ties nearest 0) of each of
``bootstrap`` resamples of the rows, averaged. Measured offline on seven retrained scenario
models (offsets chosen on the stream hold-out, scored on the scenario's separate hold-out),
the plain best grid point changed macro-F1 by -1.7 .. +2.1 points, mean +0.6; the bagged one
by -0.9 .. +2.0, mean +0.7 (docs/benchmarks.md "Closed loop").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from schemas.events import LABELS
from trainer.errors import TrainingError
from trainer.metrics import macro_f1

#: the offsets tried for each class (0 = the model as trained)
GRID: tuple[float, ...] = (-1.0, -0.75, -0.5, -0.25, 0.0, 0.25, 0.5, 0.75, 1.0)
#: bootstrap resamples whose best grid points are averaged
BOOTSTRAP = 200


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


def _best(grid: Sequence[float], scores: Sequence[float]) -> float:
    top = max(scores)
    return min((v for v, s in zip(grid, scores, strict=True) if s == top), key=abs)


def choose_bias(
    log_probs: np.ndarray,
    labels: Sequence[str],
    classes: Sequence[str],
    *,
    grid: Sequence[float] = GRID,
    bootstrap: int = BOOTSTRAP,
    seed: int = 0,
) -> BiasChoice:
    """Offsets for ``classes`` (in order, each given the ones chosen before it) for macro-F1
    of ``argmax(log_probs + offsets)`` against ``labels``: per class, the mean over
    ``bootstrap`` resamples of the rows of the grid value that maximises macro-F1 on the
    resample (a tie keeps the value nearest 0); ``bootstrap=0`` takes the best grid value on
    all rows. ``log_probs`` is ``(n, len(LABELS))`` in LABELS order."""
    unknown = sorted(set(classes) - set(LABELS))
    if unknown:
        raise TrainingError(f"decision bias for unknown classes {unknown} (labels: {LABELS})")
    if log_probs.ndim != 2 or log_probs.shape != (len(labels), len(LABELS)):
        raise TrainingError(
            f"{log_probs.shape} scores for {len(labels)} rows of {len(LABELS)} classes"
        )
    if not len(labels):
        raise TrainingError("no rows to choose a decision bias on")
    if bootstrap < 0:
        raise TrainingError(f"bootstrap must be >= 0, got {bootstrap}")
    truth = np.asarray([LABELS.index(label) for label in labels])
    n, k = len(truth), len(LABELS)
    rng = np.random.default_rng(seed)
    offsets = np.zeros(k)
    before = macro_f1(truth, log_probs.argmax(axis=1), k)
    scores: dict[str, list[float]] = {}
    for name in classes:
        c = LABELS.index(name)
        preds = []
        for value in grid:
            trial = offsets.copy()
            trial[c] = value
            preds.append((log_probs + trial).argmax(axis=1))
        row = [macro_f1(truth, pred, k) for pred in preds]
        scores[name] = [round(s, 4) for s in row]
        if bootstrap == 0:
            offsets[c] = _best(grid, row)
            continue
        picks = []
        for _ in range(bootstrap):
            idx = rng.integers(0, n, n)
            picks.append(_best(grid, [macro_f1(truth[idx], pred[idx], k) for pred in preds]))
        offsets[c] = round(float(np.mean(picks)), 4)
    after = macro_f1(truth, (log_probs + offsets).argmax(axis=1), k)
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
