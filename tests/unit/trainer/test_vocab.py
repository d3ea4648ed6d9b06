"""Vocabulary extension (trainer.vocab): new whole-word tokens for a new domain's fragmented
words, their embeddings the mean of the old pieces, and a tokenizer that round-trips."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from tokenizers import Tokenizer

from tests.helpers.tiny_model import build_tiny_checkpoint
from trainer.errors import TrainingError
from trainer.modeling import load_classifier
from trainer.vocab import extend_vocabulary, fragmented_words

BASE = [
    "aplikasi ini bagus sekali dan cepat",
    "pelayanan buruk sekali saya kecewa",
    "biasa saja tidak ada yang istimewa",
] * 30
PRODUCT = [
    "packingnya rapi sellernya ramah",
    "jahitannya rapi packingnya aman",
    "sellernya responsif packingnya tebal",
]


def test_fragmented_words_are_added_whole_with_mean_embeddings(tmp_path: Path) -> None:

    folder = build_tiny_checkpoint(tmp_path / "base", texts=BASE, seed=1)
    tokenizer, model = load_classifier(folder)
    old_size = len(tokenizer)
    old_pieces = tokenizer.tokenize("packingnya")
    assert len(old_pieces) >= 2  # the base vocabulary cuts the product word up
    old_ids = tokenizer.convert_tokens_to_ids(old_pieces)
    old_rows = model.get_input_embeddings().weight.detach().clone()

    counts = dict(fragmented_words(tokenizer, PRODUCT * 2, min_count=2))
    assert counts["packingnya"] == 6 and "sekali" not in counts  # in the vocabulary already

    ext = extend_vocabulary(tokenizer, model, PRODUCT * 2, max_new=2, min_count=2)
    assert ext.words[0] == "packingnya" and len(ext.words) == 2  # most frequent first, capped
    assert ext.old_size == old_size and ext.new_size == old_size + 2 == len(tokenizer)
    assert tokenizer.tokenize("packingnya rapi") == ["packingnya", *tokenizer.tokenize("rapi")]
    weight = model.get_input_embeddings().weight.detach()
    assert weight.shape[0] == len(tokenizer) == model.config.vocab_size
    new_id = tokenizer.convert_tokens_to_ids("packingnya")
    assert new_id == old_size
    assert torch.allclose(weight[new_id], old_rows[old_ids].mean(dim=0))
    assert torch.equal(weight[:old_size], old_rows)  # the old rows are untouched

    # The extended tokenizer is what the serving folder carries: saved and reloaded (and read
    # by the tokenizers library alone, as the serving runtime does), it splits the same way.
    tokenizer.save_pretrained(tmp_path / "saved")

    served = Tokenizer.from_file(str(tmp_path / "saved" / "tokenizer.json"))
    assert served.encode("packingnya rapi").ids == tokenizer("packingnya rapi")["input_ids"]
    logits = model(**tokenizer(["packingnya rapi"], return_tensors="pt")).logits
    assert np.isfinite(logits.detach().numpy()).all()


def test_nothing_fragmented_enough_changes_nothing(tmp_path: Path) -> None:

    folder = build_tiny_checkpoint(tmp_path / "base", texts=BASE, seed=1)
    tokenizer, model = load_classifier(folder)
    size = len(tokenizer)
    ext = extend_vocabulary(tokenizer, model, PRODUCT, max_new=10, min_count=5)
    assert ext.words == [] and ext.new_size == size == len(tokenizer)
    with pytest.raises(TrainingError, match="max_new must be >= 1"):
        extend_vocabulary(tokenizer, model, PRODUCT, max_new=0, min_count=1)
