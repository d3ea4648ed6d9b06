"""The serving folder's layout and its manifest ``ulasan_model.json`` (export/serving contract)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ulasan.core.inference.errors import ModelFolderError

MANIFEST_FILE = "ulasan_model.json"
MODEL_FILE = "model.onnx"
MODEL_FP32_FILE = "model_fp32.onnx"
TOKENIZER_FILE = "tokenizer.json"
LEXICON_FILE = "lexicon.json"
PROFILE_FILE = "profile.json"
FORMAT_VERSION: Literal[1] = 1


def check_file_name(name: str) -> str:
    """``name`` if it is a relative path inside a folder (no ``..``, not absolute, no drive or
    backslash); raises ``ValueError`` saying why not."""
    posix, windows = PurePosixPath(name), PureWindowsPath(name)
    if not name or name.strip() != name:
        raise ValueError(f"{name!r} is not a file name")
    if "\\" in name or "\x00" in name:
        raise ValueError(f"{name!r} holds a backslash or a NUL: use a plain relative path")
    if posix.is_absolute() or windows.is_absolute() or windows.drive:
        raise ValueError(f"{name!r} is absolute: files must lie inside the serving folder")
    if ".." in posix.parts or name in (".", "./"):
        raise ValueError(f"{name!r} leaves the serving folder ('..'): name a file inside it")
    return name


def folder_file(folder: Path, name: str) -> Path:
    """``folder/name``, checked to lie inside ``folder`` once symlinks are resolved.

    Raises :class:`ModelFolderError` when ``name`` is absolute, climbs out with ``..`` or is
    (or passes through) a symlink that points outside the folder.
    """
    try:
        check_file_name(name)
    except ValueError as exc:
        raise ModelFolderError(f"{folder}: {exc}") from None
    root = Path(folder).resolve()
    path = (root / name).resolve()
    if not path.is_relative_to(root):
        raise ModelFolderError(
            f"{folder}/{name} resolves outside the serving folder (a symlink to {path}?): "
            "serving files must lie inside it"
        )
    return path


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
    domain_tags: list[str] = Field(
        default_factory=list,
        description="review sources the model was trained to read behind a tag of their name "
        "(ulasan.core.inference.domain): every runtime tags a review from one of them the same "
        "way; texts from other sources are scored as they are",
    )
    domain_offsets: dict[str, float] = Field(
        default_factory=dict,
        description="label -> logit offset added for texts from a tagged source only (the "
        "retrain's decision offsets, chosen on that domain's hold-out): the base domain's "
        "texts are scored without them",
    )

    @model_validator(mode="after")
    def _offsets_need_tags(self) -> ModelManifest:
        unknown = set(self.domain_offsets) - set(self.labels)
        if unknown:
            raise ValueError(f"domain_offsets names labels {sorted(unknown)} not in {self.labels}")
        if self.domain_offsets and not self.domain_tags:
            raise ValueError("domain_offsets without domain_tags: no text would get them")
        return self

    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))

    @field_validator("model_file", "fp32_model_file")
    @classmethod
    def _inside(cls, value: str | None) -> str | None:
        return None if value is None else check_file_name(value)

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
