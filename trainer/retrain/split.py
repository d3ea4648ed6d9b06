"""What a retrain trains on, chooses its epoch on and is gated on: the labelled reviews split
by a hash of their id (fixed across runs), the share of the base corpus kept beside them, and
the gate's set."""

from __future__ import annotations

import hashlib
import json
import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from trainer.config import TrainConfig
from trainer.data import LABEL_SOURCE, Example
from trainer.pipeline.data import fixed_eval_set
from trainer.validation import validate
from ulasan.core.inference.domain import tag_texts

#: salt of the selection split: drawn from what the hold-out left, independent of it
SELECTION_SALT = "selection:"
#: The retrain gate's set: the fixed base set (SmSA valid, deduplicated) + the stream hold-out.
GATE_SET_NAME = "smsa-valid-dedup+stream-holdout"
#: The base set the retrain gate also guards on its own (no forgetting the base domain).
BASE_GUARD_NAME = "smsa-valid-dedup"


def holdout(review_id: str, share: float, *, salt: str = "") -> bool:
    """Is this review held out? Fixed by a hash of its id: the same in every run. ``salt``
    draws another split, independent of the unsalted one (the selection split)."""
    h = int.from_bytes(hashlib.sha256((salt + review_id).encode()).digest()[:8], "big")
    return h / 2**64 < share


def split_labelled(
    examples: Sequence[Example], share: float, *, salt: str = ""
) -> tuple[list[Example], list[Example]]:
    """``(train, held_out)`` by :func:`holdout` on each example's id."""
    train: list[Example] = []
    held: list[Example] = []
    for e in examples:
        (held if holdout(e.id or e.text, share, salt=salt) else train).append(e)
    return train, held


def write_jsonl(path: Path, examples: Sequence[Example]) -> Path:
    """Write ``examples`` as JSON lines (``id``, ``text``, ``label``, ``rating``); the path.

    ``rating`` is the review's star rating where its label is rating-derived (config
    ``rating_soft`` reads it), else null: a person's label is never softened by a rating.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as fh:
        for e in examples:
            rating = None if e.meta.get(LABEL_SOURCE) == "human" else e.rating
            row = {"id": e.id, "text": e.text, "label": e.label, "rating": rating}
            fh.write(json.dumps(row) + "\n")
    return path


def base_share(base: Sequence[Example], labelled: int, cap: int | None, seed: int) -> list[Example]:
    """The base corpus rows to train on beside ``labelled`` new reviews: all of them, or, when
    the config caps the examples at ``cap``, a seeded sample of ``cap - labelled`` (at least a
    tenth of the cap, so the old domain is never forgotten outright). The new labelled reviews
    are what a retrain is for: a cap never samples them away."""
    if cap is None or len(base) + labelled <= cap:
        return list(base)
    keep = min(len(base), max(cap - labelled, cap // 10))
    return random.Random(seed).sample(list(base), keep)  # noqa: S311 - sampling, not security


def base_gate_examples(config: TrainConfig) -> list[tuple[str, str]]:
    """The gate's fixed base set: the pipeline's fixed evaluation set (SmSA valid without train
    texts), sampled as the pipeline samples it (``max_valid_examples``, seed + 1)."""
    valid = list(validate(fixed_eval_set()).accepted)
    if config.max_valid_examples is not None and len(valid) > config.max_valid_examples:
        valid = random.Random(config.seed + 1).sample(valid, config.max_valid_examples)  # noqa: S311
    return [(e.text, str(e.label)) for e in valid]


def gate_examples(
    config: TrainConfig, held_pairs: Sequence[tuple[str, str]]
) -> list[tuple[str, str]]:
    """What a retrain's candidate and champion are compared on: the fixed base set
    (:func:`base_gate_examples`) plus the labelled stream reviews held out of training (fixed
    by review-id hash). A model for the new domain must beat the champion where the stream now
    is, without giving up the base domain: both halves are in one set, so macro-F1 weighs every
    class over old and new reviews alike (and the gate guards the base half on its own too)."""
    return base_gate_examples(config) + list(held_pairs)


def tagged_sources(examples: Sequence[Example], min_rows: int) -> list[str]:
    """The sources with at least ``min_rows`` of ``examples``: those a retrain tags."""
    counts = Counter(e.source for e in examples if e.source)
    return sorted(s for s, n in counts.items() if n >= min_rows)


def tag_examples(examples: Sequence[Example], tags: Sequence[str]) -> list[Example]:
    """``examples`` with their source's domain tag in front of the text where the source is
    one of ``tags`` (``ulasan.core.inference.domain``: the worker tags the same way); a text
    that starts with a tag of its own has it written out bare, so that in the data file a row
    starts with a tag exactly when it is tagged."""
    texts = tag_texts([e.text for e in examples], [e.source for e in examples], tags, raw=True)
    return [e if t == e.text else replace(e, text=t) for e, t in zip(examples, texts, strict=True)]
