"""Unit tests of fine-tuning restarts (trainer.restarts) and of resuming a run from its saved
MLM encoder (trainer.pretrain.save_encoder / load_encoder, ``pretrain.resume_from``)."""

from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file, save_file
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from schemas.events import LABELS
from tests.helpers.synthetic_reviews import synthetic
from tests.helpers.tiny_model import build_tiny_checkpoint
from trainer.config import TrainConfig, load_config
from trainer.errors import TrainingError
from trainer.metrics import classification_report
from trainer.pipeline import run_training
from trainer.pretrain import PRETRAIN_RECORD, load_encoder, save_encoder
from trainer.restarts import RESTARTS_FILE, _Scorer, fine_tune_restarts, greedy_soup
from trainer.shipped import card_markdown
from trainer.train import (
    PreparedModel,
    average_state,
    clean_texts,
    fine_tune,
    predict_proba,
    prepare_mini,
)
from ulasan.core.settings import Settings

TRAIN = synthetic(150, 1)
VALID = synthetic(60, 2)


def _config(**overrides: Any) -> TrainConfig:
    # One epoch at a small rate: the restarts do not all reach the same score.
    return load_config("configs/tiny.yaml").with_overrides(
        {"epochs": 1, "lr": 1e-3, "batch_size": 16, "pretrain.steps": 3, **overrides}
    )


def _start(config: TrainConfig) -> PreparedModel:
    return prepare_mini(config, clean_texts([t for t, _ in TRAIN]), progress=False)


def _weights(checkpoint: Path) -> dict[str, torch.Tensor]:
    return load_file(str(checkpoint / "model.safetensors"))


def _report(checkpoint: Path, examples: list[tuple[str, str]]) -> dict[str, Any]:
    model = AutoModelForSequenceClassification.from_pretrained(checkpoint)
    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    probs = predict_proba(model, tokenizer, [t for t, _ in examples], max_length=64)
    return classification_report(
        [y for _, y in examples], [LABELS[i] for i in probs.argmax(axis=1)], probs
    )


def test_each_restart_is_the_plain_fine_tuning_of_its_seed_from_the_same_start(
    tmp_path: Path,
) -> None:
    config = _config()
    prepared = _start(config)
    start = copy.deepcopy(prepared.model.state_dict())
    fine_tune_restarts(
        config.with_overrides({"restarts": 2}),
        TRAIN,
        VALID,
        output_dir=tmp_path / "run",
        prepared=prepared,
        progress=False,
    )
    # The start is left as it was: every restart began from these weights.
    assert all(torch.equal(v, prepared.model.state_dict()[k]) for k, v in start.items())
    for offset in (0, 1):
        seed = config.seed + offset
        plain = fine_tune(
            config.with_overrides({"seed": seed}),
            TRAIN,
            VALID,
            progress=False,
            output_dir=tmp_path / f"plain-{seed}",
            prepared=dataclasses.replace(prepared, model=copy.deepcopy(prepared.model)),
        )
        restart = _weights(tmp_path / "run" / "restarts" / f"seed-{seed}" / "checkpoint")
        expected = _weights(plain.checkpoint_dir)
        assert restart.keys() == expected.keys()
        assert all(torch.equal(restart[k], expected[k]) for k in expected)


def test_the_best_restart_on_the_selection_set_becomes_the_runs_checkpoint(
    tmp_path: Path,
) -> None:
    config = _config(restarts=3)
    result = fine_tune_restarts(
        config, TRAIN, VALID, output_dir=tmp_path, prepared=_start(config), progress=False
    )
    record = json.loads((tmp_path / RESTARTS_FILE).read_text())
    scores = {r["seed"]: r["macro_f1"] for r in record["restarts"]}
    assert sorted(scores) == [7, 8, 9]
    best = min(scores, key=lambda s: (-scores[s], s))
    assert record["best_seed"] == best == result.extra["restart_seed"]
    assert record["soup_seeds"] == [best] == result.extra["soup_seeds"]
    assert result.checkpoint_dir == tmp_path / "checkpoint"
    # Each restart's recorded score is what its own checkpoint scores on the selection set.
    for seed, score in scores.items():
        own = _report(tmp_path / "restarts" / f"seed-{seed}" / "checkpoint", VALID)
        assert own["macro_f1"] == pytest.approx(score)
    kept, chosen = (
        _weights(result.checkpoint_dir),
        _weights(tmp_path / "restarts" / f"seed-{best}" / "checkpoint"),
    )
    assert all(torch.equal(kept[k], chosen[k]) for k in chosen)
    assert result.valid_report["macro_f1"] == pytest.approx(scores[best])
    assert (tmp_path / "history.json").read_text() == (
        tmp_path / "restarts" / f"seed-{best}" / "history.json"
    ).read_text()
    assert (result.checkpoint_dir / "tokenizer.json").is_file()


def test_the_greedy_soup_saves_the_average_of_its_members_and_never_scores_below_the_best(
    tmp_path: Path,
) -> None:
    config = _config(restarts=3, soup=True)
    result = fine_tune_restarts(
        config, TRAIN, VALID, output_dir=tmp_path, prepared=_start(config), progress=False
    )
    record = json.loads((tmp_path / RESTARTS_FILE).read_text())
    members = record["soup_seeds"]
    assert members[0] == record["best_seed"]
    assert record["kept_macro_f1"] >= max(r["macro_f1"] for r in record["restarts"])
    states = [_weights(tmp_path / "restarts" / f"seed-{s}" / "checkpoint") for s in members]
    expected = average_state(states)
    kept = _weights(result.checkpoint_dir)
    assert all(torch.allclose(kept[k], expected[k], atol=1e-7) for k in expected)
    assert _report(result.checkpoint_dir, VALID)["macro_f1"] == pytest.approx(
        record["kept_macro_f1"]
    )


def test_greedy_soup_adds_a_member_only_when_the_average_scores_as_well() -> None:
    # One weight; the score is higher the closer the weight is to 1.0.
    def evaluate(state: dict[str, Any]) -> dict[str, Any]:
        return {"macro_f1": 1.0 - abs(float(state["w"]) - 1.0)}

    states = [{"w": torch.tensor(w)} for w in (0.8, 1.3, 0.2, 1.1)]
    reports = [evaluate(s) for s in states]
    members, soup, report = greedy_soup(states, reports, evaluate)
    # Best first (1.1: 0.9), then 0.8 (average 0.95: 0.95, kept), then 1.3 (average 1.067:
    # 0.933, refused), then 0.2 (average 0.7: refused).
    assert members == [3, 0]
    assert float(soup["w"]) == pytest.approx(0.95)
    assert report["macro_f1"] == pytest.approx(0.95)


def test_one_restart_is_plain_fine_tuning_in_the_run_folder(tmp_path: Path) -> None:
    config = _config()
    result = fine_tune_restarts(
        config, TRAIN, VALID, output_dir=tmp_path, prepared=_start(config), progress=False
    )
    assert result.checkpoint_dir == tmp_path / "checkpoint"
    assert not (tmp_path / RESTARTS_FILE).exists() and not (tmp_path / "restarts").exists()
    assert "restarts" not in result.extra


def test_a_run_resumed_from_its_saved_encoder_starts_fine_tuning_from_the_same_model(
    tmp_path: Path,
) -> None:
    config = _config()
    first = _start(config)
    assert first.pretrain is not None
    save_encoder(first.pretrain, first.tokenizer, tmp_path / "pretrained")
    assert json.loads((tmp_path / "pretrained" / PRETRAIN_RECORD).read_text())["steps"] == 3

    resumed = prepare_mini(
        config.with_overrides({"pretrain.resume_from": tmp_path / "pretrained"}),
        [],  # nothing is trained: no corpus needed
        progress=False,
    )
    assert resumed.tokenizer.get_vocab() == first.tokenizer.get_vocab()
    assert resumed.pretrain is not None and resumed.pretrain.steps == 3
    assert resumed.pretrain.history == first.pretrain.history
    # Encoder, pooler and head: the same weights, so the same fine-tuning follows.
    original = first.model.state_dict()
    assert all(torch.equal(v, original[k]) for k, v in resumed.model.state_dict().items())


def test_resuming_refuses_a_folder_of_another_shape_or_no_encoder(tmp_path: Path) -> None:
    config = _config()
    first = _start(config)
    assert first.pretrain is not None
    folder = save_encoder(first.pretrain, first.tokenizer, tmp_path / "pretrained")
    wider = config.with_overrides({"architecture.hidden_size": 64})
    with pytest.raises(
        TrainingError, match=r"does not fit this config: hidden_size 32 \(config: 64\)"
    ):
        load_encoder(folder, wider.architecture, max_length=64)
    with pytest.raises(TrainingError, match="not a saved MLM encoder"):
        load_encoder(tmp_path / "nothing", config.architecture, max_length=64)


def test_the_model_card_names_the_restarts_and_a_resumed_pre_training() -> None:
    card = {
        "model_name": "ulasan-mini",
        "config_path": "configs/ulasan-mini.yaml",
        "seed": 13,
        "run": "run",
        "git_commit": "abc",
        "created_at": "2026-12-06",
        "training": {
            "wall_seconds": 10.0,
            "cpu_seconds": 20.0,
            "machine": "2 CPUs",
            "model": {
                "pretrain_resumed_from": "artifacts/train/x/pretrained",
                "restarts": [{"seed": 13, "macro_f1": 0.9}, {"seed": 14, "macro_f1": 0.91}],
                "soup_seeds": [14, 13],
            },
        },
        "n_train": 1,
        "n_pretrain_corpus": 1,
        "train_dataset_hash": "h",
        "sizes_bytes": {"serving": 1, "checkpoint": 1},
        "scores": {},
        "data": [],
        "config": {},
    }
    text = card_markdown(card)
    assert "seed 13 0.9000, seed 14 0.9100; kept: 14 + 13" in text
    assert "Pre-training resumed from `artifacts/train/x/pretrained`" in text


def test_a_pipeline_run_resumed_with_restarts_records_them(tmp_path: Path) -> None:
    config = _config(output_dir=tmp_path / "runs", register_model=False)
    first = _start(config)
    assert first.pretrain is not None
    folder = save_encoder(first.pretrain, first.tokenizer, tmp_path / "pretrained")
    result = run_training(
        config.with_overrides({"pretrain.resume_from": folder, "restarts": 2, "soup": True}),
        Settings(state_dir=tmp_path / "state"),
        progress=False,
    )
    written = json.loads((result.run_dir / "summary.json").read_text())
    assert written["config"]["restarts"] == 2 and written["config"]["seed"] == 7
    summary = written["train"]
    assert summary["pretrain_resumed_from"] == str(folder)
    assert summary["pretrain_steps"] == 3
    assert [r["seed"] for r in summary["restarts"]] == [7, 8]
    assert summary["soup_seeds"][0] == summary["restart_seed"]
    assert (result.run_dir / RESTARTS_FILE).is_file()
    # The run keeps the encoder it started from, so it can be resumed in turn.
    assert (result.run_dir / "pretrained" / "tokenizer.json").read_bytes() == (
        folder / "tokenizer.json"
    ).read_bytes()
    assert result.serving_dir is not None and (result.serving_dir / "model.onnx").is_file()


def test_a_restart_whose_weights_cannot_be_read_or_differ_is_a_clear_error(
    tmp_path: Path,
) -> None:
    folder = build_tiny_checkpoint(tmp_path / "base", texts=[t for t, _ in TRAIN], seed=1)
    scorer = _Scorer(_config(), folder, VALID)
    state = scorer.state(folder)
    model = AutoModelForSequenceClassification.from_pretrained(folder)
    assert state.keys() == model.state_dict().keys()
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "model.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(TrainingError, match="cannot read the restart's weights"):
        scorer.state(broken)
    with pytest.raises(TrainingError, match="cannot read the restart's weights"):
        scorer.state(tmp_path / "missing")
    other = tmp_path / "other"
    other.mkdir()
    save_file(
        {k: v for k, v in state.items() if not k.startswith("classifier.")},
        str(other / "model.safetensors"),
    )
    with pytest.raises(TrainingError, match=r"does not match the others: \['classifier.bias'"):
        scorer.state(other)
