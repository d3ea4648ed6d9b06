"""Domain anchors: a retrain with domain tags keeps the base domain's answers on the new
domain's own texts.

With domain tags (``ulasan.core.inference.domain``) a retrain learns the new domain's label
convention behind the tag (``[prdect] barang bagus`` -> the star rating's class) while the base
corpus trains untagged. The encoder is shared, so fitting the tagged texts still moves what the
model answers for similar untagged texts, the base domain's (session 18: SmSA valid-dedup lost
1.5-1.9 points in unmixed retrains that gained +10 on the new domain).

An anchor is a tagged training text's untagged copy whose target is the starting checkpoint's
own class probabilities for it: Learning without Forgetting (Li and Hoiem, 2016, "Learning
without Forgetting"), the old model's answers on the new task's inputs, with the tag marking
which task a text belongs to. The tagged copy learns the rating; the untagged copy is held to
what the champion said. Config ``anchor``: each anchor's sampling weight, as a multiple of its
tagged row's.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass

import numpy as np

from trainer.errors import TrainingError
from ulasan.core.inference.domain import split_tag


@dataclass(frozen=True)
class Anchors:
    """The untagged copies of a training set's tagged rows: ``index`` the rows they copy,
    ``texts`` their texts without the tag, ``probs`` the starting checkpoint's class
    probabilities for those texts (their targets)."""

    index: np.ndarray
    texts: list[str]
    probs: np.ndarray

    def __len__(self) -> int:
        return len(self.texts)


def untagged(texts: Sequence[str], tags: Collection[str]) -> tuple[list[int], list[str]]:
    """The rows of ``texts`` that start with one of ``tags``' domain tags, and their texts with
    the tag (and the one space after it) removed. A text that is the bare tag has nothing to
    anchor and is left out."""
    index: list[int] = []
    stripped: list[str] = []
    for i, text in enumerate(texts):
        source, rest = split_tag(text, tags)
        if source is not None and rest.strip():
            index.append(i)
            stripped.append(rest)
    return index, stripped


def domain_anchors(
    texts: Sequence[str],
    tags: Collection[str],
    teacher: Callable[[Sequence[str]], np.ndarray],
    n_classes: int,
) -> Anchors:
    """The untagged copies of ``texts``' tagged rows (``tags``) with ``teacher``'s class
    probabilities for them (the starting checkpoint's) as their targets; ``teacher`` is not
    called when no row is tagged."""
    index, stripped = untagged(texts, tags)
    probs = teacher(stripped) if stripped else np.zeros((0, n_classes), dtype=np.float32)
    return Anchors(np.asarray(index, dtype=np.int64), stripped, probs)


def anchor_weights(
    share: float, index: Sequence[int] | np.ndarray, weights: np.ndarray | None, n: int
) -> np.ndarray:
    """The sampling weights of the training rows (``weights``, None: 1 each, ``n`` rows)
    followed by those of their anchors: ``share`` times the weight of the row each copies."""
    if share <= 0:
        raise TrainingError(f"anchor must be > 0 to add anchors, got {share}")
    base = np.ones(n, dtype=np.float64) if weights is None else np.asarray(weights, np.float64)
    if len(base) != n:
        raise TrainingError(f"{len(base)} sampling weights for {n} training rows")
    return np.concatenate([base, share * base[np.asarray(index, dtype=np.int64)]])


def soft_targets(y: np.ndarray, soft: np.ndarray | None, probs: np.ndarray) -> np.ndarray:
    """The training rows' target distributions (``soft``, or one-hot ``y``) followed by the
    anchors' (``probs``)."""
    if probs.ndim != 2 or (soft is not None and soft.shape[1] != probs.shape[1]):
        raise TrainingError(f"anchor probabilities of shape {probs.shape} do not fit the targets")
    labelled = np.eye(probs.shape[1], dtype=np.float32)[y] if soft is None else soft
    return np.concatenate([labelled, probs], dtype=np.float32)
