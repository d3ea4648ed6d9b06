"""Reading a batch of reviews from an uploaded or pasted CSV (pure), and the events a large
batch is replayed as.

Up to :data:`DIRECT_LIMIT` texts go to the gateway's ``/predict/batch`` in one call; a larger
batch becomes ``ReviewReceived`` events (source ``ui``) whose ids are the sha256 of the batch's
bytes and the row number, so sending the same file twice gives the same ids (the sink keeps one
row per review) and the page can find their predictions.
"""

from __future__ import annotations

import csv
import hashlib
import io
from dataclasses import dataclass, field

from schemas.events import MAX_BATCH_TEXTS, MAX_TEXT_CHARS, ReviewReceived
from ui.errors import BadInput

DIRECT_LIMIT = MAX_BATCH_TEXTS
#: batches larger than this are refused (a replay of a whole data set is ``ulasan produce replay``)
MAX_ROWS = 50_000
TEXT_COLUMNS = ("text", "review", "content", "ulasan", "customer review", "komentar")
RATING_COLUMNS = ("rating", "score", "customer rating", "stars")
SOURCE = "ui"


@dataclass(frozen=True)
class Table:
    """The rows of a CSV (header -> value), its columns, and the guessed text column."""

    columns: list[str]
    rows: list[dict[str, str]]
    text_column: str


@dataclass(frozen=True)
class Batch:
    """The texts to score (with their 1-based row numbers) and the rows that were skipped."""

    texts: list[str]
    row_numbers: list[int]
    ratings: list[int | None]
    skipped: list[tuple[int, str]] = field(default_factory=list)


def read_table(raw: str | bytes, *, pasted: bool = False) -> Table:
    """A CSV with a header (delimiter sniffed among ``, ; \\t |``); ``pasted`` text without a
    delimiter on its first line is one review per line. Raises :class:`BadInput`."""
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise BadInput(
                f"the file is not UTF-8 text (byte {exc.start}); save it as UTF-8"
            ) from exc
    if not raw.strip():
        raise BadInput("the batch is empty")
    first = raw.lstrip().splitlines()[0]
    if pasted and not any(d in first for d in ",;\t|"):
        lines = [ln for ln in raw.splitlines() if ln.strip()]
        return Table(["text"], [{"text": ln} for ln in lines], "text")
    try:
        dialect = csv.Sniffer().sniff(first, delimiters=",;\t|")
        delimiter = dialect.delimiter
    except csv.Error:
        delimiter = ","
    reader = csv.DictReader(io.StringIO(raw), delimiter=delimiter)
    columns = [c.strip() for c in reader.fieldnames or [] if c is not None]
    if not columns:
        raise BadInput("the CSV has no header line")
    try:
        rows = [
            {str(k).strip(): (v if isinstance(v, str) else "") for k, v in r.items() if k}
            for r in reader
        ]
    except csv.Error as exc:
        raise BadInput(f"the CSV cannot be read: {exc}") from exc
    if len(rows) > MAX_ROWS:
        raise BadInput(
            f"{len(rows)} rows is more than {MAX_ROWS}; use `ulasan produce replay` for a data set"
        )
    return Table(columns, rows, guess_column(columns, TEXT_COLUMNS) or columns[0])


def guess_column(columns: list[str], names: tuple[str, ...]) -> str | None:
    """The first column whose name (any case) is one of ``names``."""
    lowered = {c.casefold(): c for c in columns}
    return next((lowered[n] for n in names if n in lowered), None)


def _rating(value: str | None) -> int | None:
    try:
        n = int(str(value).strip())
    except ValueError:
        return None
    return n if 1 <= n <= 5 else None


def texts_of(table: Table, column: str | None = None) -> Batch:
    """The texts of ``column`` (default the guessed one); empty, blank or over-long texts are
    skipped with their row number and reason."""
    column = column or table.text_column
    if column not in table.columns:
        raise BadInput(f"no column {column!r}; the columns are {', '.join(table.columns)}")
    rating_col = guess_column(table.columns, RATING_COLUMNS)
    texts, numbers, ratings, skipped = [], [], [], []
    for i, row in enumerate(table.rows, start=1):
        text = row.get(column, "") or ""
        if not text.strip():
            skipped.append((i, "empty text"))
        elif len(text) > MAX_TEXT_CHARS:
            skipped.append((i, f"{len(text)} characters, more than {MAX_TEXT_CHARS}"))
        else:
            texts.append(text)
            numbers.append(i)
            ratings.append(_rating(row.get(rating_col)) if rating_col else None)
    return Batch(texts, numbers, ratings, skipped)


def batch_id(batch: Batch) -> str:
    """A stable id of a batch's content (its texts and ratings)."""
    digest = hashlib.sha256()
    for text, rating in zip(batch.texts, batch.ratings, strict=True):
        digest.update(f"{rating}\x1f{text}\x1e".encode())
    return digest.hexdigest()[:16]


def replay_events(batch: Batch, app_id: str | None = None) -> list[ReviewReceived]:
    """The batch as ``ReviewReceived`` events, ids ``ui-<batch id>-<row>``."""
    bid = batch_id(batch)
    return [
        ReviewReceived(
            review_id=f"{SOURCE}-{bid}-{n}", source=SOURCE, app_id=app_id or None, text=t, rating=r
        )
        for t, n, r in zip(batch.texts, batch.row_numbers, batch.ratings, strict=True)
    ]
