"""Unit tests of the trainer's model side: batching, masking, tokenizer, fine-tuning."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from tokenizers import Tokenizer
from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

import trainer.pretrain as pretrain
from schemas.events import LABELS
from tests.helpers.synthetic_reviews import synthetic
from tests.helpers.tiny_model import build_tiny_checkpoint
from trainer.batching import length_bucketed_batches, pad_batch
from trainer.config import PretrainConfig, load_config
from trainer.data import Example
from trainer.errors import TrainingError
from trainer.modeling import load_classifier
from trainer.pipeline import TrainingData, corpus_weights
from trainer.pretrain import adapt_mlm, mask_batch
from trainer.tokenizer import train_wordpiece, unknown_token_rate
from trainer.train import fine_tune, mlm_mixture, predict_proba, prepare_mini, texts_and_labels


@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.integers(1, 200), min_size=1, max_size=300),
    st.integers(1, 40),
    st.booleans(),
    st.booleans(),
)
def test_batches_cover_every_index_once(
    lengths: list[int], batch_size: int, shuffled: bool, dynamic: bool
) -> None:
    rng = np.random.default_rng(0) if shuffled else None
    batches = length_bucketed_batches(lengths, batch_size, rng=rng, dynamic=dynamic)
    flat = np.concatenate(batches)
    assert sorted(flat.tolist()) == list(range(len(lengths)))
    assert all(1 <= len(b) <= batch_size for b in batches)
    if not shuffled and dynamic:
        assert [lengths[i] for i in flat] == sorted(lengths)


def test_dynamic_batches_pad_less_than_random_ones() -> None:
    rng = np.random.default_rng(1)
    lengths = rng.integers(3, 128, size=4000).tolist()

    def padding(batches: list[np.ndarray]) -> int:
        return sum(max(lengths[i] for i in b) * len(b) for b in batches) - sum(lengths)

    dynamic = length_bucketed_batches(lengths, 32, rng=np.random.default_rng(2))
    plain = length_bucketed_batches(lengths, 32, rng=np.random.default_rng(2), dynamic=False)
    assert padding(dynamic) < padding(plain) / 5


def test_pad_batch() -> None:
    ids, mask = pad_batch([[5, 6, 7], [8]], pad_id=0)
    assert ids.tolist() == [[5, 6, 7], [8, 0, 0]]
    assert mask.tolist() == [[1, 1, 1], [1, 0, 0]]
    ids, mask = pad_batch([[5]], pad_id=0, pad_to=4)
    assert ids.shape == (1, 4) and mask.tolist() == [[1, 0, 0, 0]]


@pytest.mark.parametrize("whole_word", [True, False])
def test_mask_batch_masks_whole_words_and_never_specials(whole_word: bool) -> None:
    rng = np.random.default_rng(3)
    # Row: [CLS] w0 w0 w1 w2 w2 w2 [SEP] [PAD]; word ids -1 for specials and padding.
    ids = np.tile(np.array([2, 10, 11, 12, 13, 14, 15, 3, 0]), (200, 1))
    words = np.tile(np.array([-1, 0, 0, 1, 2, 2, 2, -1, -1]), (200, 1))
    corrupted, rows, cols, targets = mask_batch(
        ids,
        words,
        rng=rng,
        probability=0.3,
        mask_id=4,
        vocab_size=50,
        first_regular_id=5,
        whole_word=whole_word,
    )
    assert set(np.unique(rows).tolist()) == set(range(200))  # at least one target per row
    assert np.all(words[rows, cols] >= 0)
    assert np.array_equal(targets, ids[rows, cols])
    untouched = np.ones(ids.shape, dtype=bool)
    untouched[rows, cols] = False
    assert np.array_equal(corrupted[untouched], ids[untouched])
    masked_share = float(np.mean(corrupted[rows, cols] == 4))
    assert 0.7 < masked_share < 0.9
    if whole_word:
        for r in range(200):
            chosen = set(cols[rows == r].tolist())
            for word in range(3):
                positions = set(np.nonzero(words[r] == word)[0].tolist())
                assert positions <= chosen or not (positions & chosen)


def test_tokenizer_round_trip_and_serving_file(tmp_path: Path) -> None:

    texts = [t for t, _ in synthetic(300, 0)]
    tokenizer = train_wordpiece(texts, vocab_size=300, min_frequency=1, model_max_length=32)
    encoded = tokenizer("Bagus SEKALI")
    assert tokenizer.convert_ids_to_tokens(encoded["input_ids"]) == [
        "[CLS]",
        "bagus",
        "sekali",
        "[SEP]",
    ]
    assert unknown_token_rate(tokenizer, texts) == 0.0
    # Numbered canonically (special tokens, then the learned vocabulary sorted), not in the
    # trainer's hash-map order.
    vocab = sorted(tokenizer.get_vocab().items(), key=lambda item: item[1])
    tokens = [token for token, _ in vocab]
    assert tokens[:5] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    assert tokens[5:] == sorted(tokens[5:]) and [i for _, i in vocab] == list(range(len(vocab)))
    assert unknown_token_rate(tokenizer, ["€€€ bagus"]) > 0.0
    tokenizer.save_pretrained(tmp_path)
    raw = Tokenizer.from_file(str(tmp_path / "tokenizer.json"))
    assert raw.encode("bagus sekali").ids == encoded["input_ids"]


def test_tokenizer_needs_text() -> None:
    with pytest.raises(TrainingError, match="no text"):
        train_wordpiece(["", "  "], vocab_size=100)


def test_texts_and_labels_accepts_pairs_and_objects_and_rejects_bad_labels() -> None:

    texts, labels = texts_and_labels([("a", "Positive"), Example(text="b", label="negative")])
    assert texts == ["a", "b"] and labels == ["positive", "negative"]
    with pytest.raises(TrainingError, match="example 1 has label 'good'"):
        texts_and_labels([("a", "positive"), ("b", "good")])


def test_fine_tune_learns_a_separable_task_and_saves_a_checkpoint(tmp_path: Path) -> None:

    config = load_config("configs/tiny.yaml").with_overrides(
        # lr 2e-3 for 12 epochs learns this in every one of 15 tries; 3e-3 for 6 epochs
        # collapsed to one class in 2 of 5 (the tokenizer's merges differ from run to run).
        {"epochs": 12, "lr": 2e-3, "batch_size": 16, "pretrain.steps": 2, "average_last": 2}
    )
    seen: list[int] = []
    result = fine_tune(
        config,
        synthetic(240, 1),
        synthetic(60, 2),
        progress=False,
        output_dir=tmp_path,
        on_epoch=lambda epoch, metrics: seen.append(epoch),
    )
    assert seen == list(range(1, len(result.history) + 1))
    assert result.valid_report["macro_f1"] > 0.9
    assert result.pretrain is not None and result.pretrain.steps == 2
    assert result.class_weights == pytest.approx([1.0, 1.0, 1.0])
    history = json.loads((tmp_path / "history.json").read_text())
    assert [h["epoch"] for h in history] == [float(e) for e in seen]

    saved = AutoConfig.from_pretrained(result.checkpoint_dir)
    assert [saved.id2label[i] for i in range(3)] == list(LABELS)
    assert (result.checkpoint_dir / "tokenizer.json").is_file()
    model = AutoModelForSequenceClassification.from_pretrained(result.checkpoint_dir)
    tokenizer = AutoTokenizer.from_pretrained(result.checkpoint_dir)
    # Held-out texts, upper-cased: predict_proba cleans (lower-cases) them as serving does.
    held_out = synthetic(60, 9)
    probs = predict_proba(model, tokenizer, [t.upper() for t, _ in held_out], max_length=32)
    assert probs.shape == (60, 3)
    assert np.allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    predicted = [LABELS[i] for i in probs.argmax(axis=1)]
    accuracy = np.mean([p == y for p, (_, y) in zip(predicted, held_out, strict=True)])
    assert accuracy > 0.9


def test_fine_tune_refuses_a_missing_class(tmp_path: Path) -> None:
    config = load_config("configs/tiny.yaml").with_overrides({"pretrain.steps": 0})
    rows = [r for r in synthetic(60, 3) if r[1] != "neutral"]
    with pytest.raises(TrainingError, match="no training examples of class"):
        fine_tune(config, rows, rows, progress=False, output_dir=tmp_path)


def test_fine_tune_a_local_checkpoint_folder(tmp_path: Path) -> None:

    folder = build_tiny_checkpoint(
        tmp_path / "base", texts=[t for t, _ in synthetic(200, 4)], seed=1
    )
    config = load_config("configs/tiny.yaml").with_overrides(
        {"model": str(folder), "epochs": 1, "lr": 3e-3, "batch_size": 16}
    )
    result = fine_tune(
        config, synthetic(96, 5), synthetic(30, 6), progress=False, output_dir=tmp_path / "out"
    )
    assert result.pretrain is None
    assert result.model_name == str(folder)
    assert len(result.history) == 1
    assert (result.checkpoint_dir / "model.safetensors").is_file()


def test_a_checkpoint_with_other_labels_gets_a_fresh_head(tmp_path: Path) -> None:

    folder = build_tiny_checkpoint(tmp_path / "base", texts=[t for t, _ in synthetic(100, 7)])
    model = AutoModelForSequenceClassification.from_pretrained(folder)
    model.config.id2label = {0: "positive", 1: "neutral", 2: "negative"}
    model.config.label2id = {v: k for k, v in model.config.id2label.items()}
    model.save_pretrained(folder)
    _, loaded = load_classifier(folder)
    assert [loaded.config.id2label[i] for i in range(3)] == list(LABELS)
    # The head of another label order is not reused; the encoder is.
    assert not np.allclose(
        loaded.classifier.weight.detach().numpy(), model.classifier.weight.detach().numpy()
    )
    assert np.allclose(
        loaded.bert.embeddings.word_embeddings.weight.detach().numpy(),
        model.bert.embeddings.word_embeddings.weight.detach().numpy(),
    )


def test_an_unloadable_model_is_a_clear_error(tmp_path: Path) -> None:

    with pytest.raises(TrainingError, match="--model ulasan-mini"):
        load_classifier(tmp_path / "no-such-checkpoint")


def test_domain_adaptive_mlm_continues_the_encoder_and_keeps_the_head(tmp_path: Path) -> None:

    texts = [t for t, _ in synthetic(200, 11)]
    folder = build_tiny_checkpoint(tmp_path / "base", texts=texts, seed=3)
    tokenizer, model = load_classifier(folder)
    before = {k: v.detach().clone() for k, v in model.state_dict().items()}
    cfg = PretrainConfig(adapt_steps=4, adapt_lr=1e-3, batch_size=16, max_length=32)
    result = adapt_mlm(model, tokenizer, texts, cfg, seed=1, progress=False)
    assert result.steps == 4 and result.final_loss is not None and np.isfinite(result.final_loss)
    after = model.state_dict()
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert any(k.startswith("bert.encoder.") for k in changed)
    assert not any(k.startswith("classifier.") for k in changed)  # the label head is kept
    with pytest.raises(TrainingError, match="adapt_steps >= 1"):
        adapt_mlm(model, tokenizer, texts, PretrainConfig(), seed=1, progress=False)


def test_domain_adaptive_mlm_draws_texts_by_sampling_weight(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:

    texts = [t for t, _ in synthetic(120, 12)]
    folder = build_tiny_checkpoint(tmp_path / "base", texts=texts, seed=3)
    tokenizer, model = load_classifier(folder)
    seen: list[tuple[int, ...]] = []
    real_mask = pretrain.mask_batch

    def spy(ids: np.ndarray, words: np.ndarray, **kw: Any) -> Any:
        seen.extend(
            tuple(int(t) for t, w in zip(row, wrow, strict=True) if t != tokenizer.pad_token_id)
            for row, wrow in zip(ids, words, strict=True)
        )
        return real_mask(ids, words, **kw)

    monkeypatch.setattr(pretrain, "mask_batch", spy)
    cfg = PretrainConfig(adapt_steps=6, adapt_lr=1e-3, batch_size=16, max_length=32)
    # only the first 10 texts may be drawn; the rest weigh nothing
    weights = [2.0] * 10 + [0.0] * (len(texts) - 10)
    pretrain.adapt_mlm(model, tokenizer, texts, cfg, seed=1, weights=weights, progress=False)
    allowed = {tuple(tokenizer(t, truncation=True, max_length=32)["input_ids"]) for t in texts[:10]}
    # a pass draws 20 texts (10 x weight 2): batches of 16 and 4, so 6 steps see 60 rows
    assert len(seen) == 60 and set(seen) <= allowed and len(set(seen)) == 10
    with pytest.raises(TrainingError, match="2 MLM sampling weights for 120 texts"):
        pretrain.adapt_mlm(model, tokenizer, texts, cfg, seed=1, weights=[1.0, 1.0])
    with pytest.raises(TrainingError, match="sum to >= 1"):
        pretrain.adapt_mlm(model, tokenizer, texts, cfg, seed=1, weights=[0.0] * len(texts))


def test_mlm_mixture_weights() -> None:
    corpus, extra = ["a", "b", "c", "d"], ["x", "y"]
    assert mlm_mixture(corpus, [], 0.5) == (corpus, None)
    texts, weights = mlm_mixture(corpus, extra, 0.5)
    assert texts == [*corpus, *extra]
    # a pass: the 4 corpus texts once, and 4 draws of the 2 extra texts
    assert weights == [1.0] * 4 + [2.0] * 2
    _, weights = mlm_mixture(corpus, extra, 0.2)
    assert sum(weights[4:]) / sum(weights) == pytest.approx(0.2)
    with pytest.raises(TrainingError, match="needs the review corpus"):
        mlm_mixture([], extra, 0.5)


def test_pre_training_draws_the_extra_corpus_as_its_share_and_not_into_the_tokenizer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:

    corpus = [t for t, _ in synthetic(160, 13)]
    # a word only the extra texts have, frequent enough for any vocabulary
    extra = [f"zorglub kata tambahan nomor {i} zorglub" for i in range(40)]
    config = load_config("configs/tiny.yaml").with_overrides(
        {"pretrain.steps": 24, "pretrain.batch_size": 16, "pretrain.extra_share": 0.6}
    )
    seen: list[tuple[int, ...]] = []
    real_mask = pretrain.mask_batch

    def spy(ids: np.ndarray, words: np.ndarray, **kw: Any) -> Any:
        seen.extend(tuple(int(t) for t in row) for row in ids)
        return real_mask(ids, words, **kw)

    monkeypatch.setattr(pretrain, "mask_batch", spy)
    prepared = prepare_mini(config, corpus, progress=False, extra=extra)
    tokenizer = prepared.tokenizer
    assert "zorglub" not in tokenizer.get_vocab()  # the tokenizer learnt the corpus only
    assert prepared.pretrain is not None and prepared.pretrain.steps == 24
    pad = tokenizer.pad_token_id
    extra_rows = {tuple(tokenizer(t, truncation=True, max_length=64)["input_ids"]) for t in extra}
    rows = [tuple(t for t in row if t != pad) for row in seen]
    # 24 steps of at most 16 rows (a pass's last batch may be short); the extra texts are
    # 60 % of them (each of the 40 drawn 6 times a pass beside the 160 corpus texts once),
    # where drawing every text once would give 20 %
    assert 20 * 16 < len(rows) <= 24 * 16
    assert 0.5 < sum(r in extra_rows for r in rows) / len(rows) < 0.7


def test_corpus_weights_follow_the_training_examples() -> None:

    train = [
        Example("Barangnya BAGUS sekali", "positive"),
        Example("barangnya bagus sekali", "positive", source="new"),
        Example("pengiriman lambat", "negative"),
    ]
    data = TrainingData(
        train=train,
        valid=[],
        corpus=["barangnya bagus sekali", "pengiriman lambat", "teks tanpa label"],
        validation={},
        sources={},
    )
    weights = corpus_weights(data, lambda e: 3.0 if e.source == "new" else 0.5)
    # a text's heaviest example counts; an unlabelled text counts as the lightest
    assert weights == [3.0, 0.5, 0.5]
