"""Decision offsets for macro-F1 (trainer.bias): chosen on held-out rows, baked into the head."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.metrics import f1_score

from schemas.events import LABELS
from tests.helpers.tiny_model import build_tiny_checkpoint
from trainer.bias import GRID, apply_bias, choose_bias, macro_f1
from trainer.config import load_config
from trainer.errors import ConfigError, TrainingError
from trainer.modeling import load_classifier
from trainer.pipeline import choose_decision_bias


def _rare_middle_class(n: int, seed: int) -> tuple[np.ndarray, list[str]]:
    """Log-probabilities of a model that under-predicts a rare, weakly separated class 1."""
    rng = np.random.default_rng(seed)
    truth = rng.choice(3, size=n, p=[0.45, 0.1, 0.45])
    logits = rng.normal(0.0, 1.0, size=(n, 3))
    logits[np.arange(n), truth] += 1.6
    logits[:, 1] -= 1.4  # the model leans away from the rare class
    log_probs = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    return log_probs, [LABELS[i] for i in truth]


def test_macro_f1_matches_sklearn() -> None:
    rng = np.random.default_rng(0)
    truth, pred = rng.integers(0, 3, 200), rng.integers(0, 3, 200)
    assert macro_f1(truth, pred, 3) == pytest.approx(f1_score(truth, pred, average="macro"))
    # a class never predicted nor present scores 0, as sklearn's zero_division=0
    assert macro_f1(np.zeros(5, int), np.zeros(5, int), 3) == pytest.approx(1 / 3)


def test_an_under_predicted_class_gets_a_positive_offset_that_holds_out_of_sample() -> None:
    log_probs, labels = _rare_middle_class(3000, seed=1)
    choice = choose_bias(log_probs, labels, ["neutral"])
    offset = choice.offsets["neutral"]
    assert 0 < offset <= max(GRID)  # bagged: a mean of grid values
    plain = choose_bias(log_probs, labels, ["neutral"], bootstrap=0).offsets["neutral"]
    assert plain in GRID and plain > 0
    assert choice.macro_f1_after > choice.macro_f1_before
    assert len(choice.scores["neutral"]) == len(GRID) and choice.n == 3000
    # the offset chosen on one sample improves another sample of the same model
    other, other_labels = _rare_middle_class(3000, seed=2)
    truth = np.array([LABELS.index(label) for label in other_labels])
    shifted = other + np.array([0.0, offset, 0.0])
    assert macro_f1(truth, shifted.argmax(1), 3) > macro_f1(truth, other.argmax(1), 3)


def test_a_tie_keeps_the_offset_nearest_zero() -> None:
    # perfectly separated rows: every offset in the grid scores 1.0
    log_probs = np.log(np.array([[0.98, 0.01, 0.01], [0.01, 0.98, 0.01], [0.01, 0.01, 0.98]]))
    choice = choose_bias(log_probs, list(LABELS), ["neutral", "negative"])
    assert choice.offsets == {"neutral": 0.0, "negative": 0.0}
    assert choice.macro_f1_before == choice.macro_f1_after == 1.0


def test_bad_inputs_are_clear_errors() -> None:
    log_probs, labels = _rare_middle_class(30, seed=3)
    with pytest.raises(TrainingError, match="unknown classes"):
        choose_bias(log_probs, labels, ["mixed"])
    with pytest.raises(TrainingError, match="bootstrap must be >= 0"):
        choose_bias(log_probs, labels, ["neutral"], bootstrap=-1)
    with pytest.raises(TrainingError, match="scores for 29 rows"):
        choose_bias(log_probs, labels[:29], ["neutral"])
    with pytest.raises(ConfigError, match="bias_classes"):
        load_config().with_overrides({"bias_classes": ["neutral", "neutral"]})
    with pytest.raises(ConfigError, match="bias_data must be file:PATH"):
        load_config().with_overrides({"bias_data": "holdout.jsonl"})


def test_apply_bias_moves_the_head_and_the_argmax(tmp_path: Path) -> None:

    folder = build_tiny_checkpoint(tmp_path / "m", texts=["bagus sekali", "jelek sekali"] * 20)
    tokenizer, model = load_classifier(folder)
    batch = tokenizer(["bagus sekali", "jelek"], return_tensors="pt", padding=True)
    with torch.no_grad():
        before = model(**batch).logits
    apply_bias(model, {"neutral": 5.0})
    with torch.no_grad():
        after = model(**batch).logits
    assert torch.allclose(after - before, torch.tensor([[0.0, 5.0, 0.0]]).expand_as(after))
    assert (after.argmax(1) == LABELS.index("neutral")).all()


def test_the_pipeline_writes_the_chosen_offsets_into_the_checkpoint(tmp_path: Path) -> None:

    texts = [f"ulasan nomor {i} biasa saja" for i in range(12)]
    folder = build_tiny_checkpoint(tmp_path / "m", texts=texts)
    _, model = load_classifier(folder)
    apply_bias(model, {"neutral": -0.9})  # a model that never says neutral
    model.save_pretrained(folder)
    head_before = model.classifier.bias.detach().clone()
    rows = tmp_path / "holdout.jsonl"
    # every held-out row is neutral: only the largest offset of the grid undoes the -0.9
    rows.write_text(
        "".join(json.dumps({"text": t, "label": "neutral"}) + "\n" for t in texts),
        encoding="utf-8",
    )
    config = load_config("configs/tiny.yaml").with_overrides({"bias_data": f"file:{rows}"})
    choice = choose_decision_bias(config, folder)
    assert choice.n == 12 and choice.macro_f1_after >= choice.macro_f1_before
    head_after = load_classifier(folder)[1].classifier.bias.detach()
    assert choice.offsets == {"neutral": 1.0}
    assert float(head_after[1] - head_before[1]) == pytest.approx(1.0, abs=1e-6)
    assert float(head_after[0]) == pytest.approx(float(head_before[0]))
