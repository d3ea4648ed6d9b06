"""A batch waits for the delivery of what it sent: a failed delivery fails the attempt."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest

from stream_processors.dlq import PROCESSING_FAILED
from stream_processors.kafka import delivery
from stream_processors.kafka.guard import BatchGuard
from stream_processors.metrics import WorkerMetrics
from tests.unit.stream_processors.test_guard import Letters, events


def later(result: object = None, error: BaseException | None = None) -> asyncio.Future[Any]:
    """A delivery future settled on a later loop turn, as aiokafka's are."""
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[Any] = loop.create_future()
    if error is not None:
        loop.call_later(0.01, fut.set_exception, error)
    else:
        loop.call_later(0.01, fut.set_result, result)
    return fut


def test_sends_outside_a_batch_are_not_tracked_and_a_batch_sees_only_its_own() -> None:
    async def main() -> None:
        delivery.track(later())  # no batch: ignored
        with delivery.collect() as sent:
            fut = later()
            delivery.track(fut)
            delivery.track(fut)  # the producer and Outputs may both report one send
            delivery.track("not a future")
            assert len(sent) == 1
            await sent.wait()

    asyncio.run(main())


def test_a_failed_delivery_raises_naming_it() -> None:
    async def main() -> None:
        with delivery.collect() as sent:
            delivery.track(later())
            delivery.track(later(error=RuntimeError("MessageSizeTooLargeError")))
            with pytest.raises(delivery.DeliveryFailed, match="1 of 2 .*MessageSizeTooLarge"):
                await sent.wait()

    asyncio.run(main())


def test_the_guard_retries_a_batch_whose_delivery_failed_and_acks_only_after_delivery() -> None:
    sleeps: list[float] = []
    calls: list[int] = []

    async def sleep(s: float) -> None:
        sleeps.append(s)

    async def body(batch: Sequence[Any]) -> None:
        calls.append(len(batch))
        # the first attempt's send is refused by the broker after it was queued
        delivery.track(
            later(error=RuntimeError("NotEnoughReplicas")) if len(calls) == 1 else later()
        )

    async def main() -> None:
        guard = BatchGuard("clean", Letters(), WorkerMetrics(), attempts=3, sleep=sleep)  # type: ignore[arg-type]
        await guard.run(events(4), body)

    asyncio.run(main())
    assert calls == [4, 4] and sleeps == [0.5]


def test_a_record_whose_delivery_always_fails_is_dead_lettered_with_the_reason() -> None:
    letters = Letters()

    async def sleep(s: float) -> None:
        return None

    async def body(batch: Sequence[Any]) -> None:
        for e in batch:
            bad = e.message.offset == 101
            delivery.track(later(error=RuntimeError("RecordTooLarge")) if bad else later())

    async def main() -> None:
        guard = BatchGuard("infer", letters, WorkerMetrics(), attempts=2, sleep=sleep)  # type: ignore[arg-type]
        await guard.run(events(3), body)

    asyncio.run(main())
    assert [(r.record.offset, r.rejection.reason) for r, _ in letters.sent] == [
        (101, PROCESSING_FAILED)
    ]
    assert "DeliveryFailed" in letters.sent[0][0].rejection.detail
