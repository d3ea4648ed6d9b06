"""Length-bucketed batching with dynamic padding, shared by pre-training and fine-tuning."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

# Texts are sorted by length inside windows of this many batches: batches hold texts of
# similar length (little padding) while the window keeps the order random enough.
BUCKET_WINDOW = 50


def length_bucketed_batches(
    lengths: Sequence[int],
    batch_size: int,
    *,
    rng: np.random.Generator | None,
    dynamic: bool = True,
) -> list[np.ndarray]:
    """Index batches covering every position of ``lengths`` exactly once.

    With ``rng`` the order is shuffled (training); without it the order is by length
    (evaluation, which restores the original order afterwards). ``dynamic=False`` gives plain
    shuffled batches (the caller then pads to ``max_length``).
    """
    n = len(lengths)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    lens = np.asarray(lengths, dtype=np.int64)
    if rng is None:
        order = np.argsort(lens, kind="stable") if dynamic else np.arange(n)
        return [order[i : i + batch_size] for i in range(0, n, batch_size)]
    order = rng.permutation(n)
    if dynamic:
        window = batch_size * BUCKET_WINDOW
        chunks = [order[i : i + window] for i in range(0, n, window)]
        order = np.concatenate([c[np.argsort(lens[c], kind="stable")] for c in chunks])
    batches = [order[i : i + batch_size] for i in range(0, n, batch_size)]
    rng.shuffle(batches)
    return batches


def pad_batch(
    sequences: Sequence[Sequence[int]], pad_id: int, *, pad_to: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """``input_ids`` and ``attention_mask`` (int64), padded to the longest (or ``pad_to``)."""
    width = pad_to if pad_to is not None else max(len(s) for s in sequences)
    ids = np.full((len(sequences), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(sequences), width), dtype=np.int64)
    for row, seq in enumerate(sequences):
        ids[row, : len(seq)] = seq
        mask[row, : len(seq)] = 1
    return ids, mask


def epoch_sample(weights: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One epoch's example indices under per-example sampling ``weights``: example ``i`` comes
    ``floor(w_i)`` times plus once more with probability ``w_i - floor(w_i)``, drawn afresh
    each epoch. Weight 1 everywhere is the plain epoch; 3 triples an example; 0.25 shows a
    different quarter of a group each epoch. Expected epoch size: ``weights.sum()``."""
    whole = np.floor(weights).astype(np.int64)
    extra = rng.random(len(weights)) < (weights - whole)
    return np.repeat(np.arange(len(weights)), whole + extra.astype(np.int64))
