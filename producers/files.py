"""Reading review and label files (CSV, TSV, JSON Lines) record by record, with line numbers.

A record is one data row: its first line number in the file (1-based, the header is line 1),
its fields by column name, or the reason it cannot be read. Bad rows never stop the reading;
a file that cannot be read at all raises :class:`InputFileError`.
"""

from __future__ import annotations

import csv
import hashlib
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from producers.errors import InputFileError

Format = Literal["csv", "tsv", "jsonl"]
FORMATS: tuple[str, ...] = ("csv", "tsv", "jsonl")
Quoting = Literal[0, 1, 2, 3]  # the csv module's QUOTE_* constants
_EXTENSIONS: dict[str, Format] = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
}

# a review text may be long; the csv module's default field limit is 128 KiB
csv.field_size_limit(min(sys.maxsize, 2**31 - 1))


@dataclass(frozen=True)
class Record:
    """One data row: ``line`` where it starts, ``fields`` by column, or ``error``."""

    line: int
    fields: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


@dataclass(frozen=True)
class BadRow:
    """A row that was skipped, with its line number and why (shown to the user)."""

    line: int
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}"


def check_file(path: Path) -> None:
    """Raise :class:`InputFileError` unless ``path`` is a readable file."""
    if not path.is_file():
        raise InputFileError(f"{path} does not exist or is not a file")


def detect_format(path: Path, fmt: str | None) -> Format:
    """``fmt`` when given, else the format its extension names; raise when neither works."""
    if fmt is not None:
        if fmt not in FORMATS:
            raise InputFileError(f"unknown format {fmt!r}: use one of {', '.join(FORMATS)}")
        return fmt  # type: ignore[return-value]
    try:
        return _EXTENSIONS[path.suffix.lower()]
    except KeyError:
        raise InputFileError(
            f"cannot tell the format of {path.name} from its extension: pass --format "
            f"({', '.join(FORMATS)})"
        ) from None


def file_sha256(path: Path) -> str:
    """Hex sha256 of the file's bytes (the identity of a replayed file)."""
    digest = hashlib.sha256()
    try:
        with path.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
    except OSError as exc:
        raise InputFileError(f"cannot read {path}: {exc.strerror or exc}") from exc
    return digest.hexdigest()


def count_lines(path: Path) -> int:
    """Physical lines in the file (a progress bar's total)."""
    with path.open("rb") as fh:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: fh.read(1 << 20), b""))


def _has_bad_utf8(value: str) -> bool:
    # undecodable bytes arrive as lone surrogates (errors="surrogateescape")
    return any("\udc80" <= ch <= "\udcff" for ch in value)


def read_records(
    path: Path,
    fmt: Format,
    *,
    sep: str | None = None,
    header: bool = True,
) -> Iterator[Record]:
    """Yield every data row of ``path``; rows that cannot be read come with ``error`` set.

    CSV/TSV: the first row names the columns (``header=False``: columns are "0", "1", ...);
    ``sep`` overrides the delimiter (CSV ",", TSV tab). TSV is read without quoting, as TSV
    files are written. JSON Lines: one object per line; blank lines are not records.
    """
    if not path.is_file():
        raise InputFileError(f"{path} does not exist or is not a file")
    try:
        fh = path.open(encoding="utf-8-sig", errors="surrogateescape", newline="")
    except OSError as exc:
        raise InputFileError(f"cannot open {path}: {exc.strerror or exc}") from exc
    with fh:
        if fmt == "jsonl":
            yield from _jsonl_records(fh)
        else:
            delimiter = sep if sep is not None else ("\t" if fmt == "tsv" else ",")
            if len(delimiter) != 1:
                raise InputFileError(f"the separator must be one character, got {delimiter!r}")
            quoting: Quoting = csv.QUOTE_NONE if fmt == "tsv" else csv.QUOTE_MINIMAL
            yield from _delimited_records(path, fh, delimiter, quoting, header)


def _delimited_records(
    path: Path, fh: Any, delimiter: str, quoting: Quoting, header: bool
) -> Iterator[Record]:
    reader = csv.reader(fh, delimiter=delimiter, quoting=quoting, strict=False)
    columns: list[str] | None = None
    if header:
        try:
            columns = [c.strip() for c in next(reader)]
        except StopIteration:
            raise InputFileError(f"{path.name} is empty: expected a header row") from None
        except csv.Error as exc:
            raise InputFileError(f"{path.name}: the header row cannot be read: {exc}") from exc
        if len(set(columns)) != len(columns):
            raise InputFileError(f"{path.name}: the header repeats a column name: {columns}")
    while True:
        line = reader.line_num + 1
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield Record(line, error=f"unreadable row: {exc}")
            continue
        if not row:  # an empty line is not a record
            continue
        if any(_has_bad_utf8(v) for v in row):
            yield Record(line, error="the row is not valid UTF-8")
            continue
        if columns is None:
            yield Record(line, {str(i): v for i, v in enumerate(row)})
        elif len(row) != len(columns):
            yield Record(
                line, error=f"expected {len(columns)} fields, found {len(row)} (separator?)"
            )
        else:
            yield Record(line, dict(zip(columns, row, strict=True)))


def _jsonl_records(fh: Any) -> Iterator[Record]:
    for line, raw in enumerate(fh, start=1):
        if not raw.strip():
            continue
        if _has_bad_utf8(raw):
            yield Record(line, error="the line is not valid UTF-8")
            continue
        try:
            obj = json.loads(raw)
        except json.JSONDecodeError as exc:
            yield Record(line, error=f"invalid JSON: {exc.msg} at column {exc.colno}")
            continue
        if not isinstance(obj, dict):
            yield Record(line, error=f"expected a JSON object, found {type(obj).__name__}")
            continue
        yield Record(line, {str(k): v for k, v in obj.items()})


def read_header(path: Path, fmt: Format, *, sep: str | None = None) -> list[str]:
    """The column names of a CSV/TSV file's first row."""
    delimiter = sep if sep is not None else ("\t" if fmt == "tsv" else ",")
    quoting: Quoting = csv.QUOTE_NONE if fmt == "tsv" else csv.QUOTE_MINIMAL
    try:
        with path.open(encoding="utf-8-sig", errors="surrogateescape", newline="") as fh:
            return [c.strip() for c in next(csv.reader(fh, delimiter=delimiter, quoting=quoting))]
    except StopIteration:
        raise InputFileError(f"{path.name} is empty: expected a header row") from None
    except (OSError, csv.Error) as exc:
        raise InputFileError(f"{path.name}: the header row cannot be read: {exc}") from exc


def require_columns(
    path: Path,
    fmt: Format,
    columns: dict[str, str | None],
    *,
    sep: str | None = None,
    header: bool = True,
) -> None:
    """Raise :class:`InputFileError` when a CSV/TSV header lacks a column an option names.

    ``columns`` maps an option (``--text-col``) to the column it names (None: unused). JSON
    Lines has no header (a missing key is a bad row there); neither does ``header=False``.
    """
    if fmt == "jsonl" or not header:
        return
    names = read_header(path, fmt, sep=sep)
    missing = {opt: col for opt, col in columns.items() if col is not None and col not in names}
    if missing:
        named = ", ".join(f"{opt} {col!r}" for opt, col in missing.items())
        raise InputFileError(
            f"{path.name} has no column {named}; its columns are: {', '.join(names)}"
        )
