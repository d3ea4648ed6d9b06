"""Labelled examples for training: the shipped corpora, user files and PostgreSQL.

Loaders read and normalise (labels lower-cased, ratings parsed) but never judge: a row with a
bad label or rating comes back as it is, and :func:`trainer.validation.validate` rejects it
with a reason. Files that cannot be read as a whole (missing, not UTF-8, missing columns,
malformed JSON) raise :class:`~trainer.errors.DataError`.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import psycopg

from schemas.events import LABELS
from trainer.errors import DataError
from ulasan.core.settings import project_paths

#: Where the shipped corpora live (smsa/, nusax_id/, prdect_id/); every loader takes ``root``.
#: ULASAN_DATA_DIR (default the checkout's data/)
DATA_ROOT = project_paths().data
SPLITS = ("train", "valid", "test")
#: ``Example.meta`` key holding a rating cell that is not a whole number (validation rejects it).
RATING_RAW = "rating_raw"
#: ``Example.meta`` key saying where a label came from: label, rating, human, rating_feedback.
LABEL_SOURCE = "label_source"

FileFormat = Literal["csv", "tsv", "jsonl"]
_SUFFIX_FORMATS: dict[str, FileFormat] = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
}
Column = str | int
_NOT_WORD_RE = re.compile(r"[\W_]+")


@dataclass(frozen=True)
class Example:
    """One text with its label (``negative|neutral|positive``, or None when unlabelled).

    ``rating`` is a 1-5 star rating where the source has one; ``meta`` carries what a source
    has beyond that (PRDECT-ID's original ``sentiment`` and ``emotion``, the label's source).
    """

    text: str
    label: str | None
    rating: int | None = None
    source: str = ""
    id: str | None = None
    meta: Mapping[str, str] = field(default_factory=dict, hash=False)


def rating_label(rating: int | None) -> str | None:
    """The label a star rating implies: 4-5 positive, 3 neutral, 1-2 negative; else None."""
    if rating is None or not 1 <= rating <= 5:
        return None
    return "positive" if rating >= 4 else "neutral" if rating == 3 else "negative"


def normalise_label(value: object) -> str | None:
    """A label cell lower-cased and stripped; None for an empty or missing cell.

    Unknown labels are kept as they are (validation rejects them with a reason).
    """
    if value is None:
        return None
    label = str(value).strip().lower()
    return label or None


def parse_rating(value: object) -> tuple[int | None, str | None]:
    """``(rating, raw)``: a whole-number rating (``"4"``, ``"4.0"``, ``4``), or None and the raw
    cell when it is not one. Empty cells are ``(None, None)``. Range is validation's job."""
    if value is None or isinstance(value, bool):
        return None, None if value is None else str(value)
    if isinstance(value, int):
        return value, None
    text = str(value).strip()
    if not text:
        return None, None
    try:
        number = float(text)
    except ValueError:
        return None, text
    if not number.is_integer():
        return None, text
    return int(number), None


def load_smsa(split: str, *, root: str | Path | None = None) -> list[Example]:
    """SmSA (IndoNLU) ``train``, ``valid`` or ``test``: TSV ``text<TAB>label``, no header.

    ``test`` is for evaluation only. Ids are ``smsa/<split>/<line>``.
    """
    path = _split_path(root, "smsa", split, ".tsv")
    examples = []
    for line_no, row in _read_rows(path, delimiter="\t", header=False):
        if len(row) != 2:
            raise DataError(f"{path}:{line_no}: expected text<TAB>label, got {len(row)} fields")
        examples.append(
            Example(
                text=row[0],
                label=normalise_label(row[1]),
                source="smsa",
                id=f"smsa/{split}/{line_no}",
                meta={LABEL_SOURCE: "label"},
            )
        )
    return examples


def load_nusax(
    split: str, *, exclude_texts: Iterable[str] | None = None, root: str | Path | None = None
) -> list[Example]:
    """NusaX sentiment (Indonesian) ``train``, ``valid`` or ``test``: CSV ``id,text,label``.

    NusaX was built from SmSA: pass ``exclude_texts`` (e.g. the SmSA train texts) to drop
    rows whose text occurs there. Texts are compared after :func:`comparable` (case, spaces
    and punctuation folded), so the cased NusaX copy of a tokenized SmSA text is caught too.
    """
    path = _split_path(root, "nusax_id", split, ".csv")
    excluded = {comparable(t) for t in exclude_texts} if exclude_texts is not None else set()
    examples = []
    for line_no, row in _read_dicts(path, ("id", "text", "label"), delimiter=","):
        text = row["text"] or ""
        if excluded and comparable(text) in excluded:
            continue
        examples.append(
            Example(
                text=text,
                label=normalise_label(row["label"]),
                source="nusax",
                id=f"nusax/{split}/{row['id'] or line_no}",
                meta={LABEL_SOURCE: "label"},
            )
        )
    return examples


def load_prdect(*, root: str | Path | None = None) -> list[Example]:
    """PRDECT-ID (Tokopedia reviews): labels from the 1-5 Customer Rating (4-5 positive, 3
    neutral, 1-2 negative), as the Google Play stream labels reviews.

    The file's own binary ``Sentiment`` (Positive/Negative; empty in 2 rows) and ``Emotion``
    are kept in ``meta["sentiment"]`` / ``meta["emotion"]``, the category in
    ``meta["category"]``. Ids are ``prdect/<line>``.
    """
    path = Path(root or DATA_ROOT) / "prdect_id" / "prdect_id.csv"
    columns = ("Category", "Customer Rating", "Customer Review", "Sentiment", "Emotion")
    examples = []
    for line_no, row in _read_dicts(path, columns, delimiter=";"):
        rating, raw = parse_rating(row["Customer Rating"])
        meta = {
            "sentiment": (row["Sentiment"] or "").strip().lower(),
            "emotion": (row["Emotion"] or "").strip().lower(),
            "category": (row["Category"] or "").strip(),
            LABEL_SOURCE: "rating",
        }
        if raw is not None:
            meta[RATING_RAW] = raw
        examples.append(
            Example(
                text=row["Customer Review"] or "",
                label=rating_label(rating),
                rating=rating,
                source="prdect",
                id=f"prdect/{line_no}",
                meta=meta,
            )
        )
    return examples


def load_file(
    path: str | Path,
    *,
    format: FileFormat | None = None,
    text_col: Column = "text",
    label_col: Column | None = None,
    rating_col: Column | None = None,
    id_col: Column | None = None,
    delimiter: str | None = None,
    source: str | None = None,
) -> list[Example]:
    """Examples from a user file: ``csv`` (``,``), ``tsv`` or ``jsonl``, inferred from the suffix.

    Columns are header names, or 0-based indices for a csv/tsv file without a header (all
    columns given must then be indices). Labels come from ``label_col``; where that is empty
    or not given, from ``rating_col`` (4-5 positive, 3 neutral, 1-2 negative); an explicit
    label wins over the rating. Without either, examples are unlabelled (``label=None``).
    A relative path resolves against :data:`DATA_ROOT` when it does not exist as given.
    """
    path = resolve_data_path(path)
    fmt = format or _SUFFIX_FORMATS.get(path.suffix.lower())
    if fmt not in ("csv", "tsv", "jsonl"):
        raise DataError(
            f"cannot tell the format of {path}: name it with format='csv'|'tsv'|'jsonl'"
        )
    columns = {"text": text_col, "label": label_col, "rating": rating_col, "id": id_col}
    wanted = {k: v for k, v in columns.items() if v is not None}
    source = source or path.stem
    if fmt == "jsonl":
        if any(isinstance(c, int) for c in wanted.values()):
            raise DataError(f"{path}: jsonl columns are keys (names), not indices")
        rows: Iterator[tuple[int, Mapping[Column, Any]]] = _read_jsonl(path, wanted.values())
    else:
        sep = delimiter or ("\t" if fmt == "tsv" else ",")
        by_index = [isinstance(c, int) for c in wanted.values()]
        if any(by_index) and not all(by_index):
            raise DataError(f"{path}: give every column as a name or every column as an index")
        if all(by_index):
            rows = _indexed(path, [int(c) for c in wanted.values()], sep)
        else:
            rows = _read_dicts(path, [str(c) for c in wanted.values()], delimiter=sep)

    return [
        _example(row, line_no, source, text_col, label_col, rating_col, id_col)
        for line_no, row in rows
    ]


def _example(
    row: Mapping[Column, Any],
    line_no: int,
    source: str,
    text_col: Column,
    label_col: Column | None,
    rating_col: Column | None,
    id_col: Column | None,
) -> Example:
    """One row of a user file as an Example: an explicit label wins over the rating's."""
    text = row[text_col]
    label = normalise_label(row[label_col]) if label_col is not None else None
    meta: dict[str, str] = {}
    rating = None
    if rating_col is not None:
        rating, raw = parse_rating(row[rating_col])
        if raw is not None:
            meta[RATING_RAW] = raw
    if label is not None:
        meta[LABEL_SOURCE] = "label"
    elif rating is not None:
        label = rating_label(rating)
        meta[LABEL_SOURCE] = "rating"
    row_id = row[id_col] if id_col is not None else None
    return Example(
        text="" if text is None else str(text),
        label=label,
        rating=rating,
        source=source,
        id=str(row_id) if row_id not in (None, "") else f"{source}/{line_no}",
        meta=meta,
    )


_POSTGRES_QUERY = """
SELECT r.review_id, r.source, r.text, r.rating, fb.label, fb.source, fb.time, r.ingested_at
FROM reviews AS r
LEFT JOIN LATERAL (
    SELECT f.label, f.source, f.time
    FROM feedback AS f
    WHERE f.review_id = r.review_id
    ORDER BY (f.source = 'human') DESC, f.time DESC, f.feedback_id DESC
    LIMIT 1
) AS fb ON TRUE
WHERE (fb.label IS NOT NULL OR r.rating IS NOT NULL)
  AND (%(since)s::timestamptz IS NULL OR COALESCE(fb.time, r.ingested_at) >= %(since)s)
ORDER BY COALESCE(fb.time, r.ingested_at), r.review_id
"""


def load_postgres(
    dsn: str, *, since: datetime | None = None, connect_timeout: float = 10.0
) -> list[Example]:
    """Labelled reviews from PostgreSQL (tables ``reviews`` and ``feedback``).

    A review's label, by priority: the latest ``human`` feedback, else the latest ``rating``
    feedback, else the label its own rating implies; reviews with none are skipped (they
    are unlabelled, not bad). ``meta["label_source"]`` says which (human, rating_feedback,
    rating). ``since`` (timezone-aware) keeps reviews whose label arrived at or after it:
    the chosen feedback's time, or the review's ``ingested_at`` for a rating label.
    """
    if since is not None and since.tzinfo is None:
        raise DataError("since must be timezone-aware (e.g. datetime.now(UTC))")
    try:
        with psycopg.connect(dsn, connect_timeout=int(max(1, connect_timeout))) as conn:
            rows = conn.execute(_POSTGRES_QUERY, {"since": since}).fetchall()
    except psycopg.Error as exc:
        raise DataError(
            f"cannot read labelled reviews from PostgreSQL: {exc}".rstrip()
            + " (is the stack up? `ulasan stack up`, then `ulasan stack migrate`)"
        ) from exc
    examples = []
    for review_id, source, text, rating, fb_label, fb_source, _, _ in rows:
        if fb_label is not None:
            label = normalise_label(fb_label)
            label_source = "human" if fb_source == "human" else "rating_feedback"
        else:
            label = rating_label(rating)
            label_source = "rating"
        examples.append(
            Example(
                text=text or "",
                label=label,
                rating=rating,
                source=source or "postgres",
                id=review_id,
                meta={LABEL_SOURCE: label_source},
            )
        )
    return examples


def comparable(text: str) -> str:
    """A text folded for overlap checks: case, spaces and punctuation removed.

    SmSA is tokenized ("makanan nya , enak") where NusaX is not ("makanannya, enak"): only
    this folding finds the 217 NusaX test texts that occur in SmSA train.
    """
    return _NOT_WORD_RE.sub("", text.casefold())


def _split_path(root: str | Path | None, folder: str, split: str, suffix: str) -> Path:
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}: choose from {', '.join(SPLITS)}")
    return Path(root or DATA_ROOT) / folder / f"{split}{suffix}"


def resolve_data_path(path: str | Path) -> Path:
    """``path`` as given, or under :data:`DATA_ROOT` when it is relative, does not exist as
    given and does there."""
    path = Path(path)
    if not path.exists() and not path.is_absolute() and (DATA_ROOT / path).exists():
        return DATA_ROOT / path
    return path


def _read_text(path: Path) -> str:
    try:
        with path.open(encoding="utf-8", newline="") as fh:
            return fh.read()
    except FileNotFoundError as exc:
        raise DataError(f"{path} does not exist") from exc
    except UnicodeDecodeError as exc:
        raise DataError(f"{path} is not UTF-8 text: {exc}") from exc
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc}") from exc


def _read_rows(path: Path, *, delimiter: str, header: bool) -> Iterator[tuple[int, list[str]]]:
    """(line number, fields) of a delimited file; tab files are read without quoting."""
    # Only \n and \r end a line: str.splitlines() would also split at U+2028 and friends,
    # which may sit inside a review.
    lines = io.StringIO(_read_text(path), newline="")
    if delimiter == "\t":
        reader = csv.reader(lines, delimiter="\t", quoting=csv.QUOTE_NONE, strict=True)
    else:
        reader = csv.reader(lines, delimiter=delimiter, strict=True)
    try:
        for row in reader:
            if reader.line_num == 1 and header:
                continue
            if not row:
                continue
            yield reader.line_num, row
    except csv.Error as exc:
        raise DataError(f"{path}:{reader.line_num}: malformed {delimiter!r} row: {exc}") from exc


def _read_dicts(
    path: Path, columns: Iterable[str], *, delimiter: str
) -> Iterator[tuple[int, dict[Column, str | None]]]:
    """(line number, {column: cell}) of a delimited file with a header; a short row gives None."""
    rows = _read_rows(path, delimiter=delimiter, header=False)
    first = next(rows, None)
    if first is None:
        raise DataError(f"{path} is empty: expected a header row")
    header = [h.strip().lstrip("\ufeff") for h in first[1]]
    missing = [c for c in columns if c not in header]
    if missing:
        raise DataError(
            f"{path}: missing column(s) {', '.join(map(repr, missing))}; the header has "
            f"{', '.join(map(repr, header))}"
        )
    positions = {c: header.index(c) for c in columns}
    for line_no, row in rows:
        yield line_no, {c: row[i] if i < len(row) else None for c, i in positions.items()}


def _indexed(
    path: Path, indices: list[int], delimiter: str
) -> Iterator[tuple[int, dict[Column, str | None]]]:
    for line_no, row in _read_rows(path, delimiter=delimiter, header=False):
        yield line_no, {i: row[i] if 0 <= i < len(row) else None for i in indices}


def _read_jsonl(path: Path, keys: Iterable[Column]) -> Iterator[tuple[int, Mapping[Column, Any]]]:
    keys = list(keys)
    seen: set[Column] = set()
    n = 0
    for line_no, line in enumerate(_read_text(path).split("\n"), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}:{line_no}: not a JSON object: {exc}") from exc
        if not isinstance(obj, dict):
            raise DataError(f"{path}:{line_no}: expected a JSON object, got {type(obj).__name__}")
        seen.update(k for k in keys if k in obj)
        n += 1
        yield line_no, {k: obj.get(str(k)) for k in keys}
    if not n:
        raise DataError(f"{path} holds no JSON lines")
    missing = [k for k in keys if k not in seen]
    if missing:
        raise DataError(f"{path}: no line has the key(s) {', '.join(map(repr, missing))}")


def label_counts(examples: Iterable[Example]) -> dict[str, int]:
    """How many examples carry each label of :data:`schemas.events.LABELS` (others ignored)."""
    counts = dict.fromkeys(LABELS, 0)
    for example in examples:
        if example.label in counts:
            counts[example.label] += 1
    return counts
