"""The PostgreSQL sink backs off exponentially while the server is unreachable, and never drops."""

from __future__ import annotations

import asyncio

import pytest

from stream_processors.feedback.store import LoopStore
from stream_processors.metrics import WorkerMetrics
from stream_processors.settings import WorkerConfig
from stream_processors.sink.postgres import PostgresSink
from stream_processors.sink.rows import REVIEWS, RowBatch
from tests.helpers.stream_env import free_port


class GiveUp(Exception):
    """Raised by the test's sleep to end the otherwise endless retry loop."""


def test_unreachable_postgres_is_retried_with_capped_exponential_backoff() -> None:
    config = WorkerConfig(pg_retry_initial_s=0.1, pg_retry_max_s=0.5, pg_connect_timeout_s=0.3)
    metrics = WorkerMetrics()
    delays: list[float] = []

    async def sleep(seconds: float) -> None:
        delays.append(seconds)
        if len(delays) == 5:
            raise GiveUp

    # nothing listens on this port: every connection attempt is refused
    dsn = f"postgresql://ulasan@127.0.0.1:{free_port()}/ulasan"
    sink = PostgresSink(dsn, config, metrics, sleep=sleep)
    batch = RowBatch()
    batch.add(REVIEWS, ("r1", "test", None, "teks", None, None, None), 0)

    async def main() -> None:
        try:
            with pytest.raises(GiveUp):
                await sink.write(batch)
        finally:
            await sink.close()

    asyncio.run(main())
    assert delays == [0.1, 0.2, 0.4, 0.5, 0.5]
    failures = metrics.stream_errors.labels("sink", "postgres_unavailable")._value.get()
    assert failures == 5
    assert metrics.sink_rows.labels(REVIEWS)._value.get() == 0


def test_an_empty_batch_needs_no_database() -> None:
    sink = PostgresSink("postgresql://nobody@127.0.0.1:1/none", WorkerConfig(), WorkerMetrics())
    assert asyncio.run(sink.write(RowBatch())) == set()


def test_a_write_after_close_waits_to_be_cancelled_instead_of_crashing_the_agent() -> None:
    dsn = f"postgresql://ulasan@127.0.0.1:{free_port()}/ulasan"
    sink = PostgresSink(dsn, WorkerConfig(), WorkerMetrics())
    batch = RowBatch()
    batch.add(REVIEWS, ("r1", "test", None, "teks", None, None, None), 0)

    async def main() -> None:
        await sink.open()
        await sink.close()  # the worker's shutdown hook, while an agent still holds a batch
        await sink.open()  # a closed sink never reopens its pool
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(sink.write(batch), timeout=0.3)

    asyncio.run(main())


def test_the_loop_store_closed_for_shutdown_waits_instead_of_raising() -> None:

    store = LoopStore(f"postgresql://ulasan@127.0.0.1:{free_port()}/ulasan")

    async def main() -> None:
        await store.open()
        await store.close()

        async def attempt() -> int:
            raise AssertionError("a closed store must not be used")

        with pytest.raises(TimeoutError):
            await asyncio.wait_for(store._retrying("feedback", attempt), timeout=0.3)

    asyncio.run(main())
