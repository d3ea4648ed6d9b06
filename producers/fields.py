"""Field values of a row into event values: star ratings, times, and why an event is invalid.

One parser per kind of value, shared by every producer (review files, label files, Google
Play), so a time or a rating means the same thing whichever file it comes from.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError


def parse_rating(value: Any) -> int | None:
    """A 1..5 star rating from text or a number; None when empty; ValueError otherwise."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool):
        raise ValueError(f"rating {value!r} is not a number 1..5")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"rating {value!r} is not a number 1..5") from None
    if not number.is_integer() or not 1 <= number <= 5:
        raise ValueError(f"rating {value!r} is not a whole number 1..5")
    return int(number)


def parse_time(value: Any) -> datetime | None:
    """An aware datetime from ISO 8601 text or epoch seconds; naive means UTC; None when empty."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            return datetime.fromtimestamp(value, UTC)
        except (OverflowError, OSError, ValueError):
            raise ValueError(f"time {value!r} is not a valid epoch timestamp") from None
    if not isinstance(value, str):
        raise ValueError(f"time {value!r} is neither ISO 8601 text nor epoch seconds")
    text = value.strip()
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        try:
            return datetime.fromtimestamp(float(text), UTC)
        except (ValueError, OverflowError, OSError):
            raise ValueError(
                f"time {value!r} is not ISO 8601 (e.g. 2024-05-01T10:00:00Z)"
            ) from None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def validation_reason(exc: ValidationError) -> str:
    """Why an event could not be built, for a person: ``<field>: <message>`` of the first error
    (``row: ...`` when the error is about the event as a whole)."""
    first = exc.errors(include_url=False)[0]
    where = ".".join(str(p) for p in first["loc"]) or "row"
    return f"{where}: {first['msg']}"
