"""The events of ulasan: frozen pydantic v2 models, each carrying ``schema_version``.

Only pydantic and the standard library are imported here, so any process (and, through
the exported JSON Schema in ``schemas/json/``, any language) can share these contracts.
Limits that the whole system enforces (text length, batch size, label set) live here too.
"""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

MAX_TEXT_CHARS = 5000
MAX_BATCH_TEXTS = 100
LABELS: tuple[str, ...] = ("negative", "neutral", "positive")

Label = Literal["negative", "neutral", "positive"]
Text = Annotated[str, Field(min_length=1, max_length=MAX_TEXT_CHARS)]
Identifier = Annotated[str, Field(min_length=1, max_length=256)]
Probability = Annotated[float, Field(ge=0.0, le=1.0)]


def utcnow() -> datetime:
    """Timezone-aware now in UTC: every timestamp in an event is aware."""
    return datetime.now(UTC)


class Event(BaseModel):
    """Base of every event: frozen, strict about unknown fields, versioned."""

    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=False)

    schema_version: Literal[1] = 1


def _text_not_blank(text: str) -> str:
    if not text.strip():
        raise ValueError("text is blank: it holds only whitespace")
    return text


class ReviewReceived(Event):
    """A review as it enters ulasan (reviews.raw.v1, key ``review_id``). No personal data."""

    review_id: Identifier
    source: Annotated[str, Field(min_length=1, max_length=64, examples=["google_play", "replay"])]
    app_id: Annotated[str, Field(max_length=256)] | None = None
    text: Text
    rating: Annotated[int, Field(ge=1, le=5)] | None = None
    review_time: datetime | None = None
    ingested_at: datetime = Field(default_factory=utcnow)

    @model_validator(mode="after")
    def _check_text(self) -> ReviewReceived:
        _text_not_blank(self.text)
        return self


class TextFeatures(BaseModel):
    """The 13 numeric/boolean features of the feature store (plus cleaned_text, version)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    word_count: Annotated[int, Field(ge=0)]
    char_count: Annotated[int, Field(ge=0)]
    avg_word_length: Annotated[float, Field(ge=0)]
    sentiment_words_positive: Annotated[int, Field(ge=0)]
    sentiment_words_negative: Annotated[int, Field(ge=0)]
    exclamation_marks: Annotated[int, Field(ge=0)]
    question_marks: Annotated[int, Field(ge=0)]
    uppercase_ratio: Annotated[float, Field(ge=0, le=1)]
    special_chars_count: Annotated[int, Field(ge=0)]
    number_count: Annotated[int, Field(ge=0)]
    has_url: bool
    has_emoji: bool


class ReviewCleaned(ReviewReceived):
    """A review with its cleaned text and features (reviews.clean.v1, key ``review_id``)."""

    cleaned_text: Annotated[str, Field(max_length=MAX_TEXT_CHARS)]
    features: TextFeatures
    feature_version: Annotated[str, Field(min_length=1, max_length=64)]
    cleaned_at: datetime = Field(default_factory=utcnow)


class PredictionRequested(Event):
    """An ad-hoc prediction request from a gateway (predict.requests.v1, key ``request_id``).

    ``reply_to`` names the gateway instance that awaits the replies; ``reply_partition``, when
    set, is the predict.replies.v1 partition that instance reads.
    """

    request_id: Identifier
    texts: Annotated[list[Text], Field(min_length=1, max_length=MAX_BATCH_TEXTS)]
    reply_to: Identifier
    reply_partition: Annotated[int, Field(ge=0)] | None = None
    deadline: datetime
    requested_at: datetime = Field(default_factory=utcnow)


class Timings(BaseModel):
    """Where the time went for one scored text, in milliseconds."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    queue_ms: Annotated[float, Field(ge=0)] = 0.0
    inference_ms: Annotated[float, Field(ge=0)] = 0.0
    total_ms: Annotated[float, Field(ge=0)] = 0.0


#: Kafka header of a predict.replies.v1 record: when the worker's consumer received the request
#: (epoch milliseconds, ASCII decimal), for the gateway's per-hop timings. A header, not a field:
#: a field added to this closed v1 event would break its older readers (schemas/compat.py).
REPLY_CONSUMED_AT_HEADER = "ulasan-consumed-at-ms"


class SentimentScored(Event):
    """A scored text (sentiment.v1 for reviews, predict.replies.v1 for requests).

    Exactly one of ``review_id`` and ``request_id`` is set; ``index`` is the position of the
    text within a request's ``texts``.
    """

    event_id: Identifier
    review_id: Identifier | None = None
    request_id: Identifier | None = None
    index: Annotated[int, Field(ge=0)] = 0
    reply_to: Identifier | None = None
    label: Label
    confidence: Probability
    probabilities: dict[Label, Probability]
    model_name: Identifier
    model_version: Identifier
    timings: Timings = Timings()
    text: Annotated[str, Field(max_length=MAX_TEXT_CHARS)] | None = Field(
        None, description="the scored text as received (the sink logs it as the prediction input)"
    )
    scored_at: datetime = Field(default_factory=utcnow)

    @model_validator(mode="after")
    def _one_subject(self) -> SentimentScored:
        if (self.review_id is None) == (self.request_id is None):
            raise ValueError("exactly one of review_id and request_id must be set")
        return self


class LabelFeedback(Event):
    """A true label for a scored review or request (feedback.v1, key ``review_id``).

    ``source`` is ``rating`` (derived from a star rating) or ``human`` (a person's label,
    which wins over a rating).
    """

    feedback_id: Identifier
    review_id: Identifier
    label: Label
    source: Literal["rating", "human"]
    time: datetime = Field(default_factory=utcnow)


class DriftSignal(BaseModel):
    """One statistical test of one signal in one window."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: Identifier
    test: Literal["ks", "chi2", "accuracy", "rate"]
    statistic: float
    p_value: Annotated[float, Field(ge=0, le=1)] | None = None
    threshold: float
    drifted: bool


class DriftReport(Event):
    """The drift verdict of one window (drift.reports.v1, key ``report_id``)."""

    report_id: Identifier
    window_start: datetime
    window_end: datetime
    n_events: Annotated[int, Field(ge=0)]
    model_version: Identifier
    signals: list[DriftSignal]
    drift_score: Annotated[float, Field(ge=0, le=1)]
    drifted: bool
    created_at: datetime = Field(default_factory=utcnow)


RetrainReason = Literal["time", "data", "feedback", "performance", "drift", "manual"]


class RetrainRequested(Event):
    """A fired retraining trigger (retrain.requests.v1, key ``dedupe_key``)."""

    request_id: Identifier
    dedupe_key: Identifier
    reasons: Annotated[list[RetrainReason], Field(min_length=1)]
    statistics: dict[str, float] = Field(default_factory=dict)
    window_start: datetime | None = None
    window_end: datetime | None = None
    model_version: Identifier | None = Field(
        None, description="the champion version the trigger judged (older requests are stale)"
    )
    requested_at: datetime = Field(default_factory=utcnow)


class ModelPromoted(Event):
    """A model version that now holds an alias (model.updates.v1, key ``model_name``)."""

    model_name: Identifier
    version: Identifier
    alias: Identifier
    previous_version: Identifier | None = None
    model_uri: Identifier
    metrics: dict[str, float] = Field(default_factory=dict)
    promoted_at: datetime = Field(default_factory=utcnow)


class DeadLetter(Event):
    """A record that could not be processed (``<topic>.dlq``), kept whole for replay.

    ``payload_b64`` is the original value bytes, base64-encoded, so invalid UTF-8 survives.
    A value larger than the writer's limit is cut to its first bytes (``truncated``), so the
    dead letter always fits in a Kafka message; ``payload_size`` and ``payload_sha256`` always
    describe the whole original value (a truncated dead letter cannot be replayed).
    """

    source_topic: Identifier
    partition: Annotated[int, Field(ge=0)]
    offset: Annotated[int, Field(ge=0)]
    key_b64: str | None = None
    payload_b64: str
    reason: Annotated[str, Field(min_length=1)]
    error_type: Identifier
    stage: Identifier
    failed_at: datetime = Field(default_factory=utcnow)
    payload_size: Annotated[int, Field(ge=0)] | None = None
    payload_sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")] | None = None
    truncated: bool = False

    @classmethod
    def wrap(
        cls,
        payload: bytes | None,
        *,
        key: bytes | None,
        source_topic: str,
        partition: int,
        offset: int,
        reason: str,
        error_type: str,
        stage: str,
        max_payload_bytes: int | None = None,
    ) -> DeadLetter:
        """Build a dead letter around the original bytes of a record.

        With ``max_payload_bytes``, a value (or key) longer than that is cut to its first
        ``max_payload_bytes`` bytes and the letter is marked ``truncated``; the size and the
        SHA-256 of the whole value are kept either way.
        """
        value = payload or b""
        cut = max_payload_bytes is not None and (
            len(value) > max_payload_bytes or (key is not None and len(key) > max_payload_bytes)
        )
        if cut and max_payload_bytes is not None:
            value = value[:max_payload_bytes]
            key = key[:max_payload_bytes] if key is not None else None
        return cls(
            source_topic=source_topic,
            partition=partition,
            offset=offset,
            key_b64=base64.b64encode(key).decode("ascii") if key is not None else None,
            payload_b64=base64.b64encode(value).decode("ascii"),
            reason=reason,
            error_type=error_type,
            stage=stage,
            payload_size=len(payload or b""),
            payload_sha256=hashlib.sha256(payload or b"").hexdigest(),
            truncated=cut,
        )

    @property
    def payload(self) -> bytes:
        """The original value bytes (only the first ones when ``truncated``)."""
        return base64.b64decode(self.payload_b64)

    @property
    def key(self) -> bytes | None:
        """The original key bytes (None: the record had no key)."""
        return base64.b64decode(self.key_b64) if self.key_b64 is not None else None


#: Every event model, by name (the names of the exported JSON Schema files).
EVENT_MODELS: dict[str, type[Event]] = {
    m.__name__: m
    for m in (
        ReviewReceived,
        ReviewCleaned,
        PredictionRequested,
        SentimentScored,
        LabelFeedback,
        DriftReport,
        RetrainRequested,
        ModelPromoted,
        DeadLetter,
    )
}


#: The JSON Schema dialect pydantic writes, named in every exported file.
JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def schema_id(name: str, version: int) -> str:
    """The stable ``$id`` of version ``version`` of event ``name``: urn:ulasan:event:NAME:vN.

    A new ``schema_version`` is a new contract with a new id; within one id every change must
    be compatible both ways (see :mod:`schemas.compat`).
    """
    return f"urn:ulasan:event:{name}:v{version}"


def json_schemas() -> dict[str, dict[str, Any]]:
    """JSON Schema (draft 2020-12) of every event, by event name, with ``$schema`` and ``$id``."""
    return {
        name: {
            "$schema": JSON_SCHEMA_DIALECT,
            "$id": schema_id(name, model.model_fields["schema_version"].default),
            **model.model_json_schema(),
        }
        for name, model in EVENT_MODELS.items()
    }
