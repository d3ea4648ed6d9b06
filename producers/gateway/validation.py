"""Input rules of the gateway, shared by HTTP and gRPC: each error names the field and the limit."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from producers.gateway.errors import InvalidInput
from schemas.events import LABELS, MAX_BATCH_TEXTS, MAX_TEXT_CHARS


def check_text(value: Any, field: str = "text") -> str:
    """``value`` as a text to score; raises :class:`InvalidInput` naming ``field``."""
    if not isinstance(value, str):
        raise InvalidInput(field, f"must be a string, got {type(value).__name__}")
    if not value:
        raise InvalidInput(field, "is empty: send 1 to 5000 characters")
    if not value.strip():
        raise InvalidInput(field, "is blank (only whitespace): send 1 to 5000 characters")
    if len(value) > MAX_TEXT_CHARS:
        raise InvalidInput(
            field, f"has {len(value)} characters, more than the limit of {MAX_TEXT_CHARS}"
        )
    return _storable(value, field)


def _storable(value: str, field: str) -> str:
    """``value`` if PostgreSQL can store it as text: valid UTF-8 and no NUL character."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidInput(
            field, f"is not valid UTF-8 (a lone surrogate at character {exc.start})"
        ) from None
    if "\x00" in value:
        raise InvalidInput(
            field, f"holds a NUL character (U+0000) at character {value.index(chr(0))}: remove it"
        )
    return value


def check_identifier(value: Any, field: str) -> str:
    """A ``review_id`` or ``request_id``: a string of 1 to 256 storable characters."""
    if not isinstance(value, str) or not 1 <= len(value) <= 256:
        raise InvalidInput(field, "must be a string of 1 to 256 characters")
    return _storable(value, field)


def check_texts(values: Any, field: str = "texts") -> list[str]:
    """A batch of 1 to 100 texts; errors name the item, e.g. ``texts[3]``."""
    if not isinstance(values, Sequence) or isinstance(values, str | bytes):
        raise InvalidInput(field, f"must be a list of strings, got {type(values).__name__}")
    if not values:
        raise InvalidInput(field, f"is empty: send 1 to {MAX_BATCH_TEXTS} texts")
    if len(values) > MAX_BATCH_TEXTS:
        raise InvalidInput(
            field, f"has {len(values)} items, more than the limit of {MAX_BATCH_TEXTS}"
        )
    return [check_text(v, f"{field}[{i}]") for i, v in enumerate(values)]


def check_label(value: Any, field: str = "label") -> str:
    if value not in LABELS:
        raise InvalidInput(field, f"must be one of {', '.join(LABELS)}, got {value!r}")
    return str(value)


def check_subject(review_id: Any, request_id: Any) -> tuple[str, str]:
    """Exactly one of ``review_id``/``request_id`` (1-256 characters): ``(field, value)``."""
    given = [(f, v) for f, v in (("review_id", review_id), ("request_id", request_id)) if v]
    if len(given) != 1:
        raise InvalidInput("review_id", "give exactly one of review_id and request_id")
    field, value = given[0]
    return field, check_identifier(value, field)
