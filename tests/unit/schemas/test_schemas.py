"""Event models, topic names, the codec and the exported JSON Schema files."""

from __future__ import annotations

import contextlib
import json
from datetime import UTC, datetime, timedelta

import jsonschema
import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas import export, topics
from schemas.codec import TOPIC_EVENTS, CodecError, decode, decode_for_topic, encode
from schemas.events import (
    MAX_BATCH_TEXTS,
    MAX_TEXT_CHARS,
    DeadLetter,
    DriftReport,
    DriftSignal,
    LabelFeedback,
    ModelPromoted,
    PredictionRequested,
    RetrainRequested,
    ReviewCleaned,
    ReviewReceived,
    SentimentScored,
    TextFeatures,
)

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
FEATURES = TextFeatures(
    word_count=3,
    char_count=17,
    avg_word_length=5.0,
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

SAMPLES = [
    ReviewReceived(
        review_id="gp:1",
        source="google_play",
        app_id="com.example",
        text="Aplikasinya bagus!",
        rating=5,
        review_time=NOW,
        ingested_at=NOW,
    ),
    ReviewCleaned(
        review_id="gp:1",
        source="google_play",
        text="Aplikasinya bagus! 😀",
        cleaned_text="aplikasinya bagus!",
        features=FEATURES,
        feature_version="f1",
        ingested_at=NOW,
        cleaned_at=NOW,
    ),
    PredictionRequested(
        request_id="r1", texts=["jelek", "mantap"], reply_to="gw-1", deadline=NOW, requested_at=NOW
    ),
    SentimentScored(
        event_id="e1",
        review_id="gp:1",
        label="positive",
        confidence=0.9,
        probabilities={"negative": 0.05, "neutral": 0.05, "positive": 0.9},
        model_name="ulasan-mini",
        model_version="3",
        scored_at=NOW,
    ),
    LabelFeedback(feedback_id="f1", review_id="gp:1", label="negative", source="human", time=NOW),
    DriftReport(
        report_id="w1",
        window_start=NOW,
        window_end=NOW + timedelta(hours=1),
        n_events=100,
        model_version="3",
        signals=[
            DriftSignal(
                name="word_count",
                test="ks",
                statistic=0.2,
                p_value=0.01,
                threshold=0.05,
                drifted=True,
            )
        ],
        drift_score=1.0,
        drifted=True,
        created_at=NOW,
    ),
    RetrainRequested(
        request_id="q1", dedupe_key="drift:w1", reasons=["drift"], statistics={"drift_score": 1.0}
    ),
    ModelPromoted(
        model_name="ulasan-sentiment",
        version="4",
        alias="champion",
        previous_version="3",
        model_uri="models:/ulasan-sentiment/4",
    ),
    DeadLetter.wrap(
        b"\xff\xfe",
        key=b"k",
        source_topic=topics.REVIEWS_RAW,
        partition=2,
        offset=7,
        reason="invalid_utf8: byte 0 is not valid UTF-8",
        error_type="CodecError",
        stage="clean",
    ),
]


@pytest.mark.parametrize("event", SAMPLES, ids=lambda e: type(e).__name__)
def test_round_trip(event):
    assert decode(encode(event), type(event)) == event


@pytest.mark.parametrize("event", SAMPLES, ids=lambda e: type(e).__name__)
def test_encoded_events_validate_against_exported_schema(event):
    schema = json.loads((export.JSON_DIR / f"{type(event).__name__}.json").read_text())
    jsonschema.validate(json.loads(encode(event)), schema)


def test_events_are_frozen():
    with pytest.raises(ValueError, match="frozen"):
        SAMPLES[0].text = "x"  # type: ignore[misc]


def test_every_topic_has_an_event_type():
    assert set(TOPIC_EVENTS) == set(topics.ALL_TOPICS)


def test_dlq_names():
    assert topics.dlq(topics.REVIEWS_RAW) == "reviews.raw.v1.dlq"
    assert "reviews.raw.v1.dlq" in topics.all_topics_with_dlq()
    with pytest.raises(ValueError):
        topics.dlq("reviews.raw.v1.dlq")


def test_dead_letter_keeps_original_bytes():
    assert SAMPLES[-1].payload == b"\xff\xfe"


GOOD = encode(SAMPLES[0])


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        ("a str", "not_bytes"),
        (None, "not_bytes"),
        (123, "not_bytes"),
        (b"", "empty"),
        (b"\xff\xfe\x00", "invalid_utf8"),
        (b"{not json", "invalid_json"),
        (b"[" * 100_000, "invalid_json"),
        (b"[1, 2]", "not_an_object"),
        (b'"text"', "not_an_object"),
        (b"null", "not_an_object"),
        (GOOD.replace(b'"schema_version":1', b'"schema_version":2'), "unsupported_schema_version"),
        (b"{}", "schema_violation"),
        (GOOD.replace(b'"rating":5', b'"rating":9'), "schema_violation"),
        (GOOD.replace(b'"rating":5', b'"rating":"five"'), "schema_violation"),
        (GOOD.replace(b'"text":"Aplikasinya bagus!"', b'"text":""'), "schema_violation"),
        (GOOD.replace(b'"text":"Aplikasinya bagus!"', b'"text":"   "'), "schema_violation"),
        (GOOD.replace(b'"text":"Aplikasinya bagus!"', b'"text":42'), "schema_violation"),
        (GOOD.replace(b"}", b',"extra":1}'), "schema_violation"),
    ],
)
def test_bad_input_raises_codec_error(data, reason):
    with pytest.raises(CodecError) as info:
        decode(data, ReviewReceived)
    assert info.value.reason == reason
    assert str(info.value).startswith(reason)


def test_text_length_limit():
    long = ReviewReceived(review_id="x", source="s", text="a" * MAX_TEXT_CHARS)
    raw = encode(long).replace(b'"text":"a', b'"text":"aa', 1)
    with pytest.raises(CodecError, match="text: String should have at most 5000"):
        decode(raw, ReviewReceived)


def test_batch_limit():
    with pytest.raises(ValueError):
        PredictionRequested(
            request_id="r", texts=["x"] * (MAX_BATCH_TEXTS + 1), reply_to="g", deadline=NOW
        )


def test_sentiment_needs_exactly_one_subject():
    with pytest.raises(ValueError, match="exactly one"):
        SentimentScored(
            event_id="e",
            label="neutral",
            confidence=0.5,
            probabilities={"neutral": 0.5},
            model_name="m",
            model_version="1",
        )


def test_unknown_topic():
    with pytest.raises(CodecError) as info:
        decode_for_topic(GOOD, "nope.v1")
    assert info.value.reason == "unknown_topic"


def test_exported_schema_files_are_current():
    stale = export.stale()
    assert not stale, f"run `ulasan schemas export`: stale files {stale}"


@given(st.text(min_size=1, max_size=MAX_TEXT_CHARS).filter(lambda s: s.strip()))
def test_any_text_round_trips(text):
    event = ReviewReceived(review_id="h", source="hypothesis", text=text, ingested_at=NOW)
    assert decode(encode(event), ReviewReceived).text == text


@given(st.binary(max_size=512))
def test_arbitrary_bytes_never_escape_as_other_errors(data):
    with contextlib.suppress(CodecError):
        decode(data, ReviewReceived)


@given(st.text(max_size=300))
def test_arbitrary_strings_as_utf8_bytes(text):
    try:
        event = decode(text.encode("utf-8", "surrogatepass"), ReviewReceived)
    except CodecError:
        return
    assert isinstance(event, ReviewReceived)
