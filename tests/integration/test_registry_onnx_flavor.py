"""The registered model is also an MLflow ``onnx`` flavor that MLflow itself loads and runs.

MLServer's and KServe's MLflow runtimes load the same ``MLmodel`` folder, so a model that
``mlflow.pyfunc`` serves here is one they can serve.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import mlflow.artifacts
import mlflow.onnx
import mlflow.pyfunc
import numpy as np
import onnxruntime as ort
import pytest
import yaml

from tests.helpers.tiny_model import tiny_serving_folder
from trainer import registry
from ulasan.core.inference.manifest import MANIFEST_FILE, ModelManifest
from ulasan.core.settings import Settings


def test_serving_folder_is_logged_as_an_onnx_flavor_that_mlflow_runs(
    settings: Settings, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    folder = tiny_serving_folder(tmp_path_factory.getbasetemp(), trained=False)
    manifest = ModelManifest.read(folder)
    mc = registry.client(settings)
    exp_name = f"ulasan-tests-{uuid.uuid4().hex[:6]}"
    exp_id = mc.create_experiment(exp_name)
    try:
        run_id = mc.create_run(exp_id).info.run_id
        registry.log_serving_folder(settings, run_id, folder)
        mc.set_terminated(run_id)
        local = Path(
            mlflow.artifacts.download_artifacts(
                artifact_uri=f"runs:/{run_id}/{registry.ONNX_FLAVOR_ARTIFACT}",
                dst_path=str(tmp_path),
                tracking_uri=settings.mlflow.uri,
            )
        )
    finally:
        mc.delete_experiment(exp_id)
    mlmodel = yaml.safe_load((local / "MLmodel").read_text())
    assert {"onnx", "python_function"} <= set(mlmodel["flavors"])
    assert mlmodel["metadata"]["labels"] == list(manifest.labels)
    # the tokenizer and manifest travel with the graph
    assert (local / "extra_files" / MANIFEST_FILE).is_file()
    assert ModelManifest.read(local / "extra_files") == manifest

    session = ort.InferenceSession(str(folder / manifest.model_file))
    feed = {i.name: np.ones((2, 8), dtype=np.int64) for i in session.get_inputs()}
    want = session.run(None, feed)[0]
    assert mlflow.onnx.load_model(str(local)).graph.node, "the flavor holds the graph"
    got = mlflow.pyfunc.load_model(str(local)).predict(feed)
    out = next(iter(got.values())) if isinstance(got, dict) else np.asarray(got)
    np.testing.assert_allclose(np.asarray(out), want, rtol=1e-5, atol=1e-6)
