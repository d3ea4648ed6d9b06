"""Dead letters always fit in one Kafka message: oversize values are cut, with size and hash."""

from __future__ import annotations

import hashlib

import pytest

from schemas.codec import decode, encode
from schemas.events import DeadLetter
from stream_processors.dlq import MAX_REASON_CHARS, Rejection, dead_letter
from stream_processors.settings import DLQ_MAX_PAYLOAD_BYTES, WorkerConfig

#: faust's producer_max_request_size default: a larger message is refused on every retry
PRODUCER_MAX_REQUEST = 1_000_000


def letter(
    payload: bytes, key: bytes | None = b"k", detail: str = "too long", **kw: int
) -> DeadLetter:
    return dead_letter(
        payload,
        key=key,
        topic="reviews.raw.v1",
        partition=3,
        offset=41,
        rejection=Rejection("text_too_long", detail),
        stage="clean",
        **kw,
    )


def test_a_small_record_is_kept_whole_with_its_size_and_hash() -> None:
    d = letter(b'{"review_id": "r"}', max_payload_bytes=DLQ_MAX_PAYLOAD_BYTES)
    assert (d.payload, d.key, d.truncated) == (b'{"review_id": "r"}', b"k", False)
    assert d.payload_size == 18
    assert d.payload_sha256 == hashlib.sha256(b'{"review_id": "r"}').hexdigest()


def test_an_oversize_record_is_cut_and_still_identified() -> None:
    big = b"x" * 800_000
    d = letter(big, max_payload_bytes=DLQ_MAX_PAYLOAD_BYTES)
    assert d.truncated
    assert d.payload == big[:DLQ_MAX_PAYLOAD_BYTES]
    assert (d.payload_size, d.payload_sha256) == (len(big), hashlib.sha256(big).hexdigest())
    assert decode(encode(d), DeadLetter) == d  # the round trip keeps every field


LARGEST_LIMIT = next(
    m.le for m in WorkerConfig.model_fields["dlq_max_payload_bytes"].metadata if hasattr(m, "le")
)


@pytest.mark.parametrize("limit", [DLQ_MAX_PAYLOAD_BYTES, LARGEST_LIMIT])
def test_the_largest_dead_letter_fits_under_the_producer_limit(limit: int) -> None:
    # value and key of the largest record Kafka lets in, and a reason quoting it
    d = letter(
        b"\xff" * 1_048_576, key=b"k" * 1_048_576, detail="y" * 100_000, max_payload_bytes=limit
    )
    assert d.truncated and len(d.reason) == MAX_REASON_CHARS
    assert len(encode(d)) < PRODUCER_MAX_REQUEST - 10_000  # room for the key and headers


def test_without_a_limit_nothing_is_cut() -> None:
    d = letter(b"x" * 300_000)
    assert not d.truncated and len(d.payload) == 300_000
