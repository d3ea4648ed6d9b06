"""L2-SP for retrains: the fine-tuning loss pulls the encoder towards its starting weights."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.helpers.tiny_model import build_tiny_checkpoint
from tests.unit.trainer.test_retrain_weighting import cue_rows
from trainer.config import load_config
from trainer.errors import TrainingError
from trainer.modeling import load_classifier
from trainer.train import StartingPointPenalty, fine_tune


def _encoder_distance(start: Path, tuned: Path) -> tuple[float, float]:
    """How far the encoder and the head moved from ``start`` (Euclidean)."""
    _, a = load_classifier(start)
    _, b = load_classifier(tuned)
    sa, sb = a.state_dict(), b.state_dict()
    prefix = f"{a.base_model_prefix}."
    encoder = head = 0.0
    for name, value in sb.items():
        if not value.is_floating_point() or name not in sa or sa[name].shape != value.shape:
            continue
        d = float(((value - sa[name]) ** 2).sum())
        if name.startswith(prefix):
            encoder += d
        else:
            head += d
    return encoder**0.5, head**0.5


def test_the_penalty_is_the_squared_distance_of_the_encoder_only(tmp_path: Path) -> None:
    start = build_tiny_checkpoint(tmp_path / "start", texts=[t for t, _ in cue_rows(100, 1)])
    _, model = load_classifier(start)
    penalty = StartingPointPenalty(model, 0.5)
    assert float(penalty().detach()) == 0.0 and penalty.distance() == 0.0
    encoder = [p for n, p in model.named_parameters() if n.startswith("bert.")]
    head = [p for n, p in model.named_parameters() if not n.startswith("bert.")]
    with torch.no_grad():
        encoder[0].add_(0.1)
        head[0].add_(5.0)  # the head is free: not in the penalty
    expected = 0.5 * 0.01 * encoder[0].numel()
    assert float(penalty().detach()) == pytest.approx(expected, rel=1e-4)
    assert penalty.distance() == pytest.approx((0.01 * encoder[0].numel()) ** 0.5, rel=1e-4)
    penalty().backward()
    # d/dw of s * (w - w0)^2 = 2 s (w - w0)
    assert torch.allclose(encoder[0].grad, torch.full_like(encoder[0], 2 * 0.5 * 0.1), atol=1e-5)
    assert head[0].grad is None


def test_a_model_without_an_encoder_prefix_is_refused() -> None:
    linear = torch.nn.Linear(2, 2)
    linear.base_model_prefix = "bert"  # type: ignore[assignment]
    with pytest.raises(TrainingError, match="no parameters under 'bert.'"):
        StartingPointPenalty(linear, 1.0)


def test_l2sp_keeps_a_continued_encoder_nearer_its_start(tmp_path: Path) -> None:
    start = build_tiny_checkpoint(tmp_path / "start", texts=[t for t, _ in cue_rows(200, 1)])
    moved = {}
    for strength in (0.0, 50.0):
        config = load_config("configs/tiny.yaml").with_overrides(
            {"model": str(start), "epochs": 2, "lr": 3e-3, "batch_size": 16, "l2sp": strength}
        )
        out = tmp_path / f"l2sp-{strength}"
        result = fine_tune(config, cue_rows(80, 2), cue_rows(30, 3), progress=False, output_dir=out)
        moved[strength] = _encoder_distance(start, result.checkpoint_dir)
        distances = [m.get("l2sp_distance") for m in result.history]
        if strength == 0:
            assert distances == [None] * len(distances)
        else:
            assert all(d is not None and d > 0 for d in distances)
    free_encoder, _ = moved[0.0]
    held_encoder, held_head = moved[50.0]
    assert held_encoder < 0.5 * free_encoder
    assert held_head > 0  # the head still learns
