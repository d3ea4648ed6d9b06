"""The training pipeline's data: validated training examples, the fixed evaluation set, the
optional selection split and the pre-training corpus."""

from __future__ import annotations

import gzip
import json
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from schemas.events import LABELS
from trainer.config import TrainConfig
from trainer.data import (
    Example,
    load_file,
    load_nusax,
    load_postgres,
    load_prdect,
    load_smsa,
    resolve_data_path,
)
from trainer.errors import DataError
from trainer.validation import validate
from ulasan.core.text import clean

if TYPE_CHECKING:
    from ulasan.core.settings import Settings

#: The fixed evaluation set of the gate: SmSA valid without the texts that occur in SmSA train.
EVAL_SET_NAME = "smsa-valid-dedup"


@dataclass(frozen=True)
class TrainingData:
    """Validated training examples, the fixed evaluation set and the pre-training corpus."""

    train: list[Example]
    valid: list[Example]
    corpus: list[str]  # cleaned, unlabelled, no test split
    validation: dict[str, Any]
    sources: dict[str, int]
    #: ``config.selection_data``: chooses the epoch beside ``valid``, never trained on
    selection: list[Example] = field(default_factory=list)
    #: ``config.pretrain.extra_corpus``: cleaned, distinct, none in ``corpus`` or the eval set
    extra_corpus: list[str] = field(default_factory=list)


def fixed_eval_set() -> list[Example]:
    """SmSA valid minus the texts also in SmSA train (compared cleaned): the gate's fixed set,
    the same examples (and hash) whatever a run trains on."""
    seen = {clean(e.text) for e in load_smsa("train")}
    return [e for e in load_smsa("valid") if clean(e.text) not in seen]


def unlabelled_corpus(*, prdect: bool = True) -> list[str]:
    """Raw texts for the tokenizer and MLM: SmSA train+valid, NusaX train+valid and (unless
    ``prdect`` is false) PRDECT-ID."""
    texts = [e.text for split in ("train", "valid") for e in load_smsa(split)]
    texts += [e.text for split in ("train", "valid") for e in load_nusax(split)]
    if prdect:
        texts += [e.text for e in load_prdect()]
    return texts


def load_extra_corpus(paths: Sequence[str], *, exclude: set[str]) -> list[str]:
    """The texts of ``config.pretrain.extra_corpus``: one segment a line (gzip for ``.gz``),
    cleaned, distinct, without the texts in ``exclude`` (cleaned keys)."""
    texts: list[str] = []
    for path in paths:
        resolved = resolve_data_path(path)
        opener = gzip.open if resolved.suffix == ".gz" else open
        try:
            with opener(resolved, "rt", encoding="utf-8") as fh:
                texts.extend(fh)
        except (OSError, UnicodeDecodeError, EOFError) as exc:
            raise DataError(f"cannot read the extra MLM corpus {path}: {exc}") from exc
    cleaned = dict.fromkeys(c for c in (clean(t) for t in texts) if c and c not in exclude)
    if paths and not cleaned:
        raise DataError(f"the extra MLM corpus {', '.join(paths)} has no usable text")
    return list(cleaned)


def load_training_file(path: str | Path) -> list[Example]:
    """A labelled file for ``data: file:PATH``: CSV or JSONL with ``text`` and ``label``
    columns (keys), or a TSV with that header, or SmSA style without one (text, label).
    A ``rating`` column (key), where the file has one, is read too (config ``rating_soft``)."""
    resolved = resolve_data_path(path)
    first = ""
    if resolved.is_file():
        try:
            with resolved.open(encoding="utf-8") as fh:
                first = fh.readline().rstrip("\r\n")
        except (OSError, UnicodeDecodeError) as exc:
            raise DataError(f"cannot read {resolved}: {exc}") from exc
    suffix = resolved.suffix.lower()
    if suffix == ".tsv" and "text" not in [c.strip().lower() for c in first.split("\t")]:
        return load_file(resolved, text_col=0, label_col=1)
    rating = "rating" if _header_has(first, suffix, "rating") else None
    return load_file(resolved, text_col="text", label_col="label", rating_col=rating)


def _header_has(first_line: str, suffix: str, column: str) -> bool:
    """Whether a file's first line (a JSON object, or a csv/tsv header) names ``column``."""
    if suffix == ".jsonl":
        try:
            obj = json.loads(first_line)
        except json.JSONDecodeError:
            return False  # load_file reports the line
        return isinstance(obj, dict) and column in obj
    sep = "\t" if suffix == ".tsv" else ","
    return column in [c.strip().strip('"').lower() for c in first_line.split(sep)]


def load_training_data(config: TrainConfig, settings: Settings) -> TrainingData:
    """Load ``config.data``, validate it (rejections are reported, never dropped silently)
    and assemble the evaluation set and the pre-training corpus.

    ``smsa``: SmSA train. ``smsa+prdect``: plus PRDECT-ID with rating-derived labels.
    ``file:PATH``: the file's labelled rows (see :func:`load_training_file`).
    ``postgres``: SmSA train plus every labelled review in PostgreSQL (a retrain keeps the
    base corpus). Validation is always the fixed evaluation set (SmSA valid, deduplicated).
    """
    sources, rows = _load_sources(config, settings)
    report = validate(rows)
    report.check(min_accepted=len(LABELS))
    train = _sample_train(config, list(report.accepted))
    valid_report = validate(fixed_eval_set())
    valid = _sample_valid(config, list(valid_report.accepted))
    selection_report = None
    selection: list[Example] = []
    if config.selection_data is not None:
        selection_report = validate(load_training_file(config.selection_data.removeprefix("file:")))
        selection = list(selection_report.accepted)
    # The evaluation set stays fixed; a training text that is also in it (or in the selection
    # split) goes, and is counted.
    eval_keys = {clean(e.text) for e in [*valid, *selection]}
    overlap = sum(1 for e in train if clean(e.text) in eval_keys)
    if overlap:
        train = [e for e in train if clean(e.text) not in eval_keys]
    corpus = _pretrain_corpus(config, train)
    extra = load_extra_corpus(config.pretrain.extra_corpus, exclude=eval_keys | set(corpus))
    reports = {"train": report, "eval": valid_report}
    if selection_report is not None:
        reports["selection"] = selection_report
    return TrainingData(
        train=train,
        valid=valid,
        corpus=corpus,
        validation={
            **{name: r.to_dict(max_rejections=200) for name, r in reports.items()},
            "sources": sources,
            "train_used": len(train),
            "train_removed_as_in_eval_set": overlap,
            "corpus_texts": len(corpus),
            "extra_corpus_texts": len(extra),
        },
        sources=sources,
        selection=selection,
        extra_corpus=extra,
    )


def _load_sources(config: TrainConfig, settings: Settings) -> tuple[dict[str, int], list[Example]]:
    """``config.data``'s rows, and how many came from each source."""
    sources: dict[str, int] = {}
    rows: list[Example] = []

    def add(name: str, examples: list[Example]) -> None:
        sources[name] = len(examples)
        rows.extend(examples)

    if config.data in {"smsa", "smsa+prdect", "postgres"}:
        add("smsa/train", load_smsa("train"))
    if config.data == "smsa+prdect":
        add("prdect_id", load_prdect())
    if config.data == "postgres":
        add("postgres", load_postgres(settings.postgres.dsn))
    if config.data.startswith("file:"):
        path = config.data.removeprefix("file:")
        add(f"file:{path}", load_training_file(path))
    return sources, rows


def _sample_train(config: TrainConfig, train: list[Example]) -> list[Example]:
    """``config.max_examples`` of the accepted rows (seeded); every class must remain."""
    if config.max_examples is not None and len(train) > config.max_examples:
        rng = random.Random(config.seed)  # noqa: S311 - sampling, not security
        train = rng.sample(train, config.max_examples)
    missing = [label for label in LABELS if not any(e.label == label for e in train)]
    if missing:
        raise DataError(f"the training data has no example of {missing}: cannot train 3 classes")
    return train


def _sample_valid(config: TrainConfig, valid: list[Example]) -> list[Example]:
    """``config.max_valid_examples`` of the fixed evaluation set (seeded), never none."""
    if config.max_valid_examples is not None and len(valid) > config.max_valid_examples:
        valid = random.Random(config.seed + 1).sample(valid, config.max_valid_examples)  # noqa: S311
    if not valid:
        raise DataError("the evaluation set is empty after validation")
    return valid


def _pretrain_corpus(config: TrainConfig, train: list[Example]) -> list[str]:
    """The cleaned, deduplicated pre-training texts ``config.pretrain_corpus`` names."""
    if config.pretrain_corpus in {"train", "no-prdect"}:
        prdect = config.pretrain_corpus == "train"
        raw_corpus = unlabelled_corpus(prdect=prdect) + [e.text for e in train]
    else:
        raw_corpus = [e.text for e in train]
    return list(dict.fromkeys(c for c in (clean(t) for t in raw_corpus) if c))


def corpus_weights(data: TrainingData, sample_weight: Callable[[Example], float]) -> list[float]:
    """Each pre-training corpus text's sampling weight: the largest of the training examples
    that clean to it; a text of no training example (an unlabelled corpus) counts as the
    lightest training example."""
    by_text: dict[str, float] = {}
    for example in data.train:
        key, weight = clean(example.text), sample_weight(example)
        by_text[key] = max(weight, by_text.get(key, weight))
    lightest = min(by_text.values(), default=1.0)
    return [by_text.get(text, lightest) for text in data.corpus]
