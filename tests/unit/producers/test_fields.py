"""Field values into event values: ratings, times, and the reason an event is invalid."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from producers.fields import parse_rating, parse_time, validation_reason
from schemas.events import LabelFeedback, ReviewReceived


@pytest.mark.parametrize(
    ("value", "expected"),
    [("5", 5), (" 1 ", 1), ("3.0", 3), (4, 4), ("", None), (None, None)],
)
def test_parse_rating_accepts(value, expected):
    assert parse_rating(value) == expected


@pytest.mark.parametrize("value", ["0", "6", "2.5", "bintang", True, "nan"])
def test_parse_rating_rejects(value):
    with pytest.raises(ValueError):
        parse_rating(value)


def test_parse_time_forms():
    assert parse_time("2024-05-01 10:00").isoformat() == "2024-05-01T10:00:00+00:00"
    assert parse_time("2024-05-01T10:00:00+07:00").utcoffset().total_seconds() == 7 * 3600
    assert parse_time(0).isoformat() == "1970-01-01T00:00:00+00:00"
    assert parse_time("") is None
    with pytest.raises(ValueError):
        parse_time("besok")


def test_validation_reason_names_the_field():
    with pytest.raises(ValidationError) as caught:
        LabelFeedback(feedback_id="f", review_id="", label="positive", source="human")
    assert validation_reason(caught.value).startswith("review_id: ")


def test_validation_reason_of_a_whole_event_error_says_row():
    with pytest.raises(ValidationError) as caught:
        ReviewReceived(review_id="r", source="replay", text="   ")
    assert validation_reason(caught.value).startswith("row: ")
