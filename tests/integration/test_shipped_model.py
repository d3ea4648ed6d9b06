"""The shipped champion: ``ulasan model ship`` from a real (tiny) run, its card and hashes, a
tampered file refused, registration into MLflow as champion without training, and a retrain's
warm start from its float16 checkpoint. A private registered model keeps the shared one out."""

from __future__ import annotations

import contextlib
import json
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from rich.console import Console
from safetensors import safe_open

from tests.helpers.tiny_model import PROJECT_ROOT
from trainer import registry, shipped
from trainer.config import load_config
from trainer.pipeline import run_training
from trainer.retrain.warm_start import warm_start_source
from ulasan import main_job
from ulasan.core.settings import Settings

TINY = PROJECT_ROOT / "configs" / "tiny.yaml"


@pytest.fixture(name="own_settings")
def own_settings_fixture(settings: Settings, tmp_path: Path) -> Iterator[Settings]:
    name = f"test-ulasan-shipped-{uuid.uuid4().hex[:8]}"
    own = settings.model_copy(
        update={
            "models_dir": tmp_path / "models",
            "mlflow": settings.mlflow.model_copy(
                update={"registered_model": name, "experiment": "ulasan-tests"}
            ),
        }
    )
    yield own
    with contextlib.suppress(Exception):
        registry.client(own).delete_registered_model(name)


@pytest.fixture(name="shipped_model", scope="module")
def shipped_model_fixture(tmp_path_factory: pytest.TempPathFactory) -> shipped.ShippedModel:
    """A tiny run trained offline (no MLflow), shipped into a temporary models folder."""
    tmp = tmp_path_factory.mktemp("shipped")
    config = load_config(TINY).with_overrides(
        # seed 11 on the command line (the file says 7): the card names the run's own seed
        {"output_dir": tmp / "runs", "register_model": False, "gate.min_accuracy": 0.0, "seed": 11}
    )
    result = run_training(config, Settings(), console=Console(quiet=True), progress=False)
    return shipped.ship(
        Path(result.run_dir), tmp / "models" / "ulasan-mini", config_path=TINY, settings=Settings()
    )


def test_ship_writes_a_card_with_hashes_licences_and_scores(
    shipped_model: shipped.ShippedModel,
) -> None:
    card = json.loads((shipped_model.folder / shipped.CARD_FILE).read_text(encoding="utf-8"))
    assert card["seed"] == 11 and card["config"]["model"] == "ulasan-mini"
    # the file as committed, and what the run's command line changed in it
    assert card["config"]["seed"] == 7
    assert card["overrides"]["seed"] == 11 and card["overrides"]["register_model"] is False
    assert card["training"]["wall_seconds"] > 0
    assert {"smsa-valid-dedup", "smsa-test"} <= set(card["scores"])
    assert 0.0 <= card["scores"]["smsa-test"]["macro_f1"] <= 1.0
    used = {d["path"]: d for d in card["data"]}
    assert used["data/smsa/test.tsv"]["use"] == "evaluation only"
    assert used["data/smsa/train.tsv"]["licence"].startswith("Apache-2.0")
    assert len(used["data/smsa/train.tsv"]["sha256"]) == 64
    assert "serving/model.onnx" in card["files"] and "checkpoint/model.safetensors" in card["files"]
    # no fp32 graph, and the manifest says there is none
    assert not (shipped_model.serving / "model_fp32.onnx").exists()
    assert shipped.verify(shipped_model).fp32_model_file is None
    with safe_open(str(shipped_model.checkpoint / shipped.WEIGHTS), "pt") as fh:
        dtypes = {str(fh.get_tensor(k).dtype) for k in fh.keys()}  # noqa: SIM118
    assert "torch.float16" in dtypes and "torch.float32" not in dtypes
    markdown = (shipped_model.folder / shipped.CARD_MARKDOWN).read_text(encoding="utf-8")
    assert "| smsa-test |" in markdown and "data/smsa/train.tsv" in markdown
    assert "the run's command line changed `seed: 11`" in markdown


def test_a_changed_file_is_refused(shipped_model: shipped.ShippedModel, tmp_path: Path) -> None:
    copy = tmp_path / "ulasan-mini"
    shutil.copytree(shipped_model.folder, copy)
    graph = copy / "serving" / "model.onnx"
    graph.write_bytes(graph.read_bytes()[:-1] + b"\x00")
    (copy / "checkpoint" / "vocab.txt").unlink()
    found = shipped.load(copy)
    assert found is not None
    with pytest.raises(shipped.ShippedModelError) as err:
        shipped.verify(found)
    assert "serving/model.onnx: sha256" in str(err.value)
    assert "checkpoint/vocab.txt: missing" in str(err.value)


def test_no_card_is_no_shipped_model_and_a_broken_card_is_an_error(tmp_path: Path) -> None:
    assert shipped.load(tmp_path / "nothing") is None
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / shipped.CARD_FILE).write_text("{not json", encoding="utf-8")
    with pytest.raises(shipped.ShippedModelError, match="unreadable model card"):
        shipped.load(tmp_path / "broken")


def test_a_fresh_registry_gets_the_repository_champion_without_training(
    own_settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The champion the repository ships (models/ulasan-mini) is registered and promoted."""
    shutil.copytree(shipped.default_folder(), shipped.default_folder(own_settings))

    def no_training(*args: object, **kwargs: object) -> None:
        raise AssertionError("ensure_champion trained instead of registering the shipped model")

    monkeypatch.setattr(main_job, "run_training", no_training)
    console = Console(record=True, width=160)

    uri = main_job.ensure_champion(own_settings, None, console)

    out = console.export_text()
    assert "registering the shipped champion" in out and "registered and promoted" in out
    champion = registry.champion(own_settings)
    assert champion is not None and uri == champion.uri
    assert champion.tags[shipped.TAG_SHIPPED] == "true"
    assert champion.scores is not None and champion.scores.n > 1000
    # a retrain continues from the shipped checkpoint (float16 on disk, float32 when loaded)
    folder, info = warm_start_source(own_settings, champion, tmp_path / "warm")
    assert folder is not None and info["used"], info
    from transformers import AutoModelForSequenceClassification  # noqa: PLC0415 - heavy

    model = AutoModelForSequenceClassification.from_pretrained(folder)
    assert str(next(model.parameters()).dtype) == "torch.float32"
    # a second call reuses the champion: nothing is registered again
    assert main_job.ensure_champion(own_settings, None, Console(quiet=True)) == uri
    assert len(registry.client(own_settings).search_model_versions(f"name='{champion.name}'")) == 1


def test_the_repository_champion_matches_its_card_and_this_code() -> None:
    """Fails when a change to the text features or the lexicon leaves the shipped model behind
    (re-train and `ulasan model ship`), or when a shipped file was altered."""
    found = shipped.load()
    assert found is not None, "models/ulasan-mini/card.json is missing"
    manifest = shipped.verify(found)
    assert manifest.model_name == "ulasan-mini"
    assert found.card["sizes_bytes"]["total"] < 50_000_000
