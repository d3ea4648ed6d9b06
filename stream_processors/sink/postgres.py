"""Batched, idempotent writes into PostgreSQL through a psycopg pool, retried with backoff."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

import psycopg
from psycopg_pool import AsyncConnectionPool, PoolClosed, PoolTimeout

from stream_processors.errors import SinkRejected, SinkUnavailable
from stream_processors.metrics import WorkerMetrics
from stream_processors.settings import WorkerConfig
from stream_processors.sink.rows import INSERT_SQL, RowBatch
from ulasan.core.retry import backoff

log = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[None]]


class PostgresSink:
    """Writes :class:`RowBatch` es in one transaction each; every row is ``ON CONFLICT DO NOTHING``.

    ``write`` returns only once the batch is committed (or some of its records were refused
    for what they are and must be dead-lettered); while PostgreSQL is unreachable it retries
    forever with exponential backoff, so the calling agent stops consuming (backpressure)
    instead of dropping or crashing.
    """

    def __init__(
        self,
        dsn: str,
        config: WorkerConfig,
        metrics: WorkerMetrics,
        *,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._config = config
        self._metrics = metrics
        self._sleep = sleep
        self._pool = AsyncConnectionPool(
            dsn,
            min_size=1,
            max_size=config.pg_pool_size,
            open=False,
            timeout=config.pg_connect_timeout_s,
            check=AsyncConnectionPool.check_connection,
            kwargs={"connect_timeout": max(1, round(config.pg_connect_timeout_s))},
            name="ulasan-sink",
        )
        self._opened = False
        self._closed = False

    async def open(self) -> None:
        """Start the pool without waiting for PostgreSQL (writes wait and retry instead)."""
        if not self._opened and not self._closed:
            await self._pool.open(wait=False)
            self._opened = True

    async def close(self) -> None:
        """Close the pool for good (the worker is stopping): later writes wait to be cancelled."""
        self._closed = True
        if self._opened:
            await self._pool.close()
            self._opened = False

    async def write(self, batch: RowBatch) -> set[int]:
        """Commit ``batch``; return the source indexes whose rows PostgreSQL refused (if any).

        When the whole-batch transaction is refused for a row's content (a data or constraint
        error), each source's rows are written in their own transaction so only the offending
        sources are returned; every other row is committed.
        """
        if not len(batch):
            return set()
        if self._closed:
            # The worker is shutting down and closed the sink before its agents stopped: this
            # batch is neither written nor acked (it is read again after the restart). Raising
            # would crash the agent, and faust's supervisor restarting it held a shutdown for
            # 60 s in CI; wait to be cancelled with the agent instead.
            log.info("the sink is closed (shutting down): a batch of %d rows waits", len(batch))
            await asyncio.Future()
        await self.open()
        try:
            await self._retrying(lambda: self._write_once(batch))
            return set()
        except SinkRejected as exc:
            log.warning("PostgreSQL refused a batch (%s); writing its records one by one", exc)
        rejected: set[int] = set()
        sources = sorted({s for srcs in batch.sources.values() for s in srcs})
        for src in sources:
            single = batch.without(set(sources) - {src})
            try:
                await self._retrying(lambda single=single: self._write_once(single))  # type: ignore[misc]
            except SinkRejected as exc:
                log.error("PostgreSQL refused record %d of the batch: %s", src, exc)
                rejected.add(src)
        return rejected

    async def _retrying(self, attempt: Callable[[], Awaitable[None]]) -> None:
        delays = backoff(self._config.pg_retry_initial_s, self._config.pg_retry_max_s)
        failures = 0
        while True:
            try:
                await attempt()
            except SinkUnavailable as exc:
                failures += 1
                delay = next(delays)
                self._metrics.stream_errors.labels("sink", "postgres_unavailable").inc()
                log.warning(
                    "PostgreSQL is unavailable (attempt %d: %s); consuming is paused, "
                    "retrying in %.1fs",
                    failures,
                    exc,
                    delay,
                )
                await self._sleep(delay)
            else:
                if failures:
                    log.info("PostgreSQL is back after %d failed attempts", failures)
                return

    async def _write_once(self, batch: RowBatch) -> None:
        t0 = time.perf_counter()
        try:
            async with self._pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
                for table, rows in batch.rows.items():
                    await cur.executemany(INSERT_SQL[table], rows)
        except (psycopg.DataError, psycopg.IntegrityError) as exc:
            raise SinkRejected(f"{type(exc).__name__}: {exc}".strip()) from exc
        except psycopg.ProgrammingError as exc:
            # A missing table or column is a deployment problem, not a bad record: keep the
            # records and wait for the schema to be migrated.
            raise SinkUnavailable(
                f"{type(exc).__name__}: {exc} (are the migrations applied? run `ulasan stack up`)"
            ) from exc
        except (psycopg.OperationalError, psycopg.InterfaceError, PoolTimeout, PoolClosed) as exc:
            raise SinkUnavailable(f"{type(exc).__name__}: {exc}".strip()) from exc
        except psycopg.Error as exc:
            # Anything else PostgreSQL says is retried too: records are never dropped for it.
            raise SinkUnavailable(f"{type(exc).__name__}: {exc}".strip()) from exc
        self._metrics.sink_write_seconds.observe(time.perf_counter() - t0)
        for table, rows in batch.rows.items():
            self._metrics.sink_rows.labels(table).inc(len(rows))
