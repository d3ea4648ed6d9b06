"""ulasan.core.inference: the ONNX predictor, dynamic padding, loading and resolution."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from schemas.events import LABELS
from tests.helpers.tiny_model import PROJECT_ROOT, smsa_rows, tiny_serving_folder
from ulasan.core.inference import (
    InvalidInput,
    ModelFolderError,
    ModelResolutionError,
    OnnxPredictor,
    Prediction,
    Predictor,
)
from ulasan.core.inference.runtime import pad_batch, softmax
from ulasan.core.registry import parse_models_uri, resolve_model
from ulasan.core.settings import Settings

TEXTS = [t for t, _ in smsa_rows("valid", 60)] + ["Bagus!!", "jelek 😡 http://x.id", "a"]


@pytest.fixture(scope="module")
def serving(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_serving_folder(tmp_path_factory.getbasetemp())


@pytest.fixture(scope="module")
def fp32(serving: Path) -> OnnxPredictor:
    return OnnxPredictor.from_folder(serving, model_file="model_fp32.onnx", batch_size=8)


def test_predictions_are_well_formed(serving: Path) -> None:
    predictor = OnnxPredictor.from_folder(serving, model_version="7", intra_op_threads=1)
    assert isinstance(predictor, Predictor)
    assert (predictor.model_name, predictor.model_version) == ("tiny-trained", "7")
    preds = predictor.predict(TEXTS)
    assert len(preds) == len(TEXTS)
    for p in preds:
        assert isinstance(p, Prediction)
        assert set(p.probabilities) == set(LABELS)
        assert sum(p.probabilities.values()) == pytest.approx(1.0, abs=1e-9)
        assert p.confidence == max(p.probabilities.values())
        assert p.probabilities[p.label] == p.confidence


def test_dynamic_padding_does_not_change_scores(fp32: OnnxPredictor) -> None:
    batched = fp32.logits(TEXTS)
    one_by_one = np.vstack([fp32.logits([t]) for t in TEXTS])
    np.testing.assert_allclose(batched, one_by_one, atol=1e-4)


def test_order_is_restored_after_length_sorting(fp32: OnnxPredictor) -> None:
    shuffled = list(reversed(TEXTS))
    forward = fp32.predict(TEXTS)
    backward = fp32.predict(shuffled)
    assert [p.label for p in forward] == [p.label for p in reversed(backward)]
    ids = fp32.encode(TEXTS)
    np.testing.assert_allclose(
        fp32.logits_from_ids(ids, sort=True), fp32.logits_from_ids(ids, sort=False), atol=1e-4
    )


def test_texts_are_cleaned_and_truncated(fp32: OnnxPredictor) -> None:
    long_text = "bagus " * 500
    (ids,) = fp32.encode([long_text])
    assert len(ids) == fp32.manifest.max_length
    assert fp32.encode(["BAGUS"]) == fp32.encode(["bagus"])


def test_model_name_override(serving: Path) -> None:
    predictor = OnnxPredictor.from_folder(serving, model_name="ulasan-sentiment")
    assert predictor.model_name == "ulasan-sentiment"


def test_empty_and_invalid_input(fp32: OnnxPredictor) -> None:
    assert fp32.predict([]) == []
    with pytest.raises(InvalidInput, match="not one string"):
        fp32.predict("bagus")
    with pytest.raises(InvalidInput, match="positions \\[1\\]"):
        fp32.predict(["bagus", None])  # type: ignore[list-item]


def test_pad_batch_and_softmax() -> None:
    feeds = pad_batch([[2, 5, 3], [2, 3]], pad_token_id=0)
    assert feeds["input_ids"].tolist() == [[2, 5, 3], [2, 3, 0]]
    assert feeds["attention_mask"].tolist() == [[1, 1, 1], [1, 1, 0]]
    assert feeds["token_type_ids"].shape == (2, 3)
    probs = softmax(np.array([[1000.0, 0.0, -1000.0]]))
    assert probs.sum() == pytest.approx(1.0) and probs[0, 0] == pytest.approx(1.0)


def test_missing_files_are_named(serving: Path, tmp_path: Path) -> None:
    with pytest.raises(ModelFolderError, match="ulasan_model.json"):
        OnnxPredictor.from_folder(tmp_path)
    broken = tmp_path / "broken"
    shutil.copytree(serving, broken)
    (broken / "tokenizer.json").unlink()
    with pytest.raises(ModelFolderError, match="tokenizer.json"):
        OnnxPredictor.from_folder(broken)
    (broken / "ulasan_model.json").write_text("{not json")
    with pytest.raises(ModelFolderError, match="not a valid manifest"):
        OnnxPredictor.from_folder(broken)


def test_manifest_label_count_must_match_the_graph(serving: Path, tmp_path: Path) -> None:
    folder = tmp_path / "labels"
    shutil.copytree(serving, folder)
    manifest = json.loads((folder / "ulasan_model.json").read_text())
    manifest["labels"] = ["negative", "positive"]
    (folder / "ulasan_model.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelFolderError, match="3 outputs"):
        OnnxPredictor.from_folder(folder)


def test_resolve_local_folder(serving: Path, tmp_path: Path) -> None:
    settings = Settings(state_dir=tmp_path)
    assert resolve_model(serving, settings) == (serving, "tiny-trained", "local")
    assert resolve_model(str(serving), settings)[0] == serving
    with pytest.raises(ModelResolutionError, match="not a folder"):
        resolve_model(tmp_path / "nope", settings)


def test_parse_models_uri() -> None:
    assert parse_models_uri("models:/ulasan-sentiment@champion").alias == "champion"  # type: ignore[union-attr]
    ref = parse_models_uri("models:/ulasan-sentiment/12")
    assert ref is not None and (ref.name, ref.version, ref.alias) == (
        "ulasan-sentiment",
        "12",
        None,
    )
    assert parse_models_uri("/some/folder") is None
    for bad in ("models:/", "models:/x/latest", "models:/x@a@b", "models:/x/1/2"):
        with pytest.raises(ModelResolutionError, match="models:/NAME@ALIAS"):
            parse_models_uri(bad)


def test_unreachable_registry_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
    settings = Settings(state_dir=tmp_path, mlflow={"port": 9, "host": "127.0.0.1"})
    with pytest.raises(ModelResolutionError, match="Is MLflow up"):
        resolve_model("models:/ulasan-sentiment@champion", settings)


def test_serving_needs_no_torch(serving: Path) -> None:
    code = (
        "import sys\n"
        "from ulasan.core.inference import OnnxPredictor\n"
        f"p = OnnxPredictor.from_folder({str(serving)!r})\n"
        "preds = p.predict(['barangnya bagus sekali', 'pelayanan buruk'])\n"
        "assert len(preds) == 2, preds\n"
        "heavy = sorted(m for m in ('torch', 'transformers', 'optimum') if m in sys.modules)\n"
        "assert not heavy, heavy\n"
        "print('ok', preds[0].label)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("ok ")
