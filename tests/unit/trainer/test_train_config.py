"""Unit tests of the training config: the shipped YAML files, overrides and clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from trainer.config import CONFIG_DIR, DEFAULT_CONFIG, TrainConfig, load_config
from trainer.errors import ConfigError


@pytest.mark.parametrize("path", sorted(CONFIG_DIR.glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_configs_load(path: Path) -> None:
    config = load_config(path)
    assert config.architecture.hidden_size % config.architecture.num_heads == 0


def test_default_is_ulasan_mini_with_pretraining() -> None:
    config = load_config()
    assert config == load_config(DEFAULT_CONFIG)
    assert config.is_mini
    assert config.pretrain.steps > 0
    assert config.data == "smsa"


def test_overrides_replace_dotted_keys_and_ignore_none() -> None:
    config = load_config().with_overrides(
        {"epochs": 2, "pretrain.steps": 0, "lr": None, "model": "some/hub-model"}
    )
    assert config.epochs == 2
    assert config.pretrain.steps == 0
    assert config.lr == load_config().lr
    assert not config.is_mini


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"epoch": 3}, "unknown configuration key 'epoch'"),
        ({"pretrain.step": 3}, "unknown configuration key 'pretrain.step'"),
        ({"epochs.x": 3}, "unknown configuration key"),
        ({"epochs": 0}, "epochs"),
        ({"data": "kaggle"}, "data must be smsa"),
        ({"data": "file:"}, "data must be smsa"),
        ({"selection_data": "smsa"}, "selection_data must be file:PATH"),
    ],
)
def test_bad_overrides_name_the_problem(overrides: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config().with_overrides(overrides)


def test_file_data_source_is_accepted() -> None:
    assert TrainConfig(data="file:reviews.csv").data == "file:reviews.csv"


def test_bad_files_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no training config"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("epochs: [1,\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    typo = tmp_path / "typo.yaml"
    typo.write_text("epochs: 2\nlearning_rate: 0.1\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="learning_rate"):
        load_config(typo)
    listed = tmp_path / "list.yaml"
    listed.write_text("- 1\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(listed)
