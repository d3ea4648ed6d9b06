"""PostgreSQL side of the closed loop: feedback rows, the join, drift reports (async, retried)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

import psycopg
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from schemas.events import DriftReport, LabelFeedback
from stream_processors.feedback.logic import (
    INSERT_FEEDBACK,
    JOIN_BY_IDS,
    RECONCILE,
    Outcome,
    feedback_row,
    outcomes,
)
from ulasan.core.retry import backoff

log = logging.getLogger(__name__)
T = TypeVar("T")

INSERT_DRIFT_REPORT = (
    "INSERT INTO drift_reports (report_id, window_start, window_end, n_events, model_version, "
    "drift_score, drifted, signals) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) "
    "ON CONFLICT (report_id) DO NOTHING"
)


class LoopStore:
    """A small pool for the feedback and drift agents; every call retries while PostgreSQL is
    away (capped exponential backoff), so the agent pauses instead of losing a record."""

    def __init__(
        self,
        dsn: str,
        *,
        pool_size: int = 1,
        connect_timeout_s: float = 5.0,
        retry_initial_s: float = 0.2,
        retry_max_s: float = 10.0,
    ) -> None:
        self.pool = AsyncConnectionPool(
            dsn,
            min_size=1,
            max_size=max(1, pool_size),
            open=False,
            timeout=connect_timeout_s,
            kwargs={"connect_timeout": int(max(1, connect_timeout_s))},
        )
        self.retry_initial_s = retry_initial_s
        self.retry_max_s = retry_max_s
        self._closed = False

    async def open(self) -> None:
        await self.pool.open(wait=False)

    async def close(self) -> None:
        """Close the pool for good (the worker is stopping): later calls wait to be cancelled."""
        self._closed = True
        await self.pool.close()

    async def _wait_for_shutdown(self, what: str) -> None:
        # Closed before the agents stopped: raising would crash the agent and faust's
        # supervisor would restart it mid-shutdown (seen holding a worker's stop for 60 s).
        log.info("%s: the store is closed (shutting down); waiting to be cancelled", what)
        await asyncio.Future()

    async def _retrying(self, what: str, attempt: Callable[[], Awaitable[T]]) -> T:
        for delay in backoff(self.retry_initial_s, self.retry_max_s):
            if self._closed:
                await self._wait_for_shutdown(what)
            try:
                return await attempt()
            except (psycopg.OperationalError, psycopg.errors.SerializationFailure) as exc:
                log.warning("%s: PostgreSQL unavailable (%s); retrying in %.1fs", what, exc, delay)
            except psycopg.errors.DeadlockDetected as exc:
                log.warning("%s: deadlock (%s); retrying", what, exc)
            except Exception as exc:
                if self._closed:
                    continue  # closed meanwhile: wait for the cancellation above
                if type(exc).__name__ == "PoolTimeout":
                    log.warning("%s: no PostgreSQL connection; retrying in %.1fs", what, delay)
                else:
                    raise
            await asyncio.sleep(delay)
        raise AssertionError("backoff() never ends")

    async def record_feedback(self, events: Sequence[LabelFeedback]) -> list[Outcome]:
        """Store ``events`` (idempotent) and join them to their predictions; the outcomes."""

        async def attempt() -> list[Outcome]:
            ids = sorted({e.review_id for e in events})
            async with (
                self.pool.connection() as conn,
                conn.transaction(),
                conn.cursor() as cur,
            ):
                await cur.executemany(INSERT_FEEDBACK, [feedback_row(e) for e in events])
                await cur.execute(JOIN_BY_IDS, {"ids": ids})
                return outcomes(await cur.fetchall())

        return await self._retrying("feedback write", attempt)

    async def reconcile(self, lookback_s: float = 3600.0) -> list[Outcome]:
        """Join feedback that came before its prediction (the prediction is stored now)."""

        async def attempt() -> list[Outcome]:
            async with self.pool.connection() as conn, conn.transaction():
                cur = await conn.execute(RECONCILE, {"lookback_s": lookback_s})
                return outcomes(await cur.fetchall())

        return await self._retrying("feedback reconcile", attempt)

    async def write_report(self, report: DriftReport) -> None:
        """One drift_reports row (a replayed report is a no-op)."""

        async def attempt() -> None:
            async with self.pool.connection() as conn:
                await conn.execute(
                    INSERT_DRIFT_REPORT,
                    (
                        report.report_id,
                        report.window_start,
                        report.window_end,
                        report.n_events,
                        report.model_version,
                        report.drift_score,
                        report.drifted,
                        Jsonb([s.model_dump(mode="json") for s in report.signals]),
                    ),
                )

        await self._retrying("drift report write", attempt)
