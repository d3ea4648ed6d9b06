"""trainer.export: a tiny BERT exported to a serving folder, quantized, parity-checked."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from schemas.events import LABELS
from tests.helpers.tiny_model import build_tiny_checkpoint, smsa_rows, tiny_serving_folder
from trainer.errors import ExportError
from trainer.export import ExportReport, export_serving_folder
from ulasan.core.inference import ModelManifest, OnnxPredictor
from ulasan.core.text import FEATURE_VERSION, default_lexicon


@pytest.fixture(scope="module")
def serving(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_serving_folder(tmp_path_factory.getbasetemp())


@pytest.fixture(scope="module")
def random_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_checkpoint(tmp_path_factory.mktemp("random") / "ckpt")


def test_serving_folder_holds_every_file(serving: Path) -> None:
    names = {p.name for p in serving.iterdir()}
    required = {
        "model.onnx",
        "model_fp32.onnx",
        "tokenizer.json",
        "lexicon.json",
        "ulasan_model.json",
    }
    # the folder is shared per test process: the profile tests add profile.json beside the model
    assert required <= names
    assert names - required <= {"profile.json"}
    assert (serving / "model.onnx").stat().st_size < (serving / "model_fp32.onnx").stat().st_size


def test_manifest_records_contract_and_parity(serving: Path) -> None:
    manifest = ModelManifest.read(serving)
    assert manifest.model_name == "tiny-trained"
    assert manifest.labels == list(LABELS)
    assert manifest.max_length == 64
    assert manifest.lowercase is True
    assert manifest.feature_version == FEATURE_VERSION
    assert manifest.lexicon_version == str(default_lexicon().version)
    assert manifest.quantization == "dynamic-int8-avx512_vnni"
    assert {"input_ids", "attention_mask"} <= set(manifest.input_names)
    parity = manifest.parity
    assert parity.n_texts == 100
    assert parity.fp32_max_abs_logit_diff is not None and parity.fp32_max_abs_logit_diff < 1e-3
    assert parity.int8_label_agreement is not None and parity.int8_label_agreement >= 0.9
    raw = json.loads((serving / "ulasan_model.json").read_text())
    assert raw["parity"]["n_texts"] == 100 and "created_at" in raw


def test_lexicon_is_saved_beside_the_model(serving: Path) -> None:
    saved = json.loads((serving / "lexicon.json").read_text(encoding="utf-8"))
    assert saved  # the Lexicon's own format; it must at least be non-empty JSON


def _fp32_export(checkpoint: Path, out: Path, **options: Any) -> ExportReport:
    """An fp32-only export of ``checkpoint`` to ``out`` (named after the folder)."""
    return export_serving_folder(
        checkpoint,
        out,
        model_name=out.name,
        lexicon=default_lexicon(),
        parity_texts=["bagus sekali", "jelek"],
        quantize=False,
        **options,
    )


def test_fp32_only_export(random_checkpoint: Path, tmp_path: Path) -> None:
    report = _fp32_export(random_checkpoint, tmp_path / "fp32")
    manifest = report.manifest
    assert manifest.quantization is None and manifest.fp32_model_file is None
    assert not (report.folder / "model_fp32.onnx").exists()
    assert manifest.parity.int8_label_agreement is None
    assert manifest.parity.fp32_max_abs_logit_diff is not None
    assert report.as_dict()["fp32_model_bytes"] is None
    assert len(OnnxPredictor.from_folder(report.folder).predict(["oke"])) == 1
    assert manifest.domain_tags == []  # a model trained without domain tags


def test_the_manifest_lists_the_domain_tags_the_model_was_trained_with(
    random_checkpoint: Path, tmp_path: Path
) -> None:
    report = _fp32_export(
        random_checkpoint,
        tmp_path / "tagged",
        domain_tags=["prdect", "google_play", "prdect"],
        domain_offsets={"neutral": -0.5, "positive": 0.0},
    )
    assert report.manifest.domain_tags == ["google_play", "prdect"]
    assert report.manifest.domain_offsets == {"neutral": -0.5}  # a zero offset is no offset
    assert OnnxPredictor.from_folder(report.folder).domain_tags == ("google_play", "prdect")


def test_refuses_a_non_empty_folder(random_checkpoint: Path, tmp_path: Path) -> None:
    out = tmp_path / "busy"
    out.mkdir()
    (out / "something").write_text("x")
    with pytest.raises(ExportError, match="not empty"):
        export_serving_folder(
            random_checkpoint, out, model_name="x", lexicon=default_lexicon(), parity_texts=["a"]
        )
    assert (out / "something").exists()


def test_refuses_labels_in_another_order(random_checkpoint: Path, tmp_path: Path) -> None:

    ckpt = tmp_path / "reordered"
    shutil.copytree(random_checkpoint, ckpt)
    config = json.loads((ckpt / "config.json").read_text())
    config["id2label"] = {"0": "positive", "1": "neutral", "2": "negative"}
    (ckpt / "config.json").write_text(json.dumps(config))
    with pytest.raises(ExportError, match="labels"):
        export_serving_folder(
            ckpt, tmp_path / "out", model_name="x", lexicon=default_lexicon(), parity_texts=["a"]
        )
    assert not (tmp_path / "out").exists()


def test_refuses_a_checkpoint_without_fast_tokenizer(
    random_checkpoint: Path, tmp_path: Path
) -> None:

    ckpt = tmp_path / "slow"
    shutil.copytree(random_checkpoint, ckpt)
    (ckpt / "tokenizer.json").unlink()
    with pytest.raises(ExportError, match="tokenizer.json"):
        export_serving_folder(
            ckpt, tmp_path / "out", model_name="x", lexicon=default_lexicon(), parity_texts=["a"]
        )


def test_refuses_empty_parity_texts(random_checkpoint: Path, tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="parity_texts"):
        export_serving_folder(
            random_checkpoint,
            tmp_path / "out",
            model_name="x",
            lexicon=default_lexicon(),
            parity_texts=[],
        )


def test_parity_texts_come_from_shipped_data() -> None:
    rows = smsa_rows("valid", 5)
    assert len(rows) == 5 and all(label in LABELS for _, label in rows)
