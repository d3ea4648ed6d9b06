"""BatchGuard: a batch body that fails is retried, taken apart, dead-lettered, or withheld."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest
from faust.transport import consumer as base
from faust.types.tuples import TP

from stream_processors.dlq import PROCESSING_FAILED
from stream_processors.kafka import compat
from stream_processors.kafka.guard import BatchGuard, withhold
from stream_processors.metrics import WorkerMetrics
from stream_processors.records import Rejected
from tests.helpers import faust_objects

TP_RAW = TP("t.reviews.raw.v1", 2)


class Letters:
    """Records dead letters; fails the first ``failures`` calls like a producer in trouble."""

    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.sent: list[tuple[Rejected, str]] = []

    async def dead_letter(self, rejected: Rejected, *, stage: str) -> None:
        if self.failures:
            self.failures -= 1
            raise RuntimeError("producer unavailable")
        self.sent.append((rejected, stage))


def events(n: int) -> list[Any]:
    """``n`` real faust events of partition 2, delivered (in flight) on a real consumer."""
    app = faust_objects.app()
    consumer = faust_objects.consumer(app)
    out = []
    for i in range(n):
        message = faust_objects.message(TP_RAW, 100 + i, value=f"payload-{100 + i}".encode())
        consumer.track_message(message)
        out.append(faust_objects.event(app, message))
    return out


def guard(letters: Letters, metrics: WorkerMetrics, sleeps: list[float]) -> BatchGuard:
    async def sleep(s: float) -> None:
        sleeps.append(s)

    return BatchGuard("infer", letters, metrics, attempts=3, initial_s=0.5, sleep=sleep)  # type: ignore[arg-type]


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_a_transient_failure_is_retried_with_backoff_and_nothing_is_dead_lettered() -> None:
    batch, letters, metrics, sleeps = events(4), Letters(), WorkerMetrics(), []
    calls: list[list[int]] = []

    async def body(evs: Sequence[Any]) -> None:
        calls.append([e.message.offset for e in evs])
        if len(calls) < 3:
            raise TimeoutError("producer queue full")

    run(guard(letters, metrics, sleeps).run(batch, body))
    assert calls == [[100, 101, 102, 103]] * 3
    assert sleeps == [0.5, 1.0] and letters.sent == []
    assert metrics.stream_errors.labels("infer", "TimeoutError")._value.get() == 2


def test_a_poison_record_is_dead_lettered_and_the_rest_of_the_batch_is_processed() -> None:
    batch, letters, metrics, sleeps = events(4), Letters(), WorkerMetrics(), []
    done: list[int] = []

    async def body(evs: Sequence[Any]) -> None:
        if any(e.message.offset == 102 for e in evs):
            raise ValueError("cannot handle 102")
        done.extend(e.message.offset for e in evs)

    run(guard(letters, metrics, sleeps).run(batch, body))
    assert done == [100, 101, 103]
    [(rejected, stage)] = letters.sent
    assert stage == "infer"
    assert rejected.rejection.reason == PROCESSING_FAILED
    assert rejected.rejection.detail == "ValueError: cannot handle 102"
    assert (rejected.record.offset, rejected.record.partition) == (102, 2)
    assert rejected.record.value == b"payload-102" and rejected.record.key == b"k"


def test_a_dead_letter_that_cannot_be_written_is_retried_until_it_is() -> None:
    batch, letters, metrics, sleeps = events(1), Letters(failures=2), WorkerMetrics(), []

    async def body(evs: Sequence[Any]) -> None:
        raise ValueError("always")

    run(guard(letters, metrics, sleeps).run(batch, body))
    assert len(letters.sent) == 1
    # 2 retries of the batch (= the event alone), 2 of the dead letter
    assert sleeps == [0.5, 1.0, 0.5, 1.0]


def test_a_cancelled_batch_is_withheld_from_commits() -> None:
    batch, letters, metrics, sleeps = events(3), Letters(), WorkerMetrics(), []
    consumer = faust_objects.consumer(batch[0].app)

    async def body(evs: Sequence[Any]) -> None:
        raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        run(guard(letters, metrics, sleeps).run(batch, body))
    # acked without telling the consumer: take_events' closing ack is a no-op, the offsets
    # never become committable, and a shutdown does not wait for them
    assert all(e.message.acked for e in batch)
    assert compat.in_flight(consumer) == {}
    assert letters.sent == []
    # the ack take_events sends for them on the way out records nothing to commit
    assert not any(base.Consumer.ack(consumer, e.message) for e in batch)
    assert compat.acked_offsets(consumer, TP_RAW) == []


def test_withhold_leaves_other_records_in_flight() -> None:
    batch = events(3)
    withhold(batch[:1])
    assert compat.in_flight(faust_objects.consumer(batch[0].app)) == {TP_RAW: {101, 102}}


def test_attempts_must_be_positive() -> None:
    with pytest.raises(ValueError, match="attempts"):
        BatchGuard("clean", Letters(), WorkerMetrics(), attempts=0)  # type: ignore[arg-type]
