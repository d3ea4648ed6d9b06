"""MLflow of the local stack: runs with params, metrics, artifacts; registry versions, aliases."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import mlflow
import pytest
from mlflow import MlflowClient

from ulasan.core.settings import Settings


class Echo(mlflow.pyfunc.PythonModel):  # type: ignore[name-defined,misc]
    """The smallest pyfunc model: returns its input."""

    def predict(
        self, context: object, model_input: list[str], params: dict | None = None
    ) -> list[str]:
        return model_input


@pytest.fixture
def client(settings: Settings) -> MlflowClient:
    mlflow.set_tracking_uri(settings.mlflow.uri)
    return MlflowClient(tracking_uri=settings.mlflow.uri)


@pytest.fixture
def experiment(client: MlflowClient, unique_name: Callable[[str], str]) -> Iterator[str]:
    experiment_id = client.create_experiment(unique_name("it-mlflow"))
    yield experiment_id
    client.delete_experiment(experiment_id)


@pytest.fixture
def model_name(client: MlflowClient, unique_name: Callable[[str], str]) -> Iterator[str]:
    name = unique_name("it-model")
    yield name
    if client.search_registered_models(filter_string=f"name = '{name}'"):
        client.delete_registered_model(name)


def test_run_with_params_metrics_and_artifact(
    client: MlflowClient, experiment: str, tmp_path: Path
) -> None:
    report = tmp_path / "report.json"
    report.write_text(json.dumps({"accuracy": 0.8}))
    with mlflow.start_run(experiment_id=experiment) as run:
        mlflow.log_params({"lr": 3e-5, "epochs": 2})
        for step, loss in enumerate([0.9, 0.5, 0.3]):
            mlflow.log_metric("loss", loss, step=step)
        mlflow.log_artifact(str(report), artifact_path="eval")

    logged = client.get_run(run.info.run_id)
    assert logged.info.status == "FINISHED"
    assert logged.data.params == {"lr": "3e-05", "epochs": "2"}
    assert [m.value for m in client.get_metric_history(run.info.run_id, "loss")] == [0.9, 0.5, 0.3]
    # the artifact went through the server (--serve-artifacts) and comes back intact
    assert logged.info.artifact_uri.startswith("mlflow-artifacts:")
    local = mlflow.artifacts.download_artifacts(
        run_id=run.info.run_id, artifact_path="eval/report.json", dst_path=str(tmp_path / "dl")
    )
    assert json.loads(Path(local).read_text()) == {"accuracy": 0.8}


def test_register_pyfunc_and_alias(client: MlflowClient, experiment: str, model_name: str) -> None:
    with mlflow.start_run(experiment_id=experiment) as run:
        mlflow.pyfunc.log_model(name="model", python_model=Echo(), pip_requirements=[])
    version = mlflow.register_model(f"runs:/{run.info.run_id}/model", model_name)
    client.set_registered_model_alias(model_name, "candidate", version.version)

    by_alias = client.get_model_version_by_alias(model_name, "candidate")
    assert by_alias.version == version.version
    assert by_alias.run_id == run.info.run_id
    loaded = mlflow.pyfunc.load_model(f"models:/{model_name}@candidate")
    assert loaded.predict(["bagus"]) == ["bagus"]


def test_register_artifact_folder_and_move_alias(
    client: MlflowClient, experiment: str, model_name: str, tmp_path: Path
) -> None:
    """A plain folder (what an ONNX export is) becomes a version through its artifact URI."""
    folder = tmp_path / "onnx"
    folder.mkdir()
    (folder / "model.onnx").write_bytes(b"not really onnx, just bytes")
    (folder / "labels.json").write_text('["negative", "neutral", "positive"]')
    client.create_registered_model(model_name)
    versions = []
    for _ in range(2):
        with mlflow.start_run(experiment_id=experiment) as run:
            mlflow.log_artifacts(str(folder), artifact_path="model")
        source = f"{run.info.artifact_uri}/model"
        versions.append(client.create_model_version(model_name, source, run_id=run.info.run_id))

    client.set_registered_model_alias(model_name, "champion", versions[0].version)
    assert client.get_model_version_by_alias(model_name, "champion").version == "1"
    client.set_registered_model_alias(model_name, "champion", versions[1].version)
    assert client.get_model_version_by_alias(model_name, "champion").version == "2"

    local = Path(
        mlflow.artifacts.download_artifacts(
            artifact_uri=f"models:/{model_name}@champion", dst_path=str(tmp_path / "dl")
        )
    )
    assert sorted(p.name for p in local.iterdir()) == ["labels.json", "model.onnx"]
    assert (local / "model.onnx").read_bytes() == b"not really onnx, just bytes"
