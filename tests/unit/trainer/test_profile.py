"""trainer.profile: the training-data profile drift detection reads."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from scipy.stats import ks_2samp

from schemas.events import LABELS
from tests.helpers.tiny_model import smsa_rows, tiny_serving_folder
from trainer.errors import ProfileError
from trainer.profile import (
    BOOLEAN_FEATURES,
    NUMERIC_FEATURES,
    build_profile,
    numeric_summary,
    read_profile,
    unknown_token_rate,
    write_profile,
)
from ulasan.core.text import default_lexicon

ROWS = smsa_rows("train", 300)


@pytest.fixture(scope="module")
def serving(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_serving_folder(tmp_path_factory.getbasetemp())


@pytest.fixture(scope="module")
def profile(serving: Path) -> dict:
    texts = [t for t, _ in ROWS] + ["Mantap!! 😍 cek https://toko.id", "JELEK 100%"]
    labels = [y for _, y in ROWS] + ["positive", "negative"]
    return build_profile(
        texts, labels, folder=serving, lexicon=default_lexicon(), sample_size=50, seed=3
    )


def test_numeric_features_have_quantiles_and_bounded_samples(profile: dict) -> None:
    assert set(profile["numeric_features"]) == set(NUMERIC_FEATURES)
    wc = profile["numeric_features"]["word_count"]
    assert wc["n"] == 302 and len(wc["sample"]) == 50
    q = wc["quantiles"]
    assert q["0"] == wc["min"] <= q["0.5"] <= q["1"] == wc["max"]
    assert all(wc["min"] <= v <= wc["max"] for v in wc["sample"])


def test_categorical_labels_confidence_and_unknowns(profile: dict, serving: Path) -> None:
    assert set(profile["categorical_features"]) == set(BOOLEAN_FEATURES)
    assert profile["categorical_features"]["has_url"]["true"] >= 1
    assert profile["categorical_features"]["has_emoji"]["true"] >= 1
    for counts in profile["categorical_features"].values():
        assert counts["true"] + counts["false"] == 302
    assert sum(profile["labels"]["counts"].values()) == 302
    assert set(profile["labels"]["proportions"]) == set(LABELS)
    conf = profile["confidence"]
    assert sum(conf["histogram"]["counts"]) == 302
    assert len(conf["histogram"]["edges"]) == 11
    assert 1 / len(LABELS) <= conf["min"] <= conf["max"] <= 1.0
    assert sum(profile["predicted_labels"].values()) == 302
    assert 0.0 <= profile["unknown_token_rate"] < 0.5
    assert profile["model_name"] == "tiny-trained"
    json.dumps(profile)  # plain JSON all the way down


def test_unknown_rate_sees_unknown_characters(serving: Path) -> None:
    rate = unknown_token_rate(["ꦲꦏ꧀ꦱꦫ ꦗꦮ"], serving / "tokenizer.json", lowercase=True)
    assert rate == 1.0
    assert unknown_token_rate(["bagus"], serving / "tokenizer.json", lowercase=True) == 0.0


def test_samples_support_a_ks_test(profile: dict) -> None:
    sample = profile["numeric_features"]["char_count"]["sample"]
    same = ks_2samp(sample, sample)
    assert same.pvalue == pytest.approx(1.0)
    longer = ks_2samp(sample, [v * 5 + 100 for v in sample])
    assert longer.pvalue < 0.05


def test_write_and_read(profile: dict, tmp_path: Path) -> None:
    path = write_profile(profile, tmp_path)
    assert path.name == "profile.json"
    assert read_profile(tmp_path) == read_profile(path) == json.loads(json.dumps(profile))
    path.write_text(json.dumps({"profile_version": 99}))
    with pytest.raises(ProfileError, match="profile_version"):
        read_profile(path)


def test_bad_input(serving: Path) -> None:
    with pytest.raises(ProfileError, match="2 texts but 1 labels"):
        build_profile(["a", "b"], ["positive"], folder=serving)
    with pytest.raises(ProfileError, match="empty"):
        build_profile([], [], folder=serving)
    with pytest.raises(ProfileError, match="'great'"):
        build_profile(["a"], ["great"], folder=serving)


def test_numeric_summary_is_bounded() -> None:
    summary = numeric_summary(list(range(10_000)), sample_size=100, rng=random.Random(0))
    assert len(summary["sample"]) == 100 and summary["sample"] == sorted(summary["sample"])
    assert summary["quantiles"]["0.5"] == pytest.approx(4999.5)
    with pytest.raises(ProfileError):
        numeric_summary([], rng=random.Random(0))
