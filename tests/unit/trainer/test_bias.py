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
from trainer.bias import GRID, BaseRows, apply_bias, choose_bias
from trainer.config import load_config
from trainer.data import Example
from trainer.errors import ConfigError, DataError, TrainingError
from trainer.metrics import macro_f1
from trainer.modeling import load_classifier
from trainer.pipeline import choose_decision_bias


def _rare_middle_class(n: int, seed: int, lean: float = -1.4) -> tuple[np.ndarray, list[str]]:
    """Log-probabilities of a model that under-predicts a rare, weakly separated class 1
    (``lean`` is added to its logit; 0: a model that does not lean)."""
    rng = np.random.default_rng(seed)
    truth = rng.choice(3, size=n, p=[0.45, 0.1, 0.45])
    logits = rng.normal(0.0, 1.0, size=(n, 3))
    logits[np.arange(n), truth] += 1.6
    logits[:, 1] += lean
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


def test_base_rows_cap_an_offset_that_would_cost_them() -> None:
    # the serving domain wants a large neutral offset; the base domain's model leans less,
    # so a large offset there turns its positives and negatives into neutral
    log_probs, labels = _rare_middle_class(3000, seed=1)
    base_log_probs, base_labels = _rare_middle_class(1200, seed=5, lean=-0.9)
    base_truth = np.array([LABELS.index(label) for label in base_labels])

    def base_score(offset: float) -> float:
        shifted = base_log_probs + np.array([0.0, offset, 0.0])
        return macro_f1(base_truth, shifted.argmax(1), 3)

    free = choose_bias(log_probs, labels, ["neutral"])
    assert base_score(free.offsets["neutral"]) < base_score(0.0) - 0.01  # it would cost them
    guarded = choose_bias(
        log_probs, labels, ["neutral"], base=BaseRows(base_log_probs, base_labels, 0.0025)
    )
    offset = guarded.offsets["neutral"]
    assert 0 < offset < free.offsets["neutral"]
    assert base_score(offset) >= base_score(0.0) - 0.0025
    assert guarded.base == {
        "macro_f1_before": round(base_score(0.0), 4),
        "macro_f1_after": round(base_score(offset), 4),
        "n": 1200,
        "tolerance": 0.0025,
    }
    assert guarded.as_dict()["base"] == guarded.base and "base" not in free.as_dict()
    # on the serving rows it still does no worse than no offset
    assert guarded.macro_f1_after >= guarded.macro_f1_before
    # a tolerance nothing reaches changes nothing: the same draws, the same offsets
    loose = choose_bias(
        log_probs, labels, ["neutral"], base=BaseRows(base_log_probs, base_labels, 1.0)
    )
    assert loose.offsets == free.offsets and loose.macro_f1_after == free.macro_f1_after
    # bootstrap=0 keeps the best allowed grid value
    plain = choose_bias(
        log_probs,
        labels,
        ["neutral"],
        bootstrap=0,
        base=BaseRows(base_log_probs, base_labels, 0.0025),
    ).offsets["neutral"]
    assert plain in GRID and base_score(plain) >= base_score(0.0) - 0.0025


def test_a_bagged_mean_outside_the_base_tolerance_is_shrunk(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # base rows on which offsets 0.25-0.75 cost (row 0 turns neutral at 0.2), 1.0 does not
    # (row 1 turns neutral, rightly, at 0.95) and negative ones do (row 2 stops being
    # neutral at -0.1): resamples pick 0 or 1.0, and their mean falls between, where the base
    # rows lose
    base_rows: list[list[float]] = [[-5, -0.2, 0], [-5, -0.95, 0], [-5, 0, -0.1]]
    base_rows += [[0.0, -5.0, -5.0]] * 10 + [[-5.0, -5.0, 0.0]] * 10 + [[-5.0, 0.0, -5.0]] * 3
    base_labels = ["positive", "neutral", "neutral"]
    base_labels += ["negative"] * 10 + ["positive"] * 10 + ["neutral"] * 3
    base = BaseRows(np.array(base_rows, dtype=float), base_labels, 0.0)
    log_probs, labels = _rare_middle_class(3000, seed=1, lean=-1.1)
    guarded = choose_bias(log_probs, labels, ["neutral"], base=base)
    assert guarded.base is not None
    assert guarded.base["macro_f1_after"] >= guarded.base["macro_f1_before"]
    assert 0 < guarded.offsets["neutral"] <= 0.2
    # without the shrinking, the same draws give a mean the base rows lose on
    monkeypatch.setattr("trainer.bias.SHRINK", (1.0,))
    unshrunk = choose_bias(log_probs, labels, ["neutral"], base=base)
    assert unshrunk.base is not None
    assert unshrunk.offsets["neutral"] > 0.2
    assert unshrunk.base["macro_f1_after"] < unshrunk.base["macro_f1_before"]


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
    with pytest.raises(TrainingError, match="base tolerance must be >= 0"):
        choose_bias(log_probs, labels, ["neutral"], base=BaseRows(log_probs, labels, -0.1))
    with pytest.raises(TrainingError, match="base scores for 29 rows"):
        choose_bias(log_probs, labels, ["neutral"], base=BaseRows(log_probs, labels[:29], 0.0))
    with pytest.raises(TrainingError, match="no base rows"):
        choose_bias(log_probs, labels, ["neutral"], base=BaseRows(np.zeros((0, 3)), [], 0.0))
    with pytest.raises(TrainingError, match="needs 0 in its grid"):
        choose_bias(
            log_probs, labels, ["neutral"], grid=(-0.5, 0.5), base=BaseRows(log_probs, labels, 0)
        )
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


def _never_neutral(tmp_path: Path) -> tuple[Path, list[str], Path, torch.Tensor]:
    """A tiny checkpoint that never says neutral (its head's neutral bias lowered by 0.9),
    its texts, a held-out file calling every one of them neutral, and the head's bias."""
    texts = [f"ulasan nomor {i} biasa saja" for i in range(12)]
    folder = build_tiny_checkpoint(tmp_path / "m", texts=texts)
    _, model = load_classifier(folder)
    apply_bias(model, {"neutral": -0.9})
    model.save_pretrained(folder)
    rows = tmp_path / "holdout.jsonl"
    rows.write_text(
        "".join(json.dumps({"text": t, "label": "neutral"}) + "\n" for t in texts),
        encoding="utf-8",
    )
    return folder, texts, rows, model.classifier.bias.detach().clone()


def test_the_pipeline_writes_the_chosen_offsets_into_the_checkpoint(tmp_path: Path) -> None:
    folder, _, rows, head_before = _never_neutral(tmp_path)
    # every held-out row is neutral: only the largest offset of the grid undoes the -0.9
    config = load_config("configs/tiny.yaml").with_overrides({"bias_data": f"file:{rows}"})
    choice = choose_decision_bias(config, folder)
    assert choice.n == 12 and choice.macro_f1_after >= choice.macro_f1_before
    head_after = load_classifier(folder)[1].classifier.bias.detach()
    assert choice.offsets == {"neutral": 1.0} and choice.base is None
    assert float(head_after[1] - head_before[1]) == pytest.approx(1.0, abs=1e-6)
    assert float(head_after[0]) == pytest.approx(float(head_before[0]))


def test_the_pipeline_keeps_the_offsets_within_the_base_rows_tolerance(tmp_path: Path) -> None:
    folder, texts, rows, head_before = _never_neutral(tmp_path)
    tokenizer, model = load_classifier(folder)
    # base rows labelled as the model already calls them: the serving rows' offset (+1.0,
    # the test above) would turn them all neutral
    batch = tokenizer(texts, return_tensors="pt", padding=True)
    with torch.no_grad():
        calls = model(**batch).logits.argmax(1).tolist()
    assert LABELS.index("neutral") not in calls
    base = [Example(text=t, label=LABELS[c]) for t, c in zip(texts, calls, strict=True)]
    config = load_config("configs/tiny.yaml").with_overrides({"bias_data": f"file:{rows}"})
    choice = choose_decision_bias(config, folder, base)
    assert choice.base is not None and choice.base["n"] == 12
    assert choice.base["tolerance"] == config.gate.base_tolerance / 4
    assert (
        choice.base["macro_f1_after"] >= choice.base["macro_f1_before"] - choice.base["tolerance"]
    )
    offset = choice.offsets["neutral"]
    assert offset < 1.0
    head_after = load_classifier(folder)[1].classifier.bias.detach()
    assert float(head_after[1] - head_before[1]) == pytest.approx(offset, abs=1e-6)
    # a tolerance of its own: 1.0 lets the serving rows have their +1.0 back
    _, model = load_classifier(folder)
    apply_bias(model, {"neutral": -offset})
    model.save_pretrained(folder)
    loose = config.with_overrides({"bias_base_tolerance": 1.0})
    again = choose_decision_bias(loose, folder, base)
    assert again.offsets == {"neutral": 1.0}
    assert again.base is not None and again.base["tolerance"] == 1.0
    with pytest.raises(ConfigError, match="bias_base_tolerance"):
        config.with_overrides({"bias_base_tolerance": -0.1})


def test_with_domain_tags_the_offsets_are_the_tagged_sources_own(tmp_path: Path) -> None:
    """The offsets are chosen on the tagged rows of the hold-out, stay out of the checkpoint
    (the base domain never sees them) and are not guarded by the base rows."""
    folder, texts, _, head_before = _never_neutral(tmp_path)
    rows = tmp_path / "tagged.jsonl"
    lines = [{"text": f"[shop] {t}", "label": "neutral"} for t in texts]
    # an untagged row (a source with too few rows for a tag) does not choose the offsets
    lines += [{"text": t, "label": "positive"} for t in texts[:3]]
    rows.write_text("".join(json.dumps(r) + "\n" for r in lines), encoding="utf-8")
    base = [Example(text=t, label="positive") for t in texts]  # would forbid any offset
    config = load_config("configs/tiny.yaml").with_overrides(
        {"bias_data": f"file:{rows}", "domain_tags": ["shop"]}
    )
    choice = choose_decision_bias(config, folder, base)
    assert choice.domain and choice.base is None and choice.n == len(texts)
    assert choice.offsets == {"neutral": 1.0} and choice.as_dict()["scope"] == "tagged sources"
    head_after = load_classifier(folder)[1].classifier.bias.detach()
    assert torch.equal(head_after, head_before)  # the checkpoint is unchanged
    no_rows = config.with_overrides({"domain_tags": ["google_play"]})
    with pytest.raises(DataError, match="no rows of the sources"):
        choose_decision_bias(no_rows, folder, base)
