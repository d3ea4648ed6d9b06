"""Dead-letter classification: every kind of bad input gets its own reason code."""

from __future__ import annotations

import base64
import json

import pytest

from schemas.codec import decode
from schemas.events import MAX_TEXT_CHARS, DeadLetter, ReviewReceived
from stream_processors.dlq import Rejection, classify, dead_letter


def _reason(payload: bytes) -> str:
    with pytest.raises(Exception) as info:
        decode(payload, ReviewReceived)
    return classify(info.value).reason


def _review(**fields: object) -> bytes:
    base: dict[str, object] = {"review_id": "r1", "source": "test", "text": "bagus sekali"}
    base.update(fields)
    return json.dumps({k: v for k, v in base.items() if v is not ...}).encode()


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"\xff\xfe", "invalid_utf8"),
        (b"{not json", "invalid_json"),
        (b"[1, 2]", "not_an_object"),
        (b"", "empty"),
        (_review(text=""), "empty_text"),
        (_review(text="   \n\t"), "empty_text"),
        (_review(text="a" * (MAX_TEXT_CHARS + 1)), "text_too_long"),
        (_review(text=42), "wrong_type"),
        (_review(rating="lima"), "wrong_type"),
        (_review(review_id=...), "missing_field"),
        (_review(user_name="someone"), "unknown_field"),
        (_review(rating=9), "schema_violation"),
        (_review(schema_version=2), "unsupported_schema_version"),
    ],
)
def test_every_bad_input_has_its_reason(payload: bytes, reason: str) -> None:
    assert _reason(payload) == reason


def test_text_at_the_limit_is_valid() -> None:
    event = decode(_review(text="a" * MAX_TEXT_CHARS), ReviewReceived)
    assert len(event.text) == MAX_TEXT_CHARS


def test_dead_letter_keeps_the_original_bytes_and_origin() -> None:
    payload = b"\xff\x00 not utf-8"
    letter = dead_letter(
        payload,
        key=b"k1",
        topic="reviews.raw.v1",
        partition=3,
        offset=41,
        rejection=Rejection("invalid_utf8", "byte 0 is not valid UTF-8"),
        stage="clean",
    )
    assert letter.payload == payload
    assert base64.b64decode(letter.key_b64 or "") == b"k1"
    assert (letter.source_topic, letter.partition, letter.offset) == ("reviews.raw.v1", 3, 41)
    assert letter.error_type == "invalid_utf8"
    assert letter.reason.startswith("invalid_utf8: ")
    assert letter.stage == "clean"
    # it survives its own codec round trip
    again = DeadLetter.model_validate_json(letter.model_dump_json())
    assert again.payload == payload


def test_dead_letter_without_key() -> None:
    letter = dead_letter(
        b"x",
        key=None,
        topic="t",
        partition=0,
        offset=0,
        rejection=Rejection("empty", "e"),
        stage="s",
    )
    assert letter.key_b64 is None
