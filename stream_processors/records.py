"""Kafka records as plain values, decoded with ``schemas.codec`` or rejected with a reason."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from schemas.codec import CodecError, decode
from schemas.events import Event
from stream_processors.dlq import Rejection, classify

E = TypeVar("E", bound=Event)


@dataclass(frozen=True, slots=True)
class Record:
    """One consumed record: raw key and value bytes and where they came from.

    ``timestamp`` is the Kafka record timestamp in seconds since the epoch (None if unknown);
    ``time_in`` is when faust's consumer received it (``Message.time_in``: ``time.monotonic()``
    seconds, set by faust's monitor before the record goes to the streams; None if unknown).
    """

    key: bytes | None
    value: Any
    topic: str
    partition: int
    offset: int
    timestamp: float | None = None
    time_in: float | None = None

    @classmethod
    def from_event(cls, event: Any) -> Record:
        """The record behind a faust ``EventT`` (its message carries topic, partition, offset)."""
        message = event.message
        return cls(
            key=event.key,
            value=event.value,
            topic=message.topic,
            partition=int(message.partition or 0),
            offset=int(message.offset or 0),
            timestamp=message.timestamp,
            time_in=message.time_in,
        )


@dataclass(frozen=True, slots=True)
class Decoded(Generic[E]):
    record: Record
    event: E


@dataclass(frozen=True, slots=True)
class Rejected:
    record: Record
    rejection: Rejection


def decode_records(
    records: Iterable[Record], model: type[E]
) -> tuple[list[Decoded[E]], list[Rejected]]:
    """Split ``records`` into decoded events and rejections (order kept within each list)."""
    good: list[Decoded[E]] = []
    bad: list[Rejected] = []
    for record in records:
        try:
            good.append(Decoded(record, decode(record.value, model)))
        except CodecError as exc:
            bad.append(Rejected(record, classify(exc)))
    return good, bad


def records_of(events: Sequence[Any]) -> list[Record]:
    """``Record.from_event`` for each faust event."""
    return [Record.from_event(e) for e in events]
