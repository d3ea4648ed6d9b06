"""Property tests of the codec: whatever bytes or JSON arrive, ``decode`` returns a valid event
or raises :class:`CodecError` (never another exception), and valid events round-trip."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from schemas.codec import TOPIC_EVENTS, CodecError, decode, decode_checked, encode
from schemas.events import (
    LABELS,
    MAX_TEXT_CHARS,
    DeadLetter,
    Event,
    PredictionRequested,
    ReviewReceived,
    SentimentScored,
)

MODELS: list[type[Event]] = sorted({*TOPIC_EVENTS.values(), DeadLetter}, key=lambda m: m.__name__)
NOW = datetime(2026, 1, 1, tzinfo=UTC)

SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40)
)
JSON = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=12), inner, max_size=5)
    ),
    max_leaves=25,
)
FIELD_NAMES = st.sampled_from(
    [
        "review_id",
        "source",
        "text",
        "rating",
        "review_time",
        "ingested_at",
        "schema_version",
        "label",
        "texts",
        "request_id",
        "deadline",
        "probabilities",
        "index",
    ]
)
# raw JSON number literals, some far longer than Python's int-from-string limit (4300 digits)
NUMBER_LITERALS = st.one_of(
    st.from_regex(r"-?[1-9][0-9]{0,20}(\.[0-9]{1,10})?([eE][+-]?[0-9]{1,4})?", fullmatch=True),
    st.integers(min_value=4290, max_value=20_000).map(lambda n: "9" * n),
)


def decodes_or_codec_error(data: bytes, model: type[Event]) -> Event | None:
    try:
        event = decode(data, model)
    except CodecError as exc:
        # the one-pass JSON parse refused it: the checked path gives the same reason
        _same_as_checked(data, model, exc.reason)
        return None
    _same_as_checked(data, model, event)
    return event


def _same_as_checked(data: bytes, model: type[Event], outcome: Event | str) -> None:
    """``decode``'s outcome (an event, or a CodecError's reason) is ``decode_checked``'s."""
    try:
        checked: Event | str = decode_checked(data, model)
    except CodecError as exc:
        checked = exc.reason
    assert checked == outcome


@given(model=st.sampled_from(MODELS), value=JSON)
def test_any_json_value_is_an_event_or_a_codec_error(model: type[Event], value: Any) -> None:
    event = decodes_or_codec_error(json.dumps(value).encode(), model)
    if event is not None:
        assert decode(encode(event), model) == event


@given(
    model=st.sampled_from(MODELS),
    field=FIELD_NAMES,
    literal=NUMBER_LITERALS,
)
def test_any_number_literal_is_an_event_or_a_codec_error(
    model: type[Event], field: str, literal: str
) -> None:
    decodes_or_codec_error(f'{{"{field}": {literal}}}'.encode(), model)


@given(
    field=FIELD_NAMES,
    value=JSON,
    text=st.text(min_size=1, max_size=200).filter(str.strip),
)
def test_a_valid_event_with_one_field_replaced(field: str, value: Any, text: str) -> None:
    base = json.loads(
        encode(ReviewReceived(review_id="r1", source="s", text=text, ingested_at=NOW))
    )
    base[field] = value
    event = decodes_or_codec_error(json.dumps(base).encode(), ReviewReceived)
    if event is not None:
        assert decode(encode(event), ReviewReceived) == event


@given(data=st.binary(max_size=300), model=st.sampled_from(MODELS))
def test_any_bytes_are_an_event_or_a_codec_error(data: bytes, model: type[Event]) -> None:
    decodes_or_codec_error(data, model)


@given(depth=st.integers(min_value=1, max_value=100_000), model=st.sampled_from(MODELS))
def test_deep_nesting_is_a_codec_error(depth: int, model: type[Event]) -> None:
    data = b'{"text": ' + b"[" * depth + b"]" * depth + b"}"
    decodes_or_codec_error(data, model)


@given(
    texts=st.lists(
        st.text(min_size=1, max_size=MAX_TEXT_CHARS).filter(str.strip), min_size=1, max_size=5
    ),
    label=st.sampled_from(LABELS),
    confidence=st.floats(min_value=0, max_value=1),
    index=st.integers(min_value=0, max_value=99),
)
def test_requests_and_replies_round_trip(
    texts: list[str], label: str, confidence: float, index: int
) -> None:
    request = PredictionRequested(request_id="q1", texts=texts, reply_to="gw-1", deadline=NOW)
    assert decode(encode(request), PredictionRequested) == request
    reply = SentimentScored(
        event_id="e1",
        request_id="q1",
        index=index,
        label=label,
        confidence=confidence,
        probabilities={label: confidence},
        model_name="m",
        model_version="1",
        text=texts[0],
    )
    assert decode(encode(reply), SentimentScored) == reply
