"""Ordinal soft targets from star ratings (config ``rating_soft``) for rating-derived labels."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from schemas.events import LABELS
from tests.helpers.tiny_model import build_tiny_checkpoint
from tests.unit.trainer.test_distill import continued
from tests.unit.trainer.test_retrain_weighting import cue_rows
from trainer.config import load_config
from trainer.data import LABEL_SOURCE, Example
from trainer.errors import TrainingError
from trainer.modeling import load_classifier
from trainer.pipeline.data import load_training_file
from trainer.retrain.split import write_jsonl
from trainer.train import (
    _Encoded,
    _training_loss,
    distilled_targets,
    fine_tune,
    predict_proba,
    rating_targets,
)

NEG, NEU, POS = (LABELS.index(c) for c in ("negative", "neutral", "positive"))


def _row(negative: float, neutral: float, positive: float) -> list[float]:
    row = [0.0] * len(LABELS)
    row[NEG], row[NEU], row[POS] = negative, neutral, positive
    return row


def test_each_rating_leans_towards_neutral_by_its_distance_from_the_extremes() -> None:
    labels = {1: "negative", 2: "negative", 3: "neutral", 4: "positive", 5: "positive"}
    examples = [Example(text=f"t{r}", label=labels[r], rating=r) for r in range(1, 6)]
    targets = rating_targets(0.4, examples)
    assert targets is not None
    expected = [
        _row(0.8, 0.2, 0.0),
        _row(0.6, 0.4, 0.0),
        _row(0.2, 0.6, 0.2),
        _row(0.0, 0.4, 0.6),
        _row(0.0, 0.2, 0.8),
    ]
    np.testing.assert_allclose(targets, expected, atol=1e-6)
    np.testing.assert_allclose(targets.sum(axis=1), 1.0, atol=1e-6)
    # the rating's own label keeps the most mass
    assert [LABELS[i] for i in targets.argmax(axis=1)] == [labels[r] for r in range(1, 6)]


def test_labels_not_derived_from_a_rating_stay_one_hot() -> None:
    examples = [
        Example(text="smsa", label="neutral"),  # no rating
        Example(text="a person's label", label="negative", rating=5),  # disagrees with it
        ("a pair", "positive"),
        Example(text="rated", label="positive", rating=4),
    ]
    targets = rating_targets(0.2, examples)
    assert targets is not None
    np.testing.assert_allclose(targets[0], np.eye(3)[LABELS.index("neutral")])
    np.testing.assert_allclose(targets[1], np.eye(3)[LABELS.index("negative")])
    np.testing.assert_allclose(targets[2], np.eye(3)[LABELS.index("positive")])
    np.testing.assert_allclose(targets[3], _row(0.0, 0.2, 0.8), atol=1e-6)


def test_off_or_nothing_rating_derived_means_the_plain_labels() -> None:
    rated = [Example(text="x", label="positive", rating=5)]
    assert rating_targets(0.0, rated) is None
    assert rating_targets(0.3, [Example(text="x", label="positive")]) is None
    for share in (-0.1, 0.5):
        with pytest.raises(TrainingError, match="rating_soft must be"):
            rating_targets(share, rated)
    with pytest.raises(ValueError, match="rating_soft"):
        load_config("configs/tiny.yaml").with_overrides({"rating_soft": 0.5})


def test_distillation_mixes_the_teacher_into_the_rating_targets() -> None:
    examples = [Example(text="a", label="positive", rating=4), Example(text="b", label="neutral")]
    targets = rating_targets(0.2, examples)
    assert targets is not None
    y = np.array([POS, NEU])
    teacher = np.full((2, 3), 1 / 3, dtype=np.float32)
    mixed = distilled_targets(0.5, y, teacher, targets)
    np.testing.assert_allclose(mixed, 0.5 * targets + 0.5 * teacher, atol=1e-6)


def test_the_retrains_data_file_keeps_ratings_of_rating_labels_only(tmp_path: Path) -> None:
    examples = [
        Example(
            text="enak sekali",
            label="positive",
            rating=4,
            id="r1",
            meta={LABEL_SOURCE: "rating_feedback"},
        ),
        Example(
            text="kurang bagus", label="neutral", rating=5, id="r2", meta={LABEL_SOURCE: "human"}
        ),
        Example(text="makanan nya enak", label="positive", id="s1"),
    ]
    path = write_jsonl(tmp_path / "train.jsonl", examples)
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["rating"] for r in rows] == [4, None, None]
    loaded = load_training_file(path)
    assert [(e.text, e.label, e.rating) for e in loaded] == [
        ("enak sekali", "positive", 4),
        ("kurang bagus", "neutral", None),
        ("makanan nya enak", "positive", None),
    ]
    targets = rating_targets(0.2, loaded)
    assert targets is not None
    np.testing.assert_allclose(targets[0], _row(0.0, 0.2, 0.8), atol=1e-6)
    np.testing.assert_allclose(targets[1:], np.eye(3)[[NEU, POS]])


def test_a_training_file_without_ratings_loads_as_before(tmp_path: Path) -> None:
    jsonl = tmp_path / "plain.jsonl"
    jsonl.write_text(json.dumps({"text": "bagus", "label": "positive"}) + "\n")
    csv = tmp_path / "rated.csv"
    csv.write_text("text,label,rating\nbagus,positive,5\njelek,negative,\n")
    assert [(e.label, e.rating) for e in load_training_file(jsonl)] == [("positive", None)]
    assert [(e.label, e.rating) for e in load_training_file(csv)] == [
        ("positive", 5),
        ("negative", None),
    ]


def _encoded(y: list[int], soft: np.ndarray | None) -> _Encoded:
    return _Encoded(
        train_ids=[[1]] * len(y),
        y=np.asarray(y),
        train_labels=[LABELS[i] for i in y],
        valid_texts=[],
        valid_labels=[],
        max_length=8,
        weights=None,
        soft=soft,
    )


def test_one_hot_targets_give_the_class_weighted_cross_entropy() -> None:
    y = [NEG, NEU, POS, POS, NEU]
    weights = torch.tensor([0.5, 4.0, 1.0])
    config = load_config("configs/tiny.yaml")
    logits = torch.randn(5, 3, generator=torch.Generator().manual_seed(0))
    batch = np.arange(5)
    hard = _training_loss(config, _encoded(y, None), weights)(logits, batch)
    one_hot = np.eye(3, dtype=np.float32)[y]
    soft = _training_loss(config, _encoded(y, one_hot), weights)(logits, batch)
    expected = torch.nn.CrossEntropyLoss(weight=weights, label_smoothing=config.label_smoothing)
    torch.testing.assert_close(hard, expected(logits, torch.tensor(y)))
    torch.testing.assert_close(soft, hard)


def test_a_class_weight_scales_an_example_not_the_mass_on_another_class() -> None:
    """A 4-star review (0.3 neutral, 0.7 positive) with neutral weighted 4x: the loss is
    lowest where the model predicts the target itself, not the weight-tilted 0.63 neutral."""
    target = np.asarray([_row(0.0, 0.3, 0.7)], dtype=np.float32)
    weights = torch.tensor([1.0, 1.0, 1.0])
    weights[NEU] = 4.0
    config = load_config("configs/tiny.yaml").with_overrides({"label_smoothing": 0.0})
    loss = _training_loss(config, _encoded([POS], target), weights)
    logits = torch.zeros(1, 3, requires_grad=True)
    optimizer = torch.optim.SGD([logits], lr=1.0)
    for _ in range(500):
        optimizer.zero_grad()
        loss(logits, np.arange(1)).backward()
        optimizer.step()
    learned = torch.softmax(logits.detach(), dim=-1).numpy()
    np.testing.assert_allclose(learned, target, atol=5e-3)


def test_fine_tuning_learns_the_soft_targets_mass_on_neutral(tmp_path: Path) -> None:
    """Four-star reviews with the positive cue: the plain labels drive p(neutral) down (0.13
    measured), rating_soft 0.4 towards the 0.4 it puts there (0.40 measured), and positive
    stays the answer. (One class only, so no class weighting: the loss test above covers it.)"""
    texts = [t for t, y in cue_rows(240, 1) if y == "positive"]
    train = [Example(text=t, label="positive", rating=4) for t in texts]
    held_out = [t for t, y in cue_rows(60, 9) if y == "positive"]
    checkpoint = build_tiny_checkpoint(tmp_path / "start", texts=[t for t, _ in cue_rows(200, 2)])
    neutral = {}
    for share in (0.0, 0.4):
        config = continued(checkpoint, epochs=6, lr=1e-2, rating_soft=share, class_weighting=False)
        result = fine_tune(
            config, train, cue_rows(30, 3), progress=False, output_dir=tmp_path / f"s{share}"
        )
        tokenizer, model = load_classifier(result.checkpoint_dir)
        probs = predict_proba(model, tokenizer, held_out, max_length=32)
        neutral[share] = float(probs[:, NEU].mean())
        assert (probs.argmax(axis=1) == POS).all()
    assert neutral[0.0] < 0.2
    assert 0.3 < neutral[0.4] < 0.5
    assert neutral[0.4] > neutral[0.0] + 0.2
