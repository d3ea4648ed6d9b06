"""The PostgreSQL sink backs off exponentially while the server is unreachable, and never drops."""

from __future__ import annotations

import asyncio

import pytest

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
