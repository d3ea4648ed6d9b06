"""Sink row building: events -> table rows, idempotent INSERT statements, batch splitting."""

from __future__ import annotations

from datetime import UTC, datetime

from psycopg.types.json import Jsonb

from schemas.events import ReviewCleaned, SentimentScored, TextFeatures, Timings
from stream_processors.sink.rows import (
    FEATURE_NAMES,
    INSERT_SQL,
    PREDICTION_COLUMNS,
    PREDICTION_LOGS,
    REVIEW_COLUMNS,
    REVIEWS,
    TEXT_FEATURE_COLUMNS,
    TEXT_FEATURES,
    prediction_batch,
    review_batch,
)

T0 = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
FEATURES = TextFeatures(
    word_count=2,
    char_count=12,
    avg_word_length=5.5,
    sentiment_words_positive=1,
    sentiment_words_negative=0,
    exclamation_marks=1,
    question_marks=0,
    uppercase_ratio=0.1,
    special_chars_count=1,
    number_count=0,
    has_url=False,
    has_emoji=True,
)


def cleaned(review_id: str = "r1") -> ReviewCleaned:
    return ReviewCleaned(
        review_id=review_id,
        source="replay",
        app_id="app",
        text="Bagus sekali!",
        rating=5,
        review_time=T0,
        ingested_at=T0,
        cleaned_text="bagus sekali!",
        features=FEATURES,
        feature_version="fv1",
    )


def scored(review_id: str = "r1") -> SentimentScored:
    return SentimentScored(
        event_id=f"e-{review_id}",
        review_id=review_id,
        label="positive",
        confidence=0.8,
        probabilities={"negative": 0.1, "neutral": 0.1, "positive": 0.8},
        model_name="m",
        model_version="3",
        timings=Timings(queue_ms=1.0, inference_ms=2.0, total_ms=3.0),
        text="Bagus sekali!",
        scored_at=T0,
    )


def test_review_rows_follow_the_columns() -> None:
    batch = review_batch([cleaned("a"), cleaned("b")])
    assert len(batch) == 4
    (review_a, review_b) = batch.rows[REVIEWS]
    assert dict(zip(REVIEW_COLUMNS, review_a, strict=True)) == {
        "review_id": "a",
        "source": "replay",
        "app_id": "app",
        "text": "Bagus sekali!",
        "rating": 5,
        "review_time": T0,
        "ingested_at": T0,
    }
    assert review_b[0] == "b"
    feats = dict(zip(TEXT_FEATURE_COLUMNS, batch.rows[TEXT_FEATURES][0], strict=True))
    assert feats["cleaned_text"] == "bagus sekali!"
    assert feats["feature_version"] == "fv1"
    assert {k: feats[k] for k in FEATURE_NAMES} == FEATURES.model_dump()
    assert batch.sources == {REVIEWS: [0, 1], TEXT_FEATURES: [0, 1]}


def test_prediction_rows_carry_the_input_and_the_model() -> None:
    batch = prediction_batch([scored("a")])
    row = dict(zip(PREDICTION_COLUMNS, batch.rows[PREDICTION_LOGS][0], strict=True))
    assert row["event_id"] == "e-a"
    assert row["input"] == "Bagus sekali!"
    assert (row["label"], row["model_name"], row["model_version"]) == ("positive", "m", "3")
    assert row["shadow"] is False
    assert row["timestamp"] == T0
    assert row["processing_time_ms"] == 3.0
    assert isinstance(row["probabilities"], Jsonb)
    assert row["probabilities"].obj == {"negative": 0.1, "neutral": 0.1, "positive": 0.8}


def test_inserts_are_idempotent_and_parameterised() -> None:
    for table, sql in INSERT_SQL.items():
        assert sql.startswith(f"INSERT INTO {table} (")
        assert sql.endswith("ON CONFLICT DO NOTHING")
    assert INSERT_SQL[PREDICTION_LOGS].count("%s") == len(PREDICTION_COLUMNS)
    assert '"timestamp"' in INSERT_SQL[PREDICTION_LOGS]


def test_without_drops_every_row_of_the_bad_sources() -> None:
    batch = review_batch([cleaned("a"), cleaned("b"), cleaned("c")])
    rest = batch.without({1})
    assert [r[0] for r in rest.rows[REVIEWS]] == ["a", "c"]
    assert [r[0] for r in rest.rows[TEXT_FEATURES]] == ["a", "c"]
    assert rest.sources[REVIEWS] == [0, 2]
    assert len(batch.without({0, 1, 2})) == 0
