"""The whole training chain on the local stack: ``ulasan train`` with the tiny config.

Data -> validation -> tokenizer -> MLM -> fine-tune -> ONNX export (int8, parity) -> evaluation
-> profile -> one MLflow run -> registered as candidate -> gated and promoted; the serving
folder then predicts without torch; a worse model (trained on inverted labels) is refused and
the champion stays. A private registered model name keeps the shared ``ulasan-sentiment`` out.
"""

from __future__ import annotations

import contextlib
import csv
import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from rich.console import Console

from tests.helpers.tiny_model import PROJECT_ROOT, smsa_rows
from trainer import registry
from trainer.config import load_config
from trainer.pipeline import EVAL_SET_NAME, run_training
from ulasan.core.settings import Settings

INVERT = {"positive": "negative", "negative": "positive", "neutral": "neutral"}


@pytest.fixture(name="train_settings")
def train_settings_fixture(settings: Settings, tmp_path: Path) -> Iterator[Settings]:
    name = f"test-ulasan-train-{uuid.uuid4().hex[:8]}"
    own = settings.model_copy(
        update={
            "state_dir": tmp_path / "state",
            "mlflow": settings.mlflow.model_copy(
                update={"registered_model": name, "experiment": "ulasan-tests"}
            ),
        }
    )
    yield own
    with contextlib.suppress(Exception):
        registry.client(own).delete_registered_model(name)


def _tiny(tmp_path: Path, **overrides: object):  # noqa: ANN202
    return load_config(PROJECT_ROOT / "configs" / "tiny.yaml").with_overrides(
        {
            "output_dir": tmp_path / "runs",
            "epochs": 3,
            "lr": 3e-3,
            "max_examples": 400,
            "gate.min_accuracy": 0.0,
            **overrides,
        }
    )


def test_train_register_promote_then_refuse_a_worse_model(
    train_settings: Settings, tmp_path: Path
) -> None:
    settings = train_settings
    console = Console(record=True, width=120)

    first = run_training(_tiny(tmp_path), settings, console=console, progress=False)

    # Everything landed in one MLflow run.
    mc = registry.client(settings)
    run = mc.get_run(first.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["model"] == "ulasan-mini"
    history = mc.get_metric_history(first.run_id, "valid_macro_f1")
    assert [m.step for m in history] == list(range(1, len(history) + 1))
    assert len(history) == 3
    artifacts = {f.path for f in mc.list_artifacts(first.run_id)}
    assert {"serving", "plots", "reports", "profile.json", "validation_report.json"} <= artifacts
    # the PyTorch checkpoint a retrain continues from, with what it was trained as
    checkpoint = {Path(f.path).name for f in mc.list_artifacts(first.run_id, "checkpoint")}
    assert {"config.json", "model.safetensors", "tokenizer.json", "ulasan_checkpoint.json"} <= (
        checkpoint
    )
    # the MLM encoder before fine-tuning, kept in the run folder to fine-tune again from
    pretrained = first.run_dir / "pretrained"
    mlm_config = json.loads((pretrained / "config.json").read_text(encoding="utf-8"))
    assert mlm_config["architectures"] == ["BertForMaskedLM"]
    record = json.loads((pretrained / "pretrain.json").read_text(encoding="utf-8"))
    assert record["steps"] == first.config.pretrain.steps and record["history"]
    assert (pretrained / "tokenizer.json").read_bytes() == (
        first.checkpoint_dir / "tokenizer.json"
    ).read_bytes()
    serving = {f.path for f in mc.list_artifacts(first.run_id, "serving")}
    assert {"serving/model.onnx", "serving/tokenizer.json", "serving/ulasan_model.json"} <= serving
    plots = {f.path for f in mc.list_artifacts(first.run_id, "plots")}
    assert f"plots/confusion_{EVAL_SET_NAME}.png" in plots

    # Registered as candidate and, with no champion yet, promoted.
    assert first.gate is not None and first.gate["promoted"], first.gate
    champion = registry.champion(settings)
    assert champion is not None and champion.version == first.model_version
    assert registry.get_version(settings, alias="candidate").version == first.model_version
    assert champion.scores is not None and champion.scores.dataset_name == EVAL_SET_NAME
    tags = champion.tags
    assert tags[registry.TAG_MODEL_NAME] == "ulasan-mini"
    assert tags[registry.TAG_DATASET_HASH]

    # The serving folder predicts without torch ever being imported.
    script = (
        "import sys, json\n"
        "from ulasan.core.inference import OnnxPredictor\n"
        f"p = OnnxPredictor.from_folder({str(first.serving_dir)!r})\n"
        "out = p.predict(['makanannya enak sekali', 'pelayanan buruk, kecewa'])\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
        "print(json.dumps([o.label for o in out]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert len(json.loads(done.stdout)) == 2

    # A model trained on inverted labels scores worse on the fixed set: refused.
    inverted = tmp_path / "inverted.tsv"
    with inverted.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, delimiter="\t")
        writer.writerow(["text", "label"])
        for text, label in smsa_rows("train", 400):
            writer.writerow([text, INVERT[label]])
    second = run_training(
        _tiny(tmp_path, data=f"file:{inverted}", pretrain_corpus="none"),
        settings,
        console=console,
        progress=False,
    )
    assert second.gate is not None and not second.gate["promoted"], second.gate
    assert "macro-F1" in second.gate["reason"]
    assert registry.champion(settings).version == first.model_version
    assert registry.get_version(settings, alias="candidate").version == second.model_version
    assert second.reports[EVAL_SET_NAME]["macro_f1"] < first.reports[EVAL_SET_NAME]["macro_f1"]
