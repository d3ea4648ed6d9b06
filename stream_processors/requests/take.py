"""Batches of whatever is ready: a lone request is taken at once, never held for a window.

faust's ``Stream.take_events(max, within)`` yields when the buffer is full or when a timer of
``within`` seconds fires, so a lone request waits for the timer (and an idle agent wakes
``1/within`` times a second). :func:`take_ready` uses the same stream hooks (a buffering
processor, passive consumption, manual acks) with another flush rule: it yields as soon as
the buffer holds anything, and everything that arrived while the caller was busy with the
previous batch (up to ``max_``) comes in the next one. Batches therefore form only under load,
from requests that would have waited anyway. Events are acked after the caller is done with
their batch (the ``finally`` of the yield), so offsets commit only for handled requests.
The stream's private hooks are reached through :mod:`stream_processors.kafka.compat`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from stream_processors.kafka import compat

#: How often an idle loop re-checks whether the stream is stopping (seconds).
STOP_CHECK_S = 1.0


async def take_ready(stream: Any, max_: int) -> AsyncIterator[list[Any]]:
    """Yield lists of 1 to ``max_`` faust events from ``stream``: the events buffered so far,
    as soon as there is one. A full buffer holds the stream back until it is taken."""
    if max_ < 1:
        raise ValueError(f"max_ must be >= 1, got {max_}")
    events: list[Any] = []
    ready = asyncio.Event()
    room = asyncio.Event()
    room.set()

    async def add(value: Any) -> Any:
        while len(events) >= max_:  # backpressure: wait until the batch is taken
            room.clear()
            await stream.wait(room)
        event = stream.current_event
        if event is None:
            raise RuntimeError("take_ready found no current event")
        events.append(event)
        ready.set()
        return value

    enable_acks = stream.enable_acks
    stream.enable_acks = False  # acked below, once the caller is done with the batch
    stream.add_processor(add)
    compat.enable_passive(stream, aiter(stream.channel))  # as take_events: in the background
    try:
        while not stream.should_stop:
            await stream.wait_for_stopped(ready, timeout=STOP_CHECK_S)
            if not events:
                continue
            batch = events[:]
            events.clear()
            ready.clear()
            room.set()
            try:
                yield batch
            finally:
                for event in batch:
                    await stream.ack(event)
    finally:
        stream.enable_acks = enable_acks
        compat.remove_processor(stream, add)
