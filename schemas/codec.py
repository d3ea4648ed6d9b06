"""JSON bytes <-> event models, with one error type for every way input can be bad."""

from __future__ import annotations

import json
from typing import Any, TypeVar

from pydantic import ValidationError

from schemas import topics
from schemas.events import (
    DeadLetter,
    DriftReport,
    Event,
    LabelFeedback,
    ModelPromoted,
    PredictionRequested,
    RetrainRequested,
    ReviewCleaned,
    ReviewReceived,
    SentimentScored,
)

E = TypeVar("E", bound=Event)

#: The event model carried by each topic.
TOPIC_EVENTS: dict[str, type[Event]] = {
    topics.REVIEWS_RAW: ReviewReceived,
    topics.REVIEWS_CLEAN: ReviewCleaned,
    topics.PREDICT_REQUESTS: PredictionRequested,
    topics.PREDICT_REPLIES: SentimentScored,
    topics.SENTIMENT: SentimentScored,
    topics.FEEDBACK: LabelFeedback,
    topics.DRIFT_REPORTS: DriftReport,
    topics.RETRAIN_REQUESTS: RetrainRequested,
    topics.MODEL_UPDATES: ModelPromoted,
}


class CodecError(ValueError):
    """Bytes that are not a valid event; ``reason`` is a short machine-friendly code.

    Reasons: ``not_bytes``, ``empty``, ``invalid_utf8``, ``invalid_json``, ``not_an_object``,
    ``unsupported_schema_version``, ``schema_violation``, ``unknown_topic``.
    """

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def encode(event: Event) -> bytes:
    """Serialise an event to compact UTF-8 JSON bytes."""
    return event.model_dump_json().encode("utf-8")


def decode(data: Any, model: type[E]) -> E:
    """Parse ``data`` (bytes) into ``model``; raise :class:`CodecError` on any bad input.

    A valid event is parsed and validated in one pass by pydantic's JSON parser (no Python
    dict in between: the workers decode every record this way). Anything that pass refuses
    goes through :func:`decode_checked`, which names what is wrong, so the outcome is the same
    either way: the same event, or the same error.
    """
    if type(data) is bytes and data:
        try:
            event = model.model_validate_json(data)
        except ValidationError:
            pass  # bad input (or one the JSON parser reads differently): the checked path says
        else:
            return event
    return decode_checked(data, model)


def decode_checked(data: Any, model: type[E]) -> E:
    """:func:`decode` step by step (bytes, UTF-8, JSON, object, version, schema): the path that
    names the reason of a bad input."""
    if isinstance(data, bytearray | memoryview):
        data = bytes(data)
    if not isinstance(data, bytes):
        raise CodecError("not_bytes", f"expected bytes, got {type(data).__name__}")
    if not data:
        raise CodecError("empty", "the record value is empty")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CodecError("invalid_utf8", f"byte {exc.start} is not valid UTF-8") from exc
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CodecError(
            "invalid_json", f"{exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from exc
    except RecursionError as exc:
        raise CodecError("invalid_json", "the JSON document is nested too deeply") from exc
    except ValueError as exc:  # an integer literal past Python's 4300-digit limit
        raise CodecError("invalid_json", "a number in the JSON document is too long") from exc
    if not isinstance(obj, dict):
        raise CodecError("not_an_object", f"expected a JSON object, got {type(obj).__name__}")
    version = obj.get("schema_version", 1)
    if version != 1:
        raise CodecError(
            "unsupported_schema_version",
            f"{model.__name__} schema_version {version!r} is not supported (expected 1)",
        )
    try:
        return model.model_validate(obj)
    except ValidationError as exc:
        raise CodecError("schema_violation", _summarise(exc, model)) from exc


def decode_for_topic(data: Any, topic: str) -> Event:
    """Parse ``data`` as the event carried by ``topic``."""
    try:
        model = TOPIC_EVENTS[topic]
    except KeyError:
        raise CodecError("unknown_topic", f"no event type is registered for {topic!r}") from None
    return decode(data, model)


def decode_dead_letter(data: Any) -> DeadLetter:
    """Parse a record of a ``<topic>.dlq`` topic."""
    return decode(data, DeadLetter)


def _summarise(exc: ValidationError, model: type[Event]) -> str:
    parts = []
    for err in exc.errors(include_url=False)[:5]:
        loc = ".".join(str(p) for p in err["loc"]) or "(root)"
        parts.append(f"{loc}: {err['msg']}")
    more = exc.error_count() - len(parts)
    suffix = f" (+{more} more)" if more > 0 else ""
    return f"{model.__name__}: " + "; ".join(parts) + suffix
