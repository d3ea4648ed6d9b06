"""Domain anchors (trainer.anchor): with domain tags, a retrain's tagged texts learn the new
convention while their untagged copies keep the starting checkpoint's answers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from schemas.events import LABELS
from tests.unit.trainer.test_distill import continued, cue_teacher
from tests.unit.trainer.test_retrain_weighting import cue_rows
from trainer.anchor import anchor_weights, domain_anchors, soft_targets, untagged
from trainer.config import load_config
from trainer.data import Example
from trainer.errors import TrainingError
from trainer.modeling import load_classifier
from trainer.train import Teacher, fine_tune, predict_proba, teacher_probabilities

#: the new domain's convention: every cue means the next class
ROTATED = {label: LABELS[(i + 1) % 3] for i, label in enumerate(LABELS)}
TAG = "[prdect]"


@pytest.fixture(scope="module")
def teacher(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The cue teacher (test_distill), whose vocabulary has the tag's pieces too, trained
    until it answers the cues right."""
    texts = [t for t, _ in cue_rows(200, 1)] + [f"{TAG} {t}" for t, _ in cue_rows(20, 2)]
    probe = cue_rows(60, 9)
    gold = [LABELS.index(y) for _, y in probe]
    return cue_teacher(
        tmp_path_factory.mktemp("teacher"),
        texts,
        runs=16,
        done=lambda c: bool((_answers(c, [t for t, _ in probe]) == gold).mean() == 1.0),
    )


def test_untagged_finds_the_tagged_rows_and_strips_the_tag() -> None:
    texts = ["[prdect] barang bagus", "enak sekali", "[gplay] lambat", "[prdect]", "[prdect]x"]
    assert untagged(texts, ["prdect", "gplay"]) == ([0, 2], ["barang bagus", "lambat"])
    assert untagged(texts, ["gplay"]) == ([2], ["lambat"])
    assert untagged(texts, []) == ([], [])


def test_anchor_weights_and_targets_follow_the_rows_they_copy() -> None:
    weights = anchor_weights(0.5, [0, 2], np.array([3.0, 0.8, 2.0]), 3)
    np.testing.assert_allclose(weights, [3.0, 0.8, 2.0, 1.5, 1.0])
    np.testing.assert_allclose(anchor_weights(2.0, [1], None, 2), [1.0, 1.0, 2.0])
    with pytest.raises(TrainingError, match="anchor must be > 0"):
        anchor_weights(0.0, [0], None, 1)
    with pytest.raises(TrainingError, match="2 sampling weights for 3"):
        anchor_weights(1.0, [0], np.ones(2), 3)
    probs = np.array([[0.2, 0.3, 0.5]], dtype=np.float32)
    targets = soft_targets(np.array([0, 2]), None, probs)
    np.testing.assert_allclose(targets, [[1, 0, 0], [0, 0, 1], [0.2, 0.3, 0.5]])
    soft = np.array([[0.9, 0.1, 0.0]], dtype=np.float32)
    np.testing.assert_allclose(soft_targets(np.array([0]), soft, probs), [soft[0], probs[0]])
    with pytest.raises(TrainingError, match="do not fit"):
        soft_targets(np.array([0]), soft, np.ones((1, 2), dtype=np.float32))


def test_the_anchors_targets_are_the_starting_checkpoints_answers(teacher: Path) -> None:
    plain = [t for t, _ in cue_rows(6, 5)]
    raw = [f"{TAG} {t}" for t in plain[:4]] + plain[4:]
    config = load_config("configs/tiny.yaml").with_overrides(
        {"model": str(teacher), "domain_tags": ["prdect"]}
    )
    scorer = Teacher(config)
    anchors = domain_anchors(raw, config.domain_tags, scorer, 3)
    assert anchors.index.tolist() == [0, 1, 2, 3] and anchors.texts == plain[:4]
    np.testing.assert_allclose(anchors.probs, teacher_probabilities(config, plain[:4]), atol=1e-6)
    # the checkpoint is loaded once and kept for the next texts (distill and anchors share it)
    loaded = scorer._loaded  # noqa: SLF001 - the cached checkpoint
    scorer(plain[4:])
    assert loaded is not None and scorer._loaded is loaded  # noqa: SLF001
    # without tagged rows the teacher is not asked (a model built here has none to ask)
    mini = load_config("configs/tiny.yaml").with_overrides({"domain_tags": ["prdect"]})
    empty = domain_anchors(plain, ["prdect"], Teacher(mini), 3)
    assert len(empty) == 0 and empty.probs.shape == (0, 3)
    with pytest.raises(TrainingError, match="starting checkpoint"):
        domain_anchors(raw, ["prdect"], Teacher(mini), 3)


def _answers(checkpoint: Path, texts: list[str]) -> np.ndarray:
    tokenizer, model = load_classifier(checkpoint)
    return predict_proba(model, tokenizer, texts, max_length=32).argmax(axis=1)


def test_anchors_keep_the_untagged_answers_while_the_tag_learns_the_new_convention(
    teacher: Path, tmp_path: Path
) -> None:
    held = cue_rows(60, 9)
    plain = [t for t, _ in held]
    old = _answers(teacher, plain)
    assert (old == [LABELS.index(y) for _, y in held]).mean() > 0.9
    new_domain = [Example(text=f"{TAG} {t}", label=ROTATED[y]) for t, y in cue_rows(240, 4)]
    valid = [(f"{TAG} {t}", ROTATED[y]) for t, y in cue_rows(30, 6)]
    rotated = np.array([LABELS.index(ROTATED[y]) for _, y in held])
    kept, learnt = {}, {}
    for share in (0.0, 1.0):
        config = continued(teacher, epochs=12, lr=3e-3, domain_tags=["prdect"], anchor=share)
        result = fine_tune(
            config, new_domain, valid, progress=False, output_dir=tmp_path / f"a{share}"
        )
        assert result.extra.get("anchor_rows") == (240 if share else None)
        assert result.n_train == (480 if share else 240)
        kept[share] = float((_answers(result.checkpoint_dir, plain) == old).mean())
        tagged = _answers(result.checkpoint_dir, [f"{TAG} {t}" for t in plain])
        learnt[share] = float((tagged == rotated).mean())
    # without anchors the new convention overwrites the untagged answers too; with them the
    # untagged texts keep most of the champion's answers and the tagged ones still learn the
    # new convention
    # (each cue is one class, so the kept share moves in thirds; which class a tiny run loses
    # first depends on the tokenizer's tie order, i.e. on the process's hash seed)
    assert kept[0.0] < 0.5 and learnt[0.0] > 0.85
    assert kept[1.0] > 0.6 and kept[1.0] > kept[0.0] + 0.3 and learnt[1.0] > 0.85
