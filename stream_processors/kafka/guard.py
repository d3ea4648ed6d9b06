"""Every consumed batch is either finished or kept: an agent body never lets events go unprocessed.

faust's ``Stream.take_events`` acks a batch when the agent's loop moves on, *whatever happened
in the body*: an exception escaping the body (a producer timeout, a bug) would ack, and so
commit, events that were never stored or published, and the agent would restart past them.
``BatchGuard.run`` closes that hole:

- the batch is retried with backoff (its steps are idempotent: rows upsert, events carry their
  id), so a transient failure costs a delay, never the records;
- a batch that keeps failing is taken apart: each event is tried on its own, and only an event
  that still fails is dead-lettered (``processing_failed``, with its payload and offset), so one
  poison record cannot stall a partition and the rest of the batch goes on;
- if even the dead letter cannot be written, it is retried until it is (back-pressure);
- an attempt succeeds only once every message it sent was delivered (``kafka.delivery``): faust
  merely logs a failed delivery, so without the wait the batch would be acked and its output
  lost;
- if the body is cancelled (shutdown, a rebalance's stop), the unfinished events are *withheld*:
  their acks become no-ops, so their offsets are never committed and the next owner of the
  partition reads them again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from stream_processors.dlq import PROCESSING_FAILED, Rejection
from stream_processors.kafka import compat, delivery
from stream_processors.records import Record, Rejected
from ulasan.core.retry import backoff

if TYPE_CHECKING:
    from stream_processors.metrics import WorkerMetrics

log = logging.getLogger(__name__)

Body = Callable[[Sequence[Any]], Awaitable[None]]


class DeadLetters(Protocol):
    """Where a record that keeps failing goes (``wiring.Outputs`` in the worker)."""

    async def dead_letter(self, rejected: Rejected, *, stage: str) -> None: ...


def withhold(events: Sequence[Any]) -> None:
    """Make ``events`` (faust events) never committable by this worker: they are read again
    after a restart or by the partition's next owner.

    Marks each message acked *without* recording the ack (:func:`compat.withhold`), so the ack
    ``take_events`` sends on the way out is a no-op and the commit stops before the first
    withheld offset; the message also leaves the consumer's unacked set, so a shutdown does
    not wait for it. This answers faust acking a batch whatever its body did
    (robinhood/faust#604, faust-streaming#527).
    """
    for event in events:
        compat.withhold(event.app.consumer, event.message)


class BatchGuard:
    """Runs an agent's batch body so that its events are processed, dead-lettered or withheld.

    ``attempts`` tries (with exponential backoff from ``initial_s`` up to ``max_s``) for the
    whole batch, then the same for each event alone. ``sleep`` is injectable for tests.
    """

    def __init__(
        self,
        stage: str,
        outputs: DeadLetters,
        metrics: WorkerMetrics,
        *,
        attempts: int = 3,
        initial_s: float = 0.5,
        max_s: float = 30.0,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ) -> None:
        if attempts < 1:
            raise ValueError("attempts must be at least 1")
        self.stage = stage
        self._outputs = outputs
        self._metrics = metrics
        self._attempts = attempts
        self._initial_s = initial_s
        self._max_s = max_s
        self._sleep = sleep

    async def run(self, events: Sequence[Any], body: Body) -> None:
        """Process ``events`` with ``body``; return once each is done or dead-lettered."""
        try:
            failure = await self._attempt(events, body)
            if failure is None:
                return
            if len(events) == 1:
                await self._dead_letter(events[0], failure)
                return
            log.error(
                "%s: a batch of %d failed %d times (%s); processing its records one by one",
                self.stage,
                len(events),
                self._attempts,
                failure,
            )
            for event in events:
                alone = await self._attempt([event], body)
                if alone is not None:
                    await self._dead_letter(event, alone)
        except BaseException:
            # Cancelled (or worse) half way: nothing of this batch may be committed.
            withhold(events)
            raise

    async def _attempt(self, events: Sequence[Any], body: Body) -> str | None:
        """None once ``body(events)`` succeeded; the last failure after ``attempts`` tries."""
        delays = backoff(self._initial_s, self._max_s)
        failure = ""
        for attempt in range(1, self._attempts + 1):
            try:
                with delivery.collect() as sent:
                    await body(events)
                    await sent.wait()  # a failed delivery fails the attempt (no ack)
                return None
            except Exception as exc:
                failure = f"{type(exc).__name__}: {exc}"
                self._metrics.stream_errors.labels(self.stage, type(exc).__name__).inc()
                log.warning(
                    "%s: processing %d record(s) failed (attempt %d of %d): %s",
                    self.stage,
                    len(events),
                    attempt,
                    self._attempts,
                    failure,
                    exc_info=attempt == self._attempts,
                )
            if attempt < self._attempts:
                await self._sleep(next(delays))
        return failure

    async def _dead_letter(self, event: Any, failure: str) -> None:
        rejected = Rejected(Record.from_event(event), Rejection(PROCESSING_FAILED, failure))
        for delay in backoff(self._initial_s, self._max_s):
            try:
                with delivery.collect() as sent:
                    await self._outputs.dead_letter(rejected, stage=self.stage)
                    await sent.wait()
                return
            except Exception as exc:
                log.error(
                    "%s: could not dead-letter %s[%d]@%d (%r); retrying in %.1fs",
                    self.stage,
                    rejected.record.topic,
                    rejected.record.partition,
                    rejected.record.offset,
                    exc,
                    delay,
                )
                await self._sleep(delay)
