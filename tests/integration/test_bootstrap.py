"""``ulasan bootstrap`` (compose's one-shot service) on the real stack: idempotent, and it finds
the champion or says there is none."""

from __future__ import annotations

import contextlib
import uuid
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from tests.helpers.tiny_model import tiny_serving_folder
from trainer import registry
from ulasan.cli import app
from ulasan.core.registry import CHAMPION
from ulasan.core.settings import Settings


def bootstrap(name: str, *args: str) -> Result:
    """``ulasan bootstrap ARGS`` with the registered model ``name`` (the Typer app in process:
    the console script runs the same)."""
    env = {"ULASAN_MLFLOW__REGISTERED_MODEL": name, "COLUMNS": "200"}
    return CliRunner().invoke(app, ["bootstrap", *args], env=env)


def test_bootstrap_reports_a_missing_champion_then_finds_one(
    settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> None:
    name = f"test-bootstrap-{uuid.uuid4().hex[:8]}"
    reg = settings.model_copy(
        update={"mlflow": settings.mlflow.model_copy(update={"registered_model": name})}
    )
    mc = registry.client(reg)
    try:
        first = bootstrap(name, "--no-train")
        assert first.exit_code == 3, first.output
        # the shared stack is already migrated and has every topic: nothing to do, no error
        assert "migrations: current" in first.output
        assert "topics: all exist" in first.output
        assert f"{name} has none" in first.output

        folder = tiny_serving_folder(tmp_path_factory.getbasetemp(), trained=False)
        exp = mc.get_experiment_by_name("ulasan-tests")
        exp_id = exp.experiment_id if exp else mc.create_experiment("ulasan-tests")
        run_id = mc.create_run(exp_id).info.run_id
        registry.log_serving_folder(reg, run_id, Path(folder))
        version = registry.register_candidate(reg, run_id, folder, train_dataset_hash="h")
        mc.set_terminated(run_id)
        mc.set_registered_model_alias(name, CHAMPION, version.version)

        second = bootstrap(name)  # --train is the default: with a champion nothing is trained
        assert second.exit_code == 0, second.output
        assert f"models:/{name}/{version.version}" in second.output
        assert "training" not in second.output
    finally:
        with contextlib.suppress(Exception):
            mc.delete_registered_model(name)
