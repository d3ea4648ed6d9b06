"""The serving folder's layout and its manifest ``ulasan_model.json`` (export/serving contract)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ulasan.core.inference.errors import ModelFolderError

MANIFEST_FILE = "ulasan_model.json"
MODEL_FILE = "model.onnx"
MODEL_FP32_FILE = "model_fp32.onnx"
TOKENIZER_FILE = "tokenizer.json"
LEXICON_FILE = "lexicon.json"
PROFILE_FILE = "profile.json"
FORMAT_VERSION: Literal[1] = 1


class Parity(BaseModel):
    """How closely the exported graphs follow the PyTorch model on the parity texts."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    n_texts: int = Field(ge=0)
    fp32_max_abs_logit_diff: float | None = Field(
        None, ge=0, description="max |logit(fp32 ONNX) - logit(PyTorch)| over texts and classes"
    )
    int8_label_agreement: float | None = Field(
        None, ge=0, le=1, description="share of texts where int8 and PyTorch argmax labels agree"
    )
    int8_max_abs_prob_diff: float | None = Field(None, ge=0)


class ModelManifest(BaseModel):
    """``ulasan_model.json``: what a serving runtime needs besides the graph and the tokenizer."""

    model_config = ConfigDict(frozen=True, extra="forbid", protected_namespaces=())

    format_version: Literal[1] = 1
    model_name: str = Field(min_length=1)
    labels: list[str] = Field(min_length=2, description="output index -> label")
    max_length: int = Field(ge=2, description="tokens per text, [CLS] and [SEP] included")
    lowercase: bool = Field(description="clean() lower-cases before tokenizing")
    feature_version: str
    lexicon_version: str
    input_names: list[str] = Field(description="the ONNX graph's inputs, e.g. input_ids")
    pad_token_id: int = Field(ge=0)
    model_file: str = MODEL_FILE
    fp32_model_file: str | None = MODEL_FP32_FILE
    quantization: str | None = Field(None, description="e.g. dynamic-int8-avx512_vnni; None = fp32")
    parity: Parity
    source_checkpoint: str | None = None
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))

    def write(self, folder: Path) -> Path:
        path = Path(folder) / MANIFEST_FILE
        path.write_text(self.model_dump_json(indent=2) + "\n", encoding="utf-8")
        return path

    @classmethod
    def read(cls, folder: Path) -> ModelManifest:
        """Read and validate ``folder/ulasan_model.json``; :class:`ModelFolderError` if unusable."""
        path = Path(folder) / MANIFEST_FILE
        if not path.is_file():
            raise ModelFolderError(f"{path} is missing: is {folder} a ulasan serving folder?")
        try:
            return cls.model_validate(json.loads(path.read_text(encoding="utf-8")))
        except (ValueError, ValidationError) as exc:
            raise ModelFolderError(f"{path} is not a valid manifest: {exc}") from exc
