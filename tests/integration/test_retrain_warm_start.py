"""Where a retrain finds the champion's checkpoint (local stack's MLflow): the run's artifact,
else the run's local folder, else a clear refusal (the retrain then trains from scratch)."""

from __future__ import annotations

import contextlib
import json
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.tiny_model import build_tiny_checkpoint, tiny_serving_folder
from trainer import registry
from trainer.errors import RegistryError
from trainer.pipeline import write_checkpoint_meta
from trainer.retrain.warm_start import warm_start_source
from ulasan.core.settings import Settings


@pytest.fixture(name="reg_settings")
def reg_settings_fixture(settings: Settings, tmp_path: Path) -> Iterator[Settings]:
    name = f"test-warm-{uuid.uuid4().hex[:8]}"
    reg = settings.model_copy(
        update={
            "state_dir": tmp_path / "state",
            "mlflow": settings.mlflow.model_copy(
                update={"registered_model": name, "experiment": "ulasan-tests"}
            ),
        }
    )
    yield reg
    with contextlib.suppress(Exception):
        registry.client(reg).delete_registered_model(name)


@pytest.fixture(name="checkpoint", scope="module")
def checkpoint_fixture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = build_tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "checkpoint")
    write_checkpoint_meta(
        folder, model_name="tiny", max_length=64, feature_version="f", lexicon_version="l"
    )
    return folder


def _version(
    settings: Settings,
    serving: Path,
    *,
    artifact: Path | None = None,
    run_dir: Path | None = None,
) -> registry.ModelVersionInfo:
    mc = registry.client(settings)
    exp = mc.get_experiment_by_name(settings.mlflow.experiment)
    exp_id = exp.experiment_id if exp else mc.create_experiment(settings.mlflow.experiment)
    run_id = mc.create_run(exp_id).info.run_id
    if artifact is not None:
        mc.log_artifacts(run_id, str(artifact), artifact_path=registry.CHECKPOINT_ARTIFACT)
    if run_dir is not None:
        mc.set_tag(run_id, registry.TAG_RUN_DIR, str(run_dir))
    mc.set_terminated(run_id)
    registry.log_serving_folder(settings, run_id, serving)
    return registry.register_candidate(settings, run_id, serving, train_dataset_hash="h")


def test_the_checkpoint_artifact_of_the_champions_run_is_downloaded(
    reg_settings: Settings, checkpoint: Path, tmp_path: Path
) -> None:
    serving = tiny_serving_folder(tmp_path / "serving", trained=False)
    version = _version(reg_settings, serving, artifact=checkpoint)
    found = registry.download_checkpoint(reg_settings, version, tmp_path / "dl")
    assert found.origin == f"mlflow:runs:/{version.run_id}/checkpoint"
    assert found.folder.is_relative_to(tmp_path / "dl")
    assert (found.folder / "model.safetensors").is_file() and found.meta["model_name"] == "tiny"
    folder, info = warm_start_source(reg_settings, version, tmp_path / "dl2")
    assert folder is not None and info["used"] and info["from_version"] == version.version
    assert info["checkpoint_max_length"] == 64 and info["lexicon_version"]["champion"] == "l"


def test_without_an_artifact_the_runs_local_folder_is_copied_and_its_metadata_completed(
    reg_settings: Settings, checkpoint: Path, tmp_path: Path
) -> None:
    run_dir = tmp_path / "old-run"
    shutil.copytree(checkpoint, run_dir / "checkpoint")
    (run_dir / "checkpoint" / registry.CHECKPOINT_META_FILE).unlink()  # a run from before
    serving = tiny_serving_folder(tmp_path / "serving", trained=False)
    version = _version(reg_settings, serving, run_dir=run_dir)
    folder, info = warm_start_source(reg_settings, version, tmp_path / "dl")
    assert folder is not None and info["origin"] == f"local:{run_dir / 'checkpoint'}"
    assert folder.is_relative_to(tmp_path / "dl")
    assert not (run_dir / "checkpoint" / registry.CHECKPOINT_META_FILE).exists()  # untouched
    meta = registry.read_checkpoint_meta(folder)
    assert meta["model_name"] == version.tags[registry.TAG_MODEL_NAME]
    assert meta["lexicon_version"] == version.tags[registry.TAG_LEXICON_VERSION]


def test_no_checkpoint_anywhere_is_a_clear_error_and_a_recorded_from_scratch_retrain(
    reg_settings: Settings, tmp_path: Path
) -> None:
    serving = tiny_serving_folder(tmp_path / "serving", trained=False)
    version = _version(reg_settings, serving, run_dir=tmp_path / "gone")
    with pytest.raises(RegistryError, match="no checkpoint/ artifact.*no checkpoint at the run"):
        registry.download_checkpoint(reg_settings, version, tmp_path / "dl")
    folder, info = warm_start_source(reg_settings, version, tmp_path / "dl")
    assert folder is None and not info["used"] and "no checkpoint" in info["reason"]
    assert warm_start_source(reg_settings, None, tmp_path)[1]["reason"].startswith("there is no")


def test_a_checkpoint_with_another_label_order_is_not_continued(
    reg_settings: Settings, checkpoint: Path, tmp_path: Path
) -> None:
    other = shutil.copytree(checkpoint, tmp_path / "other" / "checkpoint")
    config = json.loads((other / "config.json").read_text())
    config["id2label"] = {"0": "positive", "1": "neutral", "2": "negative"}
    (other / "config.json").write_text(json.dumps(config))
    serving = tiny_serving_folder(tmp_path / "serving", trained=False)
    version = _version(reg_settings, serving, artifact=other)
    folder, info = warm_start_source(reg_settings, version, tmp_path / "dl")
    assert folder is None and "labels" in info["reason"]
