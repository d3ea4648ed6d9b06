"""A retrain's per-epoch sampling weights and its checkpoint metadata (pure parts, no services)."""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from schemas.events import LABELS
from tests.helpers.tiny_model import build_tiny_checkpoint
from trainer.config import load_config
from trainer.data import Example
from trainer.errors import TrainingError
from trainer.pipeline import serving_model_name, write_checkpoint_meta
from trainer.registry import CHECKPOINT_META_FILE, read_checkpoint_meta
from trainer.retrain.config import BASE_WEIGHT, LABELLED_WEIGHT, WARM_START_OVERRIDES, RetrainConfig
from trainer.retrain.weighting import effective_base_weight, sample_weight
from trainer.train import check_sample_weights, epoch_sample, fine_tune

CUES = {"positive": "mantap", "negative": "kecewa", "neutral": "alamat"}
FILLER = ["tempat", "harga", "pelayanan", "nya", "ini", "dan", "sekali", "kota"]


def cue_rows(n: int, seed: int) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    return [
        (" ".join([*rng.sample(FILLER, 4), CUES[LABELS[i % 3]]]), LABELS[i % 3]) for i in range(n)
    ]


def test_weight_one_is_the_plain_epoch() -> None:
    rng = np.random.default_rng(0)
    assert epoch_sample(np.ones(7), rng).tolist() == list(range(7))


def test_whole_weights_repeat_an_example_and_zero_leaves_it_out() -> None:
    picked = epoch_sample(np.array([3.0, 0.0, 1.0, 2.0]), np.random.default_rng(0))
    assert sorted(picked.tolist()) == [0, 0, 0, 2, 3, 3]


def test_a_fractional_weight_draws_a_fresh_share_each_epoch() -> None:
    rng = np.random.default_rng(1)
    weights = np.full(4000, 0.25)
    first, second = epoch_sample(weights, rng), epoch_sample(weights, rng)
    assert 900 < len(first) < 1100 and 900 < len(second) < 1100
    assert len(set(first.tolist())) == len(first)  # never twice in one epoch
    assert set(first.tolist()) != set(second.tolist())  # another quarter next epoch


def test_mixed_weights_give_the_expected_epoch_size() -> None:
    weights = np.array([0.25] * 2000 + [2.5] * 400)
    sizes = [len(epoch_sample(weights, np.random.default_rng(s))) for s in range(20)]
    assert abs(np.mean(sizes) - weights.sum()) < 0.02 * weights.sum()
    picked = epoch_sample(weights, np.random.default_rng(3))
    new = np.bincount(picked, minlength=len(weights))[2000:]
    assert set(new.tolist()) <= {2, 3}  # 2.5: twice, or three times


@pytest.mark.parametrize(
    ("weights", "message"),
    [
        ([1.0, 1.0], "2 sample weights for 3"),
        ([1.0, -0.5, 1.0], "finite and >= 0"),
        ([1.0, float("nan"), 1.0], "finite and >= 0"),
        ([0.1, 0.1, 0.1], "not one example per epoch"),
    ],
)
def test_bad_sample_weights_are_refused(weights: list[float], message: str) -> None:
    with pytest.raises(TrainingError, match=message):
        check_sample_weights(weights, 3)


def test_new_labelled_reviews_get_their_weight_and_the_base_corpus_its_own() -> None:
    new = [Example(text="barang cepat sampai", label="positive", id="r1")]
    weight = sample_weight(new, labelled=2.0, base=0.25)
    assert weight(Example(text="barang cepat sampai", label="positive")) == 2.0
    assert weight(Example(text="makanan enak sekali", label="positive", id="smsa-1")) == 0.25


def test_class_balance_tilts_the_new_reviews_towards_their_rare_classes() -> None:
    new = [Example(text=f"bagus {i}", label="positive") for i in range(80)]
    new += [Example(text=f"rusak {i}", label="negative") for i in range(80)]
    new += [Example(text=f"biasa {i}", label="neutral") for i in range(5)]
    flat = sample_weight(new, labelled=2.0, base=0.25, class_balance=0.0)
    assert {flat(e) for e in new} == {2.0}
    for balance in (0.5, 1.0):
        weight = sample_weight(new, labelled=2.0, base=0.25, class_balance=balance)
        assert sum(weight(e) for e in new) == pytest.approx(2.0 * len(new))  # same total
        assert weight(new[-1]) / weight(new[0]) == pytest.approx(16.0**balance)
        assert weight(Example(text="tidak ada", label="neutral")) == 0.25  # base row
    full = sample_weight(new, labelled=2.0, base=0.25, class_balance=1.0)
    per_class = Counter()
    for e in new:
        per_class[e.label] += full(e)
    assert max(per_class.values()) == pytest.approx(min(per_class.values()))


def test_the_retrain_defaults_up_weight_the_new_domain_and_continue_gently() -> None:
    cfg = RetrainConfig()
    assert cfg.warm_start and cfg.labelled_weight == LABELLED_WEIGHT > 1
    assert 0 < cfg.base_weight == BASE_WEIGHT <= 1
    assert cfg.warm_start_overrides == WARM_START_OVERRIDES
    shipped = load_config()
    continued = shipped.with_overrides(WARM_START_OVERRIDES)  # every key is a config key
    assert continued.lr < shipped.lr
    # domain-adaptive MLM on the training texts only (never the unlabelled corpora's hold-out)
    assert continued.pretrain.adapt_steps > 0 and continued.pretrain_corpus == "none"
    # the MLM draws the new domain as the fine-tuning does, with whole tokens for its words
    assert continued.pretrain.adapt_sampling and continued.pretrain.adapt_vocab > 0
    # with domain tags, each tagged review also trains untagged towards the champion (anchor)
    assert continued.anchor > 0


def test_fine_tune_with_sample_weights_continues_a_checkpoint(tmp_path: Path) -> None:

    folder = build_tiny_checkpoint(tmp_path / "base", texts=[t for t, _ in cue_rows(200, 1)])
    config = load_config("configs/tiny.yaml").with_overrides(
        {"model": str(folder), "epochs": 2, "lr": 3e-3, "batch_size": 16}
    )
    train = cue_rows(90, 2)
    weights = [3.0 if i < 30 else 0.5 for i in range(len(train))]  # 90 + 30 = 120 per epoch
    result = fine_tune(
        config,
        train,
        cue_rows(30, 3),
        progress=False,
        output_dir=tmp_path / "out",
        sample_weights=weights,
    )
    assert result.extra["epoch_size"] == 120
    assert len(result.history) == 2 and (result.checkpoint_dir / "model.safetensors").is_file()
    # class weights follow the sampled class frequencies (balanced here: all near 1)
    assert result.class_weights is not None and np.allclose(result.class_weights, 1.0, atol=0.2)
    with pytest.raises(TrainingError, match="sample weights"):
        fine_tune(config, train, cue_rows(30, 3), progress=False, sample_weights=[1.0])


def test_checkpoint_metadata_round_trip_and_the_name_a_continued_model_keeps(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "checkpoint"
    folder.mkdir()
    assert read_checkpoint_meta(folder) == {}
    write_checkpoint_meta(
        folder, model_name="ulasan-mini", max_length=128, feature_version="f1", lexicon_version="l1"
    )
    meta = read_checkpoint_meta(folder)
    assert meta["model_name"] == "ulasan-mini" and meta["labels"] == list(LABELS)
    assert meta["max_length"] == 128 and meta["lexicon_version"] == "l1"
    config = load_config()
    assert serving_model_name(config) == "ulasan-mini"
    assert serving_model_name(config.with_overrides({"model": str(folder)})) == "ulasan-mini"
    (folder / CHECKPOINT_META_FILE).write_text(json.dumps({}), encoding="utf-8")
    assert serving_model_name(config.with_overrides({"model": str(folder)})) == "checkpoint"
    assert serving_model_name(config.with_overrides({"model": "indobenchmark/x-base"})) == "x-base"


def test_the_base_corpus_keeps_at_least_its_share_of_an_epoch() -> None:
    kw = {"labelled": 2.0, "base": 0.15, "min_share": 0.5}
    # few new reviews: the configured weight already gives the base corpus most of the epoch
    assert effective_base_weight(n_base=11_000, n_new=500, **kw) == 0.15
    # session 3's all-rows run: 2,987 reviews x 2 against 11,000 x 0.15 was 22 % base
    w = effective_base_weight(n_base=11_000, n_new=2_987, **kw)
    assert w == pytest.approx(2 * 2_987 / 11_000)
    assert 11_000 * w / (11_000 * w + 2 * 2_987) == pytest.approx(0.5)
    # never more than every base row once per epoch; 0 turns the rule off
    assert effective_base_weight(n_base=1_000, n_new=5_000, **kw) == 1.0
    assert (
        effective_base_weight(n_base=11_000, n_new=2_987, labelled=2.0, base=0.15, min_share=0)
        == 0.15
    )
    assert RetrainConfig().min_base_share == 0.5
