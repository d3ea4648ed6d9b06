"""WiSE-FT for retrains: mixing the fine-tuned weights with the starting checkpoint's."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.helpers.tiny_model import build_tiny_checkpoint
from tests.unit.trainer.test_retrain_weighting import cue_rows
from trainer.config import load_config
from trainer.data import Example
from trainer.interpolate import choose_alpha, interpolate_checkpoint, mix_state
from trainer.modeling import load_classifier
from trainer.retrain.config import WARM_START_OVERRIDES
from trainer.train import fine_tune


def test_mix_state_mixes_shared_tensors_and_keeps_added_rows_and_integer_buffers() -> None:
    start = {"w": torch.zeros(2, 3), "emb": torch.zeros(4, 2), "ids": torch.arange(3)}
    tuned = {"w": torch.ones(2, 3), "emb": torch.ones(6, 2), "ids": torch.arange(3) + 5}
    tuned["new"] = torch.full((2,), 7.0)
    mixed = mix_state(start, tuned, 0.25)
    assert torch.allclose(mixed["w"], torch.full((2, 3), 0.25))
    # the vocabulary the retrain added (rows 4 and 5) has no starting value: kept as tuned
    assert torch.allclose(mixed["emb"][:4], torch.full((4, 2), 0.25))
    assert torch.equal(mixed["emb"][4:], torch.ones(2, 2))
    assert torch.equal(mixed["ids"], tuned["ids"]) and torch.equal(mixed["new"], tuned["new"])
    assert torch.equal(mix_state(start, tuned, 1.0)["w"], tuned["w"])
    assert torch.equal(mix_state(start, tuned, 0.0)["w"], start["w"])
    with pytest.raises(ValueError, match="alpha"):
        mix_state(start, tuned, 1.5)
    with pytest.raises(ValueError, match="shapes"):
        mix_state({"w": torch.zeros(3)}, {"w": torch.zeros(2, 3)}, 0.5)


def test_choose_alpha_takes_the_largest_share_within_the_tolerance() -> None:
    scores = {1.0: 0.80, 0.8: 0.845, 0.6: 0.851, 0.4: 0.852}
    assert choose_alpha(scores, start=0.85, tolerance=0.005) == 0.8
    assert choose_alpha(scores, start=0.85, tolerance=0.06) == 1.0
    # none within: the least forgetting (the best score; the smaller share on a tie)
    assert choose_alpha(scores, start=0.90, tolerance=0.0) == 0.4
    assert choose_alpha({1.0: 0.5, 0.5: 0.5}, start=0.9, tolerance=0.0) == 0.5
    with pytest.raises(ValueError):
        choose_alpha({}, start=0.9, tolerance=0.0)


def _continued(tmp_path: Path) -> tuple[Path, Path, list[Example]]:
    start = build_tiny_checkpoint(tmp_path / "start", texts=[t for t, _ in cue_rows(200, 1)])
    config = load_config("configs/tiny.yaml").with_overrides(
        {"model": str(start), "epochs": 1, "lr": 3e-3, "batch_size": 16}
    )
    result = fine_tune(
        config, cue_rows(60, 2), cue_rows(30, 3), progress=False, output_dir=tmp_path
    )
    valid = [Example(text=t, label=y) for t, y in cue_rows(45, 4)]
    return start, result.checkpoint_dir, valid


def test_interpolate_checkpoint_writes_the_chosen_mix_and_reports_every_share(
    tmp_path: Path,
) -> None:
    start, checkpoint, valid = _continued(tmp_path)
    _, tuned = load_classifier(checkpoint)
    _, first = load_classifier(start)
    before = {k: v.clone() for k, v in tuned.state_dict().items()}

    # a tolerance nothing can miss: all fine-tuned weights, the checkpoint left as it was
    kept = interpolate_checkpoint(start, checkpoint, valid, tolerance=1.0, grid=(1.0, 0.5))
    assert kept.alpha == 1.0 and set(kept.scores) == {1.0, 0.5} and kept.n == 45
    assert 0.0 <= kept.start_macro_f1 <= 1.0
    _, same = load_classifier(checkpoint)
    assert all(torch.equal(same.state_dict()[k], v) for k, v in before.items())

    # an impossible tolerance: the least-forgetting share is chosen and written
    mixed = interpolate_checkpoint(start, checkpoint, valid, tolerance=-1.0, grid=(1.0, 0.5))
    assert mixed.alpha == max(mixed.scores, key=lambda a: (mixed.scores[a], -a))
    assert mixed.as_dict()["scores"].keys() == {"1.0", "0.5"}
    if mixed.alpha == 0.5:
        _, written = load_classifier(checkpoint)
        want = mix_state(first.state_dict(), before, 0.5)
        assert all(torch.allclose(written.state_dict()[k], v) for k, v in want.items())


def test_a_retrain_interpolates_a_warm_start_and_a_fresh_model_does_not() -> None:
    assert WARM_START_OVERRIDES["interpolate"] is True
    assert load_config().interpolate is False  # ulasan train from scratch: nothing to mix with
