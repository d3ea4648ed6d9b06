"""BatchGuard: a batch body that fails is retried, taken apart, dead-lettered, or withheld."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest

from stream_processors.dlq import PROCESSING_FAILED
from stream_processors.guard import BatchGuard, withhold
from stream_processors.metrics import WorkerMetrics
from stream_processors.records import Rejected


@dataclass(eq=False)
class Message:
    offset: int
    topic: str = "t.reviews.raw.v1"
    partition: int = 2
    timestamp: float = 1.0
    acked: bool = False


@dataclass
class Consumer:
    _unacked_messages: set[Any] = field(default_factory=set)


@dataclass
class App:
    consumer: Consumer


@dataclass
class Event:
    message: Message
    app: App
    key: bytes = b"k"

    @property
    def value(self) -> bytes:
        return f"payload-{self.message.offset}".encode()


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


def events(n: int) -> list[Event]:
    app = App(Consumer())
    out = [Event(Message(offset=100 + i), app) for i in range(n)]
    app.consumer._unacked_messages.update(e.message for e in out)
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

    async def body(evs: Sequence[Event]) -> None:
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

    async def body(evs: Sequence[Event]) -> None:
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

    async def body(evs: Sequence[Event]) -> None:
        raise ValueError("always")

    run(guard(letters, metrics, sleeps).run(batch, body))
    assert len(letters.sent) == 1
    # 2 retries of the batch (= the event alone), 2 of the dead letter
    assert sleeps == [0.5, 1.0, 0.5, 1.0]


def test_a_cancelled_batch_is_withheld_from_commits() -> None:
    batch, letters, metrics, sleeps = events(3), Letters(), WorkerMetrics(), []
    consumer = batch[0].app.consumer

    async def body(evs: Sequence[Event]) -> None:
        raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        run(guard(letters, metrics, sleeps).run(batch, body))
    # acked without telling the consumer: take_events' closing ack is a no-op, the offsets
    # never become committable, and a shutdown does not wait for them
    assert all(e.message.acked for e in batch)
    assert consumer._unacked_messages == set()
    assert letters.sent == []


def test_withhold_skips_events_without_a_message() -> None:
    withhold([object()])


def test_attempts_must_be_positive() -> None:
    with pytest.raises(ValueError, match="attempts"):
        BatchGuard("clean", Letters(), WorkerMetrics(), attempts=0)  # type: ignore[arg-type]
