"""A tiny ONNX serving folder (random weights) for stream tests, built once per test process."""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from pathlib import Path

from tests.helpers.tiny_model import build_tiny_checkpoint, smsa_rows
from trainer.export import export_serving_folder
from ulasan.core.text import default_lexicon

MODEL_NAME = "tiny-stream-test"


@functools.cache
def tiny_serving_folder() -> Path:
    """Build (once per process) a serving folder: tiny BERT checkpoint -> ONNX int8 export.

    Random weights are enough for pipeline mechanics; the folder is the real export format,
    loaded by the real ``OnnxPredictor``.
    """
    root = Path(tempfile.mkdtemp(prefix="ulasan-tiny-serving-"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    checkpoint = build_tiny_checkpoint(root / "checkpoint")
    report = export_serving_folder(
        checkpoint,
        root / "serving",
        model_name=MODEL_NAME,
        lexicon=default_lexicon(),
        parity_texts=[t for t, _ in smsa_rows("valid", limit=32)],
    )
    return report.folder


def copy_serving_folder(dest: Path) -> Path:
    """A copy of the tiny serving folder at ``dest`` (for subprocesses that outlive a test)."""
    shutil.copytree(tiny_serving_folder(), dest)
    return dest
