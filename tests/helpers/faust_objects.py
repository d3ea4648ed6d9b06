"""Real faust objects for unit tests: an app on the workers' transport, its consumer, messages.

Nothing here talks to a broker: faust builds its consumer, messages and events without one.
Tests set faust's state through :mod:`stream_processors.kafka.compat`, the same door the
workers use, so a renamed faust attribute fails the compat check instead of passing a fake.
"""

from __future__ import annotations

import uuid
from typing import Any

import faust
from faust.events import Event
from faust.types.tuples import TP, Message

from stream_processors.kafka import transport


def app(*, tables: tuple[str, ...] = ()) -> faust.App:
    """A faust app consuming through :class:`transport.Transport`, with ``tables`` declared."""
    made = faust.App(
        f"ulasan-unit-{uuid.uuid4().hex[:8]}",
        broker="kafka://127.0.0.1:9092",
        store="memory://",
        web_enabled=False,
        autodiscover=False,
    )
    transport.install(made)
    for name in tables:
        made.Table(name)
    return made


def consumer(of: faust.App) -> transport.Consumer:
    made = of.consumer
    assert isinstance(made, transport.Consumer)
    return made


def message(tp: TP, offset: int, *, generation_id: int | None = 1, value: bytes = b"v") -> Message:
    return Message(
        tp.topic, tp.partition, offset, 1.0, 0, None, b"k", value, None, tp=tp,
        generation_id=generation_id,
    )  # fmt: skip


def event(of: faust.App, msg: Message) -> Any:
    """The faust event carrying ``msg`` (what ``take_events`` yields)."""
    return Event(of, msg.key, msg.value, None, msg)
