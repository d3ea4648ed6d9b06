"""Dead letters: why a record is bad (pure classification) and the ``DeadLetter`` carrying it."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import ValidationError

from schemas.codec import CodecError
from schemas.events import DeadLetter

#: Reason codes a dead letter's ``error_type`` can hold (besides the codec's own codes).
EMPTY_TEXT = "empty_text"
TEXT_TOO_LONG = "text_too_long"
WRONG_TYPE = "wrong_type"
MISSING_FIELD = "missing_field"
UNKNOWN_FIELD = "unknown_field"
SCHEMA_VIOLATION = "schema_violation"
INFERENCE_FAILED = "inference_failed"
SINK_REJECTED = "sink_rejected"
#: An agent failed on the record every time it was tried alone (see ``kafka.guard``).
PROCESSING_FAILED = "processing_failed"

#: The longest ``reason`` a dead letter carries (an exception text can quote a whole record).
MAX_REASON_CHARS = 4000

_TYPE_ERRORS = ("_type", "_parsing", "literal_error", "enum")


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why a record cannot be processed: a short ``reason`` code and a human ``detail``."""

    reason: str
    detail: str


def classify(exc: BaseException) -> Rejection:
    """The reason code of a decode/validation failure.

    Codec failures keep their code (``invalid_utf8``, ``invalid_json``, ``not_an_object``,
    ``empty``, ``unsupported_schema_version``); schema violations are narrowed to
    ``empty_text``, ``text_too_long``, ``wrong_type``, ``missing_field``, ``unknown_field``,
    or stay ``schema_violation``.
    """
    if isinstance(exc, CodecError):
        if exc.reason == "schema_violation" and isinstance(exc.__cause__, ValidationError):
            return Rejection(_narrow(exc.__cause__), exc.detail)
        return Rejection(exc.reason, exc.detail)
    if isinstance(exc, ValidationError):
        return Rejection(_narrow(exc), str(exc).splitlines()[0])
    return Rejection(type(exc).__name__, str(exc) or type(exc).__name__)


def _narrow(exc: ValidationError) -> str:
    """The most telling reason among a validation error's items (text problems first)."""
    errors = exc.errors(include_url=False)
    for err in errors:
        loc = tuple(err["loc"])
        kind = err["type"]
        if loc[:1] == ("text",) or loc[:1] == ("texts",):
            if kind == "string_too_long" or kind == "too_long":
                return TEXT_TOO_LONG
            if kind == "string_too_short" or kind == "too_short":
                return EMPTY_TEXT
    for err in errors:
        # The blank-text rule is a model validator: its error has an empty location.
        if err["type"] == "value_error" and "blank" in str(err.get("msg", "")):
            return EMPTY_TEXT
    kinds = [err["type"] for err in errors]
    if any(k.endswith(_TYPE_ERRORS) or k in _TYPE_ERRORS for k in kinds):
        return WRONG_TYPE
    if "missing" in kinds:
        return MISSING_FIELD
    if "extra_forbidden" in kinds:
        return UNKNOWN_FIELD
    return SCHEMA_VIOLATION


def dead_letter(
    payload: bytes | None,
    *,
    key: bytes | None,
    topic: str,
    partition: int,
    offset: int,
    rejection: Rejection,
    stage: str,
    max_payload_bytes: int | None = None,
) -> DeadLetter:
    """The dead letter of one record: original bytes, where it came from, why, at which stage.

    A value over ``max_payload_bytes`` is cut to that many bytes (``truncated``, with the
    whole value's size and SHA-256), and the reason to :data:`MAX_REASON_CHARS`: a dead letter
    must fit in one Kafka message, or the producer refuses it on every retry and the agent
    that writes it stalls (an oversize raw record did that to the clean agent).
    """
    reason = f"{rejection.reason}: {rejection.detail}"
    if len(reason) > MAX_REASON_CHARS:
        reason = reason[: MAX_REASON_CHARS - 1] + "…"
    return DeadLetter.wrap(
        _as_bytes(payload),
        key=_as_bytes(key),
        source_topic=topic,
        partition=partition,
        offset=offset,
        reason=reason,
        error_type=rejection.reason,
        stage=stage,
        max_payload_bytes=max_payload_bytes,
    )


def _as_bytes(value: object) -> bytes | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        return value
    if isinstance(value, bytearray | memoryview):
        return bytes(value)
    if isinstance(value, str):
        return value.encode("utf-8")
    return repr(value).encode("utf-8")
