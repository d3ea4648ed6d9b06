"""Replay a review file (CSV, TSV, JSON Lines) into reviews.raw.v1, each good row exactly once.

Review ids are stable, so replaying the same file twice yields the same ids:
- with ``id_col``: the column's value as is (feedback files can refer to it);
- without: ``<source>-<32 hex>``, the sha256 of source, file *name*, line number and text.
A ``run_id`` (the main job) or a ``--loop`` pass after the first is mixed into the id, so such
replays are new reviews rather than duplicates. Times without a zone are taken as UTC.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from producers.checkpoints import CheckpointStore
from producers.feedback import rating_feedback
from producers.fields import parse_rating, parse_time, validation_reason
from producers.files import (
    BadRow,
    Format,
    Record,
    check_file,
    detect_format,
    file_sha256,
    require_columns,
)
from producers.runner import EventSink, FileSource, Parsed, RunStats, run_file
from schemas import topics
from schemas.events import MAX_TEXT_CHARS, ReviewReceived
from ulasan.core.settings import project_paths

PRODUCER = "replay"


@dataclass(frozen=True)
class ReplaySpec:
    """How to read a file's columns into reviews, and what to publish besides."""

    fmt: Format | None = None
    sep: str | None = None
    header: bool = True
    text_col: str = "text"
    rating_col: str | None = None
    id_col: str | None = None
    time_col: str | None = None
    app_col: str | None = None
    source: str = "replay"
    run_id: str | None = None
    emit_feedback: bool = False


#: Known files: ``--preset NAME`` fills in their format and columns.
PRESETS: dict[str, ReplaySpec] = {
    # PRDECT-ID (Tokopedia product reviews), data/prdect_id/prdect_id.csv
    "prdect": ReplaySpec(
        fmt="csv", sep=";", text_col="Customer Review", rating_col="Customer Rating"
    ),
}

#: The review stream the main job replays by default.
#: the shipped PRDECT-ID file, under ULASAN_DATA_DIR (default the checkout's data/)
PRDECT_FILE = project_paths().data / "prdect_id" / "prdect_id.csv"


def preset(name: str, **overrides: Any) -> ReplaySpec:
    """The preset ``name`` with ``overrides`` (None values keep the preset's)."""
    try:
        base = PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown preset {name!r}: known are {', '.join(PRESETS)}") from None
    return replace(base, **{k: v for k, v in overrides.items() if v is not None})


def review_id(
    spec: ReplaySpec, file_name: str, line: int, text: str, given: str | None, pass_no: int
) -> str:
    """The stable id of a row (see the module docstring)."""
    suffix = "".join(
        part
        for part in (f"~{spec.run_id}" if spec.run_id else "", f"~p{pass_no}" if pass_no else "")
    )
    if given is not None:
        return given + suffix
    material = "\x1f".join((spec.source, file_name, str(line), text)) + suffix
    return f"{spec.source}-{hashlib.sha256(material.encode('utf-8')).hexdigest()[:32]}"


def parse_review(record: Record, spec: ReplaySpec, file_name: str, pass_no: int = 0) -> Parsed:
    """The events of one row (the review, and its rating feedback if asked), or why not."""
    fields = record.fields
    text = fields.get(spec.text_col)
    if text is None:
        return BadRow(record.line, f"no {spec.text_col!r} field")
    if not isinstance(text, str):
        return BadRow(record.line, f"text is a {type(text).__name__}, not a string")
    if not text.strip():
        return BadRow(record.line, "text is empty")
    if len(text) > MAX_TEXT_CHARS:
        return BadRow(
            record.line, f"text is {len(text)} characters, over the {MAX_TEXT_CHARS} limit"
        )
    try:
        rating = parse_rating(fields.get(spec.rating_col)) if spec.rating_col else None
        review_time = parse_time(fields.get(spec.time_col)) if spec.time_col else None
    except ValueError as exc:
        return BadRow(record.line, str(exc))
    given = None
    if spec.id_col is not None:
        raw_id = fields.get(spec.id_col)
        given = str(raw_id).strip() if raw_id is not None else ""
        if not given:
            return BadRow(record.line, f"id ({spec.id_col!r}) is empty")
    app_id = None
    if spec.app_col is not None:
        raw_app = fields.get(spec.app_col)
        app_id = str(raw_app).strip() or None if raw_app is not None else None
    rid = review_id(spec, file_name, record.line, text, given, pass_no)
    try:
        review = ReviewReceived(
            review_id=rid,
            source=spec.source,
            app_id=app_id,
            text=text,
            rating=rating,
            review_time=review_time,
        )
    except ValidationError as exc:
        return BadRow(record.line, validation_reason(exc))
    events: list[Any] = [(topics.REVIEWS_RAW, rid, review)]
    if spec.emit_feedback and rating is not None:
        events.append((topics.FEEDBACK, rid, rating_feedback(rid, rating)))
    return events


def checkpoint_key(sha256: str, spec: ReplaySpec) -> str:
    """``<file sha256>:<source>`` (``:<run id>`` appended for a run's own replay)."""
    key = f"{sha256}:{spec.source}"
    return f"{key}:{spec.run_id}" if spec.run_id else key


def replay(
    path: Path,
    spec: ReplaySpec,
    *,
    publisher: EventSink,
    checkpoints: CheckpointStore,
    rate: float | None = None,
    loop: bool = False,
    max_rows: int | None = None,
    from_start: bool = False,
    on_progress: Any = None,
    should_stop: Any = None,
) -> RunStats:
    """Replay ``path`` (see :func:`producers.runner.run_file` for the options)."""
    check_file(path)
    fmt = detect_format(path, spec.fmt)
    columns = {
        "--text-col": spec.text_col,
        "--rating-col": spec.rating_col,
        "--id-col": spec.id_col,
        "--time-col": spec.time_col,
        "--app-col": spec.app_col,
    }
    require_columns(path, fmt, columns, sep=spec.sep, header=spec.header)
    sha = file_sha256(path)
    name = path.name
    return run_file(
        FileSource(path, fmt, spec.sep, spec.header),
        lambda record, pass_no: parse_review(record, spec, name, pass_no),
        publisher=publisher,
        checkpoints=checkpoints,
        producer=PRODUCER,
        key=checkpoint_key(sha, spec),
        checkpoint_info={"file": name, "sha256": sha, "source": spec.source, "run_id": spec.run_id},
        rate=rate,
        loop=loop,
        max_rows=max_rows,
        from_start=from_start,
        on_progress=on_progress,
        should_stop=should_stop,
    )
