"""Tiny randomly initialised BERT sentiment classifiers for fast tests (built offline, seconds).

``build_tiny_checkpoint(out_dir)`` writes a Hugging Face checkpoint folder (model + fast
tokenizer via ``save_pretrained``, ``id2label``/``label2id`` in ``schemas.events.LABELS`` order)
whose tokenizer is the trainer's WordPiece (:func:`trainer.tokenizer.train_wordpiece`) trained
on a few hundred shipped SmSA texts.
``train_tiny_checkpoint`` additionally fine-tunes it for a few steps so it learns something.
"""

from __future__ import annotations

import csv
import random
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import (
    AutoModelForSequenceClassification,
    AutoTokenizer,
    BertConfig,
    BertForSequenceClassification,
)

from schemas.events import LABELS
from trainer.export import export_serving_folder
from trainer.tokenizer import train_wordpiece
from ulasan.core.text import default_lexicon

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SMSA_DIR = PROJECT_ROOT / "data" / "smsa"


@dataclass(frozen=True)
class TinyShape:
    """Model dimensions; the defaults build a ~100k-parameter BERT."""

    vocab_size: int = 2000
    hidden_size: int = 32
    num_hidden_layers: int = 2
    num_attention_heads: int = 2
    intermediate_size: int = 64
    max_position_embeddings: int = 128


def smsa_rows(split: str = "train", limit: int | None = 400) -> list[tuple[str, str]]:
    """``(text, label)`` rows of a shipped SmSA split (TSV, no header), first ``limit`` rows."""
    rows: list[tuple[str, str]] = []
    with (SMSA_DIR / f"{split}.tsv").open(encoding="utf-8", newline="") as fh:
        for text, label in csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE):
            rows.append((text, label.strip().lower()))
            if limit is not None and len(rows) >= limit:
                break
    return rows


def build_tiny_checkpoint(
    out_dir: Path,
    *,
    shape: TinyShape = TinyShape(),  # noqa: B008
    texts: list[str] | None = None,
    seed: int = 0,
) -> Path:
    """Write a randomly initialised BERT classifier + tokenizer to ``out_dir``; return it."""

    torch.manual_seed(seed)
    if texts is None:
        texts = [t for t, _ in smsa_rows("train", limit=400)]
    # the trainer's own WordPiece tokenizer (every word kept: min_frequency 0)
    tokenizer = train_wordpiece(
        texts,
        vocab_size=shape.vocab_size,
        min_frequency=0,
        model_max_length=shape.max_position_embeddings,
    )
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=shape.hidden_size,
        num_hidden_layers=shape.num_hidden_layers,
        num_attention_heads=shape.num_attention_heads,
        intermediate_size=shape.intermediate_size,
        max_position_embeddings=shape.max_position_embeddings,
        num_labels=len(LABELS),
        id2label=dict(enumerate(LABELS)),
        label2id={label: i for i, label in enumerate(LABELS)},
    )
    model = BertForSequenceClassification(config).eval()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return out_dir


def train_tiny_checkpoint(
    checkpoint_dir: Path,
    rows: list[tuple[str, str]],
    *,
    steps: int = 30,
    batch_size: int = 16,
    lr: float = 5e-3,
    seed: int = 0,
) -> Path:
    """Fine-tune the checkpoint in place for ``steps`` optimizer steps on ``rows``."""

    torch.manual_seed(seed)
    rng = random.Random(seed)
    tokenizer = AutoTokenizer.from_pretrained(checkpoint_dir)
    model = AutoModelForSequenceClassification.from_pretrained(checkpoint_dir)
    label_ids = {label: i for i, label in enumerate(LABELS)}
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    model.train()
    for _ in range(steps):
        batch = rng.sample(rows, min(batch_size, len(rows)))
        enc = tokenizer(
            [t for t, _ in batch], truncation=True, max_length=64, padding=True, return_tensors="pt"
        )
        labels = torch.tensor([label_ids[y] for _, y in batch])
        loss = model(**enc, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.eval()
    model.save_pretrained(checkpoint_dir)
    return Path(checkpoint_dir)


_SERVING_CACHE: dict[tuple[str, bool], Path] = {}


def tiny_serving_folder(base_dir: Path, *, trained: bool = True) -> Path:
    """A tiny exported serving folder under ``base_dir``, built once per test process.

    ``trained=True`` fine-tunes for 60 steps on 400 SmSA train rows (it learns a little);
    ``trained=False`` exports the random initialisation (a deliberately worse model).
    """
    key = (str(base_dir), trained)
    if key not in _SERVING_CACHE:
        name = "tiny-trained" if trained else "tiny-random"
        checkpoint = build_tiny_checkpoint(Path(base_dir) / f"{name}-checkpoint")
        if trained:
            train_tiny_checkpoint(checkpoint, smsa_rows("train", 400), steps=60)
        _SERVING_CACHE[key] = export_serving_folder(
            checkpoint,
            Path(base_dir) / f"{name}-serving",
            model_name=name,
            lexicon=default_lexicon(),
            parity_texts=[t for t, _ in smsa_rows("valid", 100)],
            max_length=64,
        ).folder
    return _SERVING_CACHE[key]
