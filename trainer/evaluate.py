"""Score a served model (registry URI or serving folder) on a labelled file: ``ulasan evaluate``.

Evaluation runs the serving runtime itself (ONNX, int8, the same cleaning), so the numbers are
those of the model as it will serve, not of its PyTorch checkpoint.
"""

from __future__ import annotations

import csv
import json
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from schemas.events import LABELS
from trainer.errors import EvaluationError
from trainer.metrics import classification_report
from ulasan.core.inference import OnnxPredictor
from ulasan.core.registry import resolve_model

if TYPE_CHECKING:
    from ulasan.core.inference import Predictor
    from ulasan.core.settings import Settings

FileFormat = Literal["tsv", "csv", "jsonl"]
_SUFFIX_FORMATS: dict[str, FileFormat] = {
    ".tsv": "tsv",
    ".txt": "tsv",
    ".csv": "csv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
}
Example = tuple[str, str]


def detect_format(path: Path) -> FileFormat:
    """The format named by the file's suffix; :class:`EvaluationError` when it names none."""
    fmt = _SUFFIX_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise EvaluationError(
            f"cannot tell the format of {path} from its suffix: pass --format tsv|csv|jsonl"
        )
    return fmt


def read_examples(
    path: str | Path,
    *,
    fmt: FileFormat | None = None,
    text_col: str | int | None = None,
    label_col: str | int | None = None,
    header: bool | None = None,
    delimiter: str | None = None,
) -> list[Example]:
    """``(text, label)`` pairs of a labelled file; labels lower-cased and checked against LABELS.

    - ``tsv``: no header by default (SmSA style); text column 0, label column 1.
    - ``csv``: a header by default; columns ``text`` and ``label``; ``,`` or ``;`` (sniffed).
    - ``jsonl``: one object per line; keys ``text`` and ``label``.

    Columns are names (with a header) or 0-based indices (digits). Every row must have a
    non-blank text and a known label: a bad row raises :class:`EvaluationError` naming the
    file and line, so nothing is dropped silently.
    """
    path = Path(path)
    if not path.is_file():
        raise EvaluationError(f"{path} does not exist")
    fmt = fmt or detect_format(path)
    if fmt == "jsonl":
        rows = _read_jsonl(path, text_col or "text", label_col or "label")
    elif fmt in ("tsv", "csv"):
        rows = _read_delimited(path, fmt, text_col, label_col, header, delimiter)
    else:
        raise EvaluationError(f"unknown format {fmt!r}: use tsv, csv or jsonl")
    if not rows:
        raise EvaluationError(f"{path} holds no examples")
    return rows


def _read_jsonl(path: Path, text_key: str | int, label_key: str | int) -> list[Example]:
    out = []
    with path.open(encoding="utf-8") as fh:
        for line_no, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise EvaluationError(f"{path}:{line_no}: not JSON ({exc.msg})") from exc
            if not isinstance(obj, dict):
                raise EvaluationError(f"{path}:{line_no}: expected a JSON object")
            missing = [k for k in (str(text_key), str(label_key)) if k not in obj]
            if missing:
                raise EvaluationError(f"{path}:{line_no}: keys {missing} missing")
            out.append(_example(path, line_no, obj[str(text_key)], obj[str(label_key)]))
    return out


def _read_delimited(
    path: Path,
    fmt: FileFormat,
    text_col: str | int | None,
    label_col: str | int | None,
    header: bool | None,
    delimiter: str | None,
) -> list[Example]:
    named = any(isinstance(c, str) and not c.isdigit() for c in (text_col, label_col) if c)
    if header is None:
        header = fmt == "csv" or named
    if named and not header:
        raise EvaluationError("column names need a header row: pass column indices instead")
    with path.open(encoding="utf-8", newline="") as fh:
        if delimiter is None:
            delimiter = "\t" if fmt == "tsv" else _sniff_delimiter(fh.readline())
            fh.seek(0)
        # TSV corpora such as SmSA use bare quotes inside texts: no quoting for TSV
        if fmt == "tsv":
            reader = csv.reader(fh, delimiter=delimiter, quoting=csv.QUOTE_NONE)
        else:
            reader = csv.reader(fh, delimiter=delimiter, quoting=csv.QUOTE_MINIMAL)
        columns: list[str] = []
        if header:
            columns = [c.strip() for c in next(reader, [])]
        t_idx = _column(path, columns, text_col, default_name="text", default_index=0)
        l_idx = _column(path, columns, label_col, default_name="label", default_index=1)
        out = []
        first = 2 if header else 1
        for line_no, row in enumerate(reader, start=first):
            if not row or (len(row) == 1 and not row[0].strip()):
                continue
            if max(t_idx, l_idx) >= len(row):
                raise EvaluationError(
                    f"{path}:{line_no}: {len(row)} columns, need columns {t_idx} and {l_idx} "
                    f"(delimiter {delimiter!r}; set --format, --text-col, --label-col)"
                )
            out.append(_example(path, line_no, row[t_idx], row[l_idx]))
    return out


def _sniff_delimiter(first_line: str) -> str:
    return ";" if first_line.count(";") > first_line.count(",") else ","


def _column(
    path: Path, columns: list[str], col: str | int | None, *, default_name: str, default_index: int
) -> int:
    if col is None:
        if not columns:
            return default_index
        col = default_name
    if isinstance(col, int) or col.isdigit():
        return int(col)
    lowered = [c.lower() for c in columns]
    if col.lower() not in lowered:
        raise EvaluationError(f"{path}: no column {col!r} in the header {columns}")
    return lowered.index(col.lower())


def _example(path: Path, line_no: int, text: Any, label: Any) -> Example:
    if not isinstance(text, str) or not text.strip():
        raise EvaluationError(f"{path}:{line_no}: the text is empty or not a string")
    norm = str(label).strip().lower()
    if norm not in LABELS:
        raise EvaluationError(f"{path}:{line_no}: label {label!r} is not one of {list(LABELS)}")
    return text, norm


def evaluate_predictor(
    predictor: Predictor,
    examples: Sequence[Example],
    *,
    batch_size: int = 256,
    sources: Sequence[str | None] | None = None,
) -> dict[str, Any]:
    """Score ``predictor`` on ``examples``: :func:`trainer.metrics.classification_report`
    (``n``, ``accuracy``, ``macro_f1``, ``per_class``, ``confusion_matrix``, ``ece``) plus
    ``model_name``, ``model_version`` and ``texts_per_s``. ``sources`` (one per example) are
    the reviews' sources, as the worker would pass them: a model with domain tags reads them."""
    if not examples:
        raise EvaluationError("nothing to evaluate: no examples")
    if sources is not None and len(sources) != len(examples):
        raise EvaluationError(f"{len(examples)} examples but {len(sources)} sources")
    texts = [t for t, _ in examples]
    t0 = time.perf_counter()
    preds = []
    for start in range(0, len(texts), batch_size):
        chunk = slice(start, start + batch_size)
        preds.extend(
            predictor.predict(texts[chunk], sources=None if sources is None else sources[chunk])
        )
    seconds = time.perf_counter() - t0
    probs = np.array([[p.probabilities.get(lab, 0.0) for lab in LABELS] for p in preds])
    report = classification_report([y for _, y in examples], [p.label for p in preds], probs)
    report.update(
        model_name=predictor.model_name,
        model_version=predictor.model_version,
        texts_per_s=round(len(texts) / seconds, 1) if seconds > 0 else None,
    )
    return report


def evaluate_model(
    ref: str | Path,
    examples: Iterable[Example],
    settings: Settings,
    *,
    intra_op_threads: int | None = None,
    sources: Sequence[str | None] | None = None,
) -> dict[str, Any]:
    """Resolve ``ref`` (``models:/NAME@ALIAS``, ``models:/NAME/N`` or a folder) and score it;
    ``sources`` as in :func:`evaluate_predictor`."""
    folder, name, version = resolve_model(ref, settings)
    predictor = OnnxPredictor.from_folder(
        folder, model_version=version, intra_op_threads=intra_op_threads
    )
    report = evaluate_predictor(predictor, list(examples), sources=sources)
    report["model_name"] = name
    report["model_ref"] = str(ref)
    return report
