"""Labels into feedback.v1: from label files (people) and from star ratings (4-5 positive,
3 neutral, 1-2 negative), each ``LabelFeedback`` keyed by the review id it labels."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from producers.checkpoints import CheckpointStore
from producers.fields import parse_time, validation_reason
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
from schemas.events import LABELS, Label, LabelFeedback

PRODUCER = "feedback"
SOURCES = ("rating", "human")


def label_for_rating(rating: int) -> Label:
    """The label a 1..5 star rating stands for: 4-5 positive, 3 neutral, 1-2 negative."""
    if not 1 <= rating <= 5:
        raise ValueError(f"rating {rating} is not 1..5")
    if rating >= 4:
        return "positive"
    return "neutral" if rating == 3 else "negative"


def rating_feedback(review_id: str, rating: int) -> LabelFeedback:
    """The rating-derived label of a review (``feedback_id`` = ``<review_id>:rating``)."""
    return LabelFeedback(
        feedback_id=f"{review_id}:rating",
        review_id=review_id,
        label=label_for_rating(rating),
        source="rating",
    )


def parse_feedback(
    record: Record, file_name: str, *, default_source: str = "human", time_col: str = "time"
) -> Parsed:
    """The LabelFeedback of one row (``review_id``, ``label``, optional ``source``, ``time``)."""
    fields = record.fields
    review_id = fields.get("review_id")
    if review_id is None or not str(review_id).strip():
        return BadRow(record.line, "review_id is empty")
    raw_label = fields.get("label")
    label = str(raw_label).strip().lower() if raw_label is not None else ""
    if label not in LABELS:
        return BadRow(record.line, f"label {raw_label!r} is not one of {', '.join(LABELS)}")
    source = str(fields.get("source") or default_source).strip().lower()
    if source not in SOURCES:
        return BadRow(record.line, f"source {source!r} is not one of {', '.join(SOURCES)}")
    extra: dict[str, Any] = {}
    try:
        when = parse_time(fields.get(time_col))
    except ValueError as exc:
        return BadRow(record.line, str(exc))
    if when is not None:
        extra["time"] = when
    rid = str(review_id).strip()
    material = "\x1f".join((file_name, str(record.line), rid, label, source))
    try:
        event = LabelFeedback(
            feedback_id=f"fb-{hashlib.sha256(material.encode('utf-8')).hexdigest()[:32]}",
            review_id=rid,
            label=label,
            source=source,
            **extra,
        )
    except ValidationError as exc:
        return BadRow(record.line, validation_reason(exc))
    return [(topics.FEEDBACK, rid, event)]


def publish_feedback_file(
    path: Path,
    *,
    fmt: Format | None,
    sep: str | None,
    publisher: EventSink,
    checkpoints: CheckpointStore,
    from_start: bool = False,
    on_progress: Any = None,
) -> RunStats:
    """Publish every good row of a label file once (checkpoint: producer='feedback', sha256)."""
    check_file(path)
    file_format = detect_format(path, fmt)
    require_columns(path, file_format, {"review_id": "review_id", "label": "label"}, sep=sep)
    sha = file_sha256(path)
    name = path.name
    return run_file(
        FileSource(path, file_format, sep),
        lambda record, _pass: parse_feedback(record, name),
        publisher=publisher,
        checkpoints=checkpoints,
        producer=PRODUCER,
        key=sha,
        checkpoint_info={"file": name, "sha256": sha},
        from_start=from_start,
        on_progress=on_progress,
    )
