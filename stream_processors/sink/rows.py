"""Pure mapping of events to table rows, and the idempotent INSERT statements that take them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from psycopg.types.json import Jsonb

from schemas.events import ReviewCleaned, SentimentScored, TextFeatures

REVIEWS = "reviews"
TEXT_FEATURES = "text_features"
PREDICTION_LOGS = "prediction_logs"

REVIEW_COLUMNS = ("review_id", "source", "app_id", "text", "rating", "review_time", "ingested_at")
#: The feature columns of text_features, in the order of ``TextFeatures``.
FEATURE_NAMES = tuple(TextFeatures.model_fields)
TEXT_FEATURE_COLUMNS = ("review_id", "cleaned_text", *FEATURE_NAMES, "feature_version")
PREDICTION_COLUMNS = (
    "event_id",
    "review_id",
    "request_id",
    "input",
    "label",
    "confidence",
    "probabilities",
    "model_name",
    "model_version",
    "shadow",
    "timestamp",
    "processing_time_ms",
)


def insert_sql(table: str, columns: tuple[str, ...]) -> str:
    """``INSERT ... ON CONFLICT DO NOTHING``: a replayed row (any unique key) is a no-op."""
    cols = ", ".join(f'"{c}"' for c in columns)
    params = ", ".join(["%s"] * len(columns))
    return f"INSERT INTO {table} ({cols}) VALUES ({params}) ON CONFLICT DO NOTHING"


INSERT_SQL: dict[str, str] = {
    REVIEWS: insert_sql(REVIEWS, REVIEW_COLUMNS),
    TEXT_FEATURES: insert_sql(TEXT_FEATURES, TEXT_FEATURE_COLUMNS),
    PREDICTION_LOGS: insert_sql(PREDICTION_LOGS, PREDICTION_COLUMNS),
}


def review_row(e: ReviewCleaned) -> tuple[Any, ...]:
    return (e.review_id, e.source, e.app_id, e.text, e.rating, e.review_time, e.ingested_at)


def text_features_row(e: ReviewCleaned) -> tuple[Any, ...]:
    f = e.features
    return (
        e.review_id,
        e.cleaned_text,
        *(getattr(f, name) for name in FEATURE_NAMES),
        e.feature_version,
    )


def prediction_row(e: SentimentScored, *, shadow: bool = False) -> tuple[Any, ...]:
    return (
        e.event_id,
        e.review_id,
        e.request_id,
        e.text,
        e.label,
        e.confidence,
        Jsonb(dict(e.probabilities)),
        e.model_name,
        e.model_version,
        shadow,
        e.scored_at,
        e.timings.total_ms,
    )


@dataclass
class RowBatch:
    """Rows bound for several tables, written in one transaction; ``sources[i]`` is the index
    of the input record each row of a table came from (to dead-letter exactly that record)."""

    rows: dict[str, list[tuple[Any, ...]]] = field(default_factory=dict)
    sources: dict[str, list[int]] = field(default_factory=dict)

    def add(self, table: str, row: tuple[Any, ...], source: int) -> None:
        self.rows.setdefault(table, []).append(row)
        self.sources.setdefault(table, []).append(source)

    def __len__(self) -> int:
        return sum(len(r) for r in self.rows.values())

    def without(self, bad_sources: set[int]) -> RowBatch:
        """The batch minus every row that came from one of ``bad_sources``."""
        out = RowBatch()
        for table, rows in self.rows.items():
            for row, src in zip(rows, self.sources[table], strict=True):
                if src not in bad_sources:
                    out.add(table, row, src)
        return out


def review_batch(events: list[ReviewCleaned]) -> RowBatch:
    """reviews + text_features rows for cleaned reviews."""
    batch = RowBatch()
    for i, e in enumerate(events):
        batch.add(REVIEWS, review_row(e), i)
        batch.add(TEXT_FEATURES, text_features_row(e), i)
    return batch


def prediction_batch(events: list[SentimentScored]) -> RowBatch:
    """prediction_logs rows for scored texts."""
    batch = RowBatch()
    for i, e in enumerate(events):
        batch.add(PREDICTION_LOGS, prediction_row(e), i)
    return batch
