"""Weight interpolation of a continued model with the checkpoint it started from (WiSE-FT,
Wortsman et al. 2022, "Robust fine-tuning of zero-shot models").

A retrain continues the champion's checkpoint on the new domain's reviews and a share of the
base corpus; fine-tuning moves the weights away from what the base domain needs. Mixing the
two weight sets, ``(1 - alpha) * start + alpha * tuned``, keeps most of the new domain's gain
at a fraction of the loss on the base domain (the loss is not linear in alpha: both ends sit in
one basin of the loss surface, as both come from the same pre-trained weights).

The share is chosen on the fixed evaluation set (SmSA valid-dedup, what the gate's base guard
compares): the largest ``alpha`` of :data:`GRID` whose macro-F1 there stays within
``tolerance`` of the starting checkpoint's own (scored with its own tokenizer); when none does,
the one that loses least. The gate still judges the result (int8, the champion's recorded
scores, the stream hold-out).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from schemas.events import LABELS
from trainer.data import Example
from trainer.metrics import macro_f1
from trainer.modeling import load_classifier
from trainer.train import predict_proba

#: the shares of the fine-tuned weights tried, largest (all fine-tuned) first
GRID: tuple[float, ...] = (1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3)


@dataclass(frozen=True)
class Interpolation:
    """The share chosen, the starting checkpoint's score and each share's (macro-F1 on ``n``
    rows of the fixed evaluation set)."""

    alpha: float
    start_macro_f1: float
    scores: dict[float, float]
    n: int
    tolerance: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "alpha": self.alpha,
            "start_macro_f1": round(self.start_macro_f1, 6),
            "scores": {str(a): round(s, 6) for a, s in self.scores.items()},
            "n": self.n,
            "tolerance": self.tolerance,
        }


def mix_state(start: Mapping[str, Any], tuned: Mapping[str, Any], alpha: float) -> dict[str, Any]:
    """``(1 - alpha) * start + alpha * tuned`` for each floating-point tensor the two share.

    Tensors only ``tuned`` has, and integer buffers, are taken from ``tuned``. A matrix that
    ``tuned`` has more rows of (the embedding of a vocabulary the retrain extended) is mixed on
    the shared rows; the added rows stay as ``tuned`` has them (``start`` has no value there).
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    out: dict[str, Any] = {}
    for name, value in tuned.items():
        old = start.get(name)
        if old is None or not value.is_floating_point():
            out[name] = value
        elif old.shape == value.shape:
            out[name] = (1.0 - alpha) * old + alpha * value
        elif old.dim() == value.dim() and old.shape[1:] == value.shape[1:]:
            mixed = value.clone()
            rows = min(old.shape[0], value.shape[0])
            mixed[:rows] = (1.0 - alpha) * old[:rows] + alpha * value[:rows]
            out[name] = mixed
        else:
            raise ValueError(f"{name}: shapes {tuple(old.shape)} and {tuple(value.shape)} differ")
    return out


def choose_alpha(scores: Mapping[float, float], start: float, tolerance: float) -> float:
    """The largest share whose score is at least ``start - tolerance``; when none is, the
    share with the best score (the least forgetting)."""
    if not scores:
        raise ValueError("no shares were scored")
    within = [a for a, s in scores.items() if s >= start - tolerance]
    if within:
        return max(within)
    return max(scores, key=lambda a: (scores[a], -a))


def macro_f1_of(
    model: Any, tokenizer: Any, pairs: Sequence[tuple[str, str]], *, batch_size: int = 128
) -> float:
    """Macro-F1 of a PyTorch classifier on (text, label) pairs, at the length it will serve."""
    texts = [t for t, _ in pairs]
    probs = predict_proba(model, tokenizer, texts, batch_size=batch_size)
    truth = np.array([LABELS.index(y) for _, y in pairs])
    return macro_f1(truth, probs.argmax(axis=1), len(LABELS))


def interpolate_checkpoint(
    start_ref: str | Path,
    checkpoint_dir: Path,
    rows: Sequence[Example],
    *,
    tolerance: float,
    grid: Sequence[float] = GRID,
    batch_size: int = 128,
) -> Interpolation:
    """Score each share of ``grid`` on ``rows``, choose one (see the module docstring) and
    write the mixed weights over the fine-tuned ones in ``checkpoint_dir``."""
    if not rows:
        raise ValueError("no rows to choose the interpolation on")
    pairs = [(e.text, str(e.label)) for e in rows]

    def score(model: Any, tokenizer: Any) -> float:
        return macro_f1_of(model, tokenizer, pairs, batch_size=batch_size)

    start_tokenizer, start_model = load_classifier(start_ref)
    start_score = score(start_model, start_tokenizer)
    start_state = start_model.state_dict()
    tokenizer, model = load_classifier(checkpoint_dir)
    tuned = {k: v.clone() for k, v in model.state_dict().items()}
    scores: dict[float, float] = {}
    for alpha in sorted(set(grid), reverse=True):
        model.load_state_dict(mix_state(start_state, tuned, alpha))
        scores[alpha] = score(model, tokenizer)
    alpha = choose_alpha(scores, start_score, tolerance)
    if alpha != 1.0:
        model.load_state_dict(mix_state(start_state, tuned, alpha))
        model.save_pretrained(checkpoint_dir)
    return Interpolation(alpha, start_score, scores, len(rows), tolerance)
