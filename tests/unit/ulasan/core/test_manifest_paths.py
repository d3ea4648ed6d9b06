"""The manifest's file names stay inside the serving folder: no '..', no absolute path, no
symlink out (a manifest from the registry must not make a worker load any file it can read)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.helpers.tiny_serving import tiny_serving_folder
from ulasan.core.inference import ModelFolderError, OnnxPredictor
from ulasan.core.inference.manifest import MANIFEST_FILE, check_file_name, folder_file


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    dest = tmp_path / "serving"
    shutil.copytree(tiny_serving_folder(), dest)
    return dest


def set_manifest(folder: Path, **fields: object) -> None:
    manifest = json.loads((folder / MANIFEST_FILE).read_text())
    manifest.update(fields)
    (folder / MANIFEST_FILE).write_text(json.dumps(manifest))


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("../outside.onnx", "leaves the serving folder"),
        ("sub/../../outside.onnx", "leaves the serving folder"),
        ("/etc/passwd", "absolute"),
        ("C:/models/x.onnx", "absolute"),
        ("..\\outside.onnx", "backslash"),
        ("", "not a file name"),
    ],
)
def test_model_file_outside_the_folder_is_refused(folder: Path, name: str, words: str) -> None:
    # a loadable graph really is out there: without the check it would be served
    shutil.copy(folder / "model.onnx", folder.parent / "outside.onnx")
    set_manifest(folder, model_file=name)
    with pytest.raises(ModelFolderError, match=words):
        OnnxPredictor.from_folder(folder)


def test_fp32_file_outside_the_folder_is_refused(folder: Path) -> None:
    set_manifest(folder, fp32_model_file="../../model_fp32.onnx")
    with pytest.raises(ModelFolderError, match="leaves the serving folder"):
        OnnxPredictor.from_folder(folder)


def test_a_model_file_argument_is_confined_too(folder: Path) -> None:
    shutil.copy(folder / "model.onnx", folder.parent / "outside.onnx")
    with pytest.raises(ModelFolderError, match="leaves the serving folder"):
        OnnxPredictor.from_folder(folder, model_file="../outside.onnx")


@pytest.mark.parametrize("target", ["model.onnx", "tokenizer.json"])
def test_a_symlink_out_of_the_folder_is_refused(folder: Path, target: str) -> None:
    outside = folder.parent / f"elsewhere-{target}"
    shutil.move(folder / target, outside)
    (folder / target).symlink_to(outside)
    with pytest.raises(ModelFolderError, match="resolves outside the serving folder"):
        OnnxPredictor.from_folder(folder)


def test_files_and_symlinks_inside_the_folder_load(folder: Path) -> None:
    (folder / "graphs").mkdir()
    shutil.move(folder / "model.onnx", folder / "graphs" / "model.onnx")
    (folder / "model.onnx").symlink_to(folder / "graphs" / "model.onnx")
    assert OnnxPredictor.from_folder(folder).predict(["bagus"])
    set_manifest(folder, model_file="graphs/model.onnx")
    assert OnnxPredictor.from_folder(folder).predict(["bagus"])
    assert folder_file(folder, "graphs/model.onnx") == (folder / "graphs/model.onnx").resolve()
    assert check_file_name("model.onnx") == "model.onnx"
