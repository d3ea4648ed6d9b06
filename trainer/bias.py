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

The base domain guards the choice (session 17). Offsets chosen on the serving domain's rows
alone are a source of forgetting of their own: in session 16's closed loop a neutral offset of
-0.50 raised the stream hold-out by 0.8 points and cost SmSA valid-dedup 0.6, after the weight
mix had kept it within 0.005. So, given a :class:`BaseRows` (the fixed evaluation set, scored
by the same model), a grid value is a candidate only when macro-F1 on the base rows stays
within ``tolerance`` of their score without offsets, and a bagged mean that falls outside is
shrunk towards 0 (:data:`SHRINK`) until it is inside.
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
#: the shares of a bagged offset tried, largest first, when it costs the base rows too much
SHRINK: tuple[float, ...] = (1.0, 0.75, 0.5, 0.25, 0.0)


@dataclass(frozen=True)
class BaseRows:
    """Rows of the base domain (log-probabilities in LABELS order, labels) on which the
    offsets may cost at most ``tolerance`` macro-F1."""

    log_probs: np.ndarray
    labels: Sequence[str]
    tolerance: float


@dataclass(frozen=True)
class BiasChoice:
    """The chosen offsets and macro-F1 on the choosing rows without and with them."""

    offsets: dict[str, float]
    macro_f1_before: float
    macro_f1_after: float
    n: int
    scores: dict[str, list[float]] = field(default_factory=dict)  # per class, over GRID
    #: the base rows' macro-F1 without and with the offsets, their count and the tolerance
    #: (None: no base rows were given)
    base: dict[str, float | int] | None = None
    #: the offsets reach the tagged sources' texts only (the manifest's domain_offsets), not
    #: the model's head: the base domain is scored without them
    domain: bool = False

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "offsets": self.offsets,
            "macro_f1_before": round(self.macro_f1_before, 4),
            "macro_f1_after": round(self.macro_f1_after, 4),
            "n": self.n,
            "scope": "tagged sources" if self.domain else "all texts",
        }
        if self.base is not None:
            out["base"] = self.base
        return out


def _best(grid: Sequence[float], scores: Sequence[float], allowed: Sequence[bool]) -> float:
    top = max(s for s, ok in zip(scores, allowed, strict=True) if ok)
    return min(
        (v for v, s, ok in zip(grid, scores, allowed, strict=True) if ok and s == top), key=abs
    )


class _BaseGuard:
    """Macro-F1 of offsets on the base rows against their score without offsets."""

    def __init__(self, base: BaseRows | None) -> None:
        self.rows = base
        if base is None:
            return
        if base.tolerance < 0:
            raise TrainingError(f"base tolerance must be >= 0, got {base.tolerance}")
        if base.log_probs.ndim != 2 or base.log_probs.shape != (len(base.labels), len(LABELS)):
            raise TrainingError(
                f"{base.log_probs.shape} base scores for {len(base.labels)} rows of "
                f"{len(LABELS)} classes"
            )
        if not len(base.labels):
            raise TrainingError("no base rows to guard the decision bias with")
        self.truth = np.asarray([LABELS.index(label) for label in base.labels])
        self.before = self.score(np.zeros(len(LABELS)))

    def score(self, offsets: np.ndarray) -> float:
        assert self.rows is not None
        return macro_f1(self.truth, (self.rows.log_probs + offsets).argmax(axis=1), len(LABELS))

    def allows(self, offsets: np.ndarray) -> bool:
        if self.rows is None:
            return True
        return self.score(offsets) >= self.before - self.rows.tolerance - 1e-12

    def record(self, offsets: np.ndarray) -> dict[str, float | int] | None:
        if self.rows is None:
            return None
        return {
            "macro_f1_before": round(self.before, 4),
            "macro_f1_after": round(self.score(offsets), 4),
            "n": len(self.rows.labels),
            "tolerance": self.rows.tolerance,
        }


def _check(
    log_probs: np.ndarray,
    labels: Sequence[str],
    classes: Sequence[str],
    *,
    grid: Sequence[float],
    bootstrap: int,
    guarded: bool,
) -> None:
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
    if guarded and 0.0 not in grid:
        raise TrainingError(f"a decision bias guarded by base rows needs 0 in its grid: {grid}")


def choose_bias(
    log_probs: np.ndarray,
    labels: Sequence[str],
    classes: Sequence[str],
    *,
    grid: Sequence[float] = GRID,
    bootstrap: int = BOOTSTRAP,
    seed: int = 0,
    base: BaseRows | None = None,
) -> BiasChoice:
    """Offsets for ``classes`` (in order, each given the ones chosen before it) for macro-F1
    of ``argmax(log_probs + offsets)`` against ``labels``: per class, the mean over
    ``bootstrap`` resamples of the rows of the grid value that maximises macro-F1 on the
    resample (a tie keeps the value nearest 0); ``bootstrap=0`` takes the best grid value on
    all rows. ``log_probs`` is ``(n, len(LABELS))`` in LABELS order. With ``base``, only grid
    values within the base rows' tolerance compete, and a mean outside it is shrunk by
    :data:`SHRINK` (0 is always inside: the offsets chosen before it already are)."""
    _check(log_probs, labels, classes, grid=grid, bootstrap=bootstrap, guarded=base is not None)
    guard = _BaseGuard(base)
    truth = np.asarray([LABELS.index(label) for label in labels])
    n, k = len(truth), len(LABELS)
    rng = np.random.default_rng(seed)
    offsets = np.zeros(k)
    before = macro_f1(truth, log_probs.argmax(axis=1), k)
    scores: dict[str, list[float]] = {}
    for name in classes:
        c = LABELS.index(name)
        preds, allowed = [], []
        for value in grid:
            trial = offsets.copy()
            trial[c] = value
            preds.append((log_probs + trial).argmax(axis=1))
            allowed.append(value == 0.0 or guard.allows(trial))
        row = [macro_f1(truth, pred, k) for pred in preds]
        scores[name] = [round(s, 4) for s in row]
        if bootstrap == 0:
            offsets[c] = _best(grid, row, allowed)
            continue
        picks = []
        for _ in range(bootstrap):
            idx = rng.integers(0, n, n)
            resampled = [macro_f1(truth[idx], pred[idx], k) for pred in preds]
            picks.append(_best(grid, resampled, allowed))
        mean = float(np.mean(picks))
        for share in SHRINK:
            offsets[c] = round(mean * share, 4)
            if guard.allows(offsets):
                break
    after = macro_f1(truth, (log_probs + offsets).argmax(axis=1), k)
    return BiasChoice(
        {name: float(offsets[LABELS.index(name)]) for name in classes},
        before,
        after,
        len(labels),
        scores,
        guard.record(offsets),
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
