"""Deliveries a batch waits for: the producer futures of every send made while it ran.

faust's ``Topic.send`` returns once aiokafka has *queued* a message; whether the broker took it
is known later, on the future it returns. faust only logs a failed delivery
(``Topic._on_published``: a warning and ``sensors.on_send_error``), and the consumed batch's
offsets commit anyway (faust flushes the producer before a commit, and a flush does not fail
for a message that failed): the output, or its dead letter, is lost. ``BatchGuard`` therefore
runs each attempt inside :func:`collect` and waits for every send made meanwhile, in the same
task (the worker's producer, ``kafka.transport.Producer``, and ``Outputs.send_bytes`` both call
:func:`track`); a failed delivery fails the attempt, which the guard retries (every write is
idempotent, so a resend at worst repeats an event with the same id on its topic).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from stream_processors.errors import StreamProcessorError

#: The sends of the batch attempt running in this task (None: no batch is collecting).
_pending: ContextVar[dict[int, asyncio.Future[Any]] | None] = ContextVar(
    "ulasan_pending_deliveries", default=None
)


class DeliveryFailed(StreamProcessorError):
    """A message sent while processing a batch was not delivered (the batch must not commit)."""


def track(result: object) -> None:
    """Remember ``result`` (what a send returned) when it is a delivery future and a batch is
    collecting in this task; anything else is ignored."""
    pending = _pending.get()
    if pending is not None and isinstance(result, asyncio.Future):
        pending.setdefault(id(result), result)


class Pending:
    """The delivery futures of one batch attempt."""

    def __init__(self, futures: dict[int, asyncio.Future[Any]]) -> None:
        self._futures = futures

    def __len__(self) -> int:
        return len(self._futures)

    async def wait(self) -> None:
        """Return once every tracked send was delivered; raise :class:`DeliveryFailed` naming
        how many were not and the first error. The futures are never cancelled from here."""
        futures = list(self._futures.values())
        if not futures:
            return
        await asyncio.wait(futures)
        errors = [_error(f) for f in futures]
        failed = [e for e in errors if e is not None]
        if failed:
            raise DeliveryFailed(
                f"{len(failed)} of {len(futures)} message(s) were not delivered: {failed[0]}"
            )


def _error(future: asyncio.Future[Any]) -> str | None:
    if future.cancelled():
        return "the send was cancelled"
    exc = future.exception()
    return None if exc is None else f"{type(exc).__name__}: {exc}"


@contextmanager
def collect() -> Iterator[Pending]:
    """Track the sends made in this task until the block ends; ``Pending.wait`` awaits them."""
    futures: dict[int, asyncio.Future[Any]] = {}
    token = _pending.set(futures)
    try:
        yield Pending(futures)
    finally:
        _pending.reset(token)
