"""Distillation from the starting checkpoint (Learning without Forgetting) for retrains."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from schemas.events import LABELS
from tests.helpers.tiny_model import build_tiny_checkpoint
from tests.unit.trainer.test_retrain_weighting import cue_rows
from trainer.config import TrainConfig, load_config
from trainer.data import Example
from trainer.errors import TrainingError
from trainer.modeling import load_classifier
from trainer.train import distilled_targets, fine_tune, predict_proba, teacher_probabilities

#: a new domain whose labels contradict the old one: every cue means the next class
ROTATED = {label: LABELS[(i + 1) % 3] for i, label in enumerate(LABELS)}


def continued(checkpoint: Path, **overrides: Any) -> TrainConfig:
    """configs/tiny.yaml continuing ``checkpoint`` in batches of 16, with ``overrides``."""
    return load_config("configs/tiny.yaml").with_overrides(
        {"model": str(checkpoint), "batch_size": 16, **overrides}
    )


def cue_teacher(
    tmp: Path,
    tokenizer_texts: list[str],
    *,
    runs: int,
    done: Callable[[Path], bool] | None = None,
) -> Path:
    """A tiny checkpoint that learned the cues, and is sure of them (the champion): up to
    ``runs`` one-epoch runs, each continuing the last (a longer run would keep its first
    perfect epoch); from the fourth run on, ``done(checkpoint)`` may stop them early."""
    checkpoint = build_tiny_checkpoint(tmp / "start", texts=tokenizer_texts)
    rows = [Example(text=t, label=y) for t, y in cue_rows(120, 2)]
    for run in range(runs):
        config = continued(checkpoint, epochs=1, lr=1e-2)
        result = fine_tune(config, rows, cue_rows(30, 3), progress=False, output_dir=tmp / str(run))
        checkpoint = result.checkpoint_dir
        if done is not None and run >= 3 and done(checkpoint):
            break
    return checkpoint


@pytest.fixture(scope="module")
def teacher(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The cue teacher of eight runs."""
    return cue_teacher(tmp_path_factory.mktemp("teacher"), [t for t, _ in cue_rows(200, 1)], runs=8)


def _probabilities(checkpoint: Path, texts: list[str]) -> np.ndarray:
    """The checkpoint's class probabilities for ``texts``."""
    tokenizer, model = load_classifier(checkpoint)
    return predict_proba(model, tokenizer, texts, max_length=32)


def test_targets_mix_the_label_with_the_starting_checkpoints_probabilities(teacher: Path) -> None:
    texts = [t for t, _ in cue_rows(12, 5)]
    config = load_config("configs/tiny.yaml").with_overrides({"model": str(teacher)})
    probs = teacher_probabilities(config, texts)
    tokenizer, model = load_classifier(teacher)
    np.testing.assert_allclose(
        probs, predict_proba(model, tokenizer, texts, max_length=config.max_length), atol=1e-6
    )
    y = np.array([0, 1, 2] * 4)
    soft = distilled_targets(0.25, y, probs)
    assert soft.shape == (12, 3)
    np.testing.assert_allclose(soft.sum(axis=1), 1.0, atol=1e-6)
    np.testing.assert_allclose(soft, 0.75 * np.eye(3)[y] + 0.25 * probs, atol=1e-6)
    np.testing.assert_array_equal(distilled_targets(0.0, y, probs), np.eye(3)[y])
    with pytest.raises(TrainingError, match="distill must be"):
        distilled_targets(1.0, y, probs)


def test_a_model_built_here_has_no_starting_checkpoint_to_distil_from() -> None:
    config = load_config("configs/tiny.yaml")
    with pytest.raises(TrainingError, match="starting checkpoint"):
        teacher_probabilities(config, ["bagus"])


def test_distillation_keeps_the_old_answers_against_contradicting_labels(
    teacher: Path, tmp_path: Path
) -> None:
    held_out = [t for t, _ in cue_rows(60, 9)]
    config = load_config("configs/tiny.yaml").with_overrides({"model": str(teacher)})
    probs = teacher_probabilities(config, held_out)
    old = probs.argmax(axis=1)
    # the old model knows the cues, and is sure of them
    assert (old == [LABELS.index(y) for _, y in cue_rows(60, 9)]).mean() > 0.9
    assert probs.max(axis=1).min() > 0.9
    new_domain = [Example(text=t, label=ROTATED[y]) for t, y in cue_rows(120, 4)]
    valid = [(t, ROTATED[y]) for t, y in cue_rows(30, 6)]
    agreement, kept = {}, {}
    for share in (0.0, 0.9):
        config = continued(teacher, epochs=4, lr=1e-2, distill=share)
        result = fine_tune(
            config, new_domain, valid, progress=False, output_dir=tmp_path / f"d{share}"
        )
        if share:
            # the teacher disagrees with every rotated label
            assert result.extra["distill_label_agreement"] < 0.1
        else:
            assert "distill_label_agreement" not in result.extra
        now = _probabilities(result.checkpoint_dir, held_out)
        agreement[share] = float((now.argmax(axis=1) == old).mean())
        kept[share] = float(now[np.arange(len(old)), old].mean())  # p(the old answer)
    # plain fine-tuning follows the new labels; distilled, most of the old answers stay
    assert agreement[0.0] < 0.3 and agreement[0.9] >= agreement[0.0] + 0.5
    assert kept[0.9] > kept[0.0] + 0.4
