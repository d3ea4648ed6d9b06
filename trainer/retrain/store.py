"""The retraining runs' store in PostgreSQL: ``retrain_runs`` (one claimed row per request's
dedupe key) and the advisory lock that admits one training at a time."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from trainer.errors import TrainerError

#: pg_advisory_lock key of "a training is running" (any 64-bit constant works; this is 'ulasanTR').
LOCK_KEY = 0x756C6173616E5452

CLAIM_SQL = """
INSERT INTO retrain_runs (run_id, request_id, dedupe_key, reasons, status)
VALUES (%s, %s, %s, %s, 'running') ON CONFLICT (dedupe_key) DO NOTHING RETURNING run_id
"""
FINISH_SQL = """
UPDATE retrain_runs SET status = %s, finished_at = now(), duration_s = %s, data_sizes = %s,
    scores = %s, decision = %s, promoted_version = %s, error = %s
WHERE run_id = %s
"""


@dataclass
class RunRecord:
    """One handled request, as stored in retrain_runs and run.json."""

    run_id: str
    request_id: str
    dedupe_key: str
    reasons: list[str]
    status: str  # done | duplicate | stale | failed
    started_at: float = field(default_factory=time.time)
    finished_at: float | None = None
    data_sizes: dict[str, int] = field(default_factory=dict)
    scores: dict[str, Any] = field(default_factory=dict)
    decision: str | None = None
    promoted_version: str | None = None
    error: str | None = None

    @property
    def duration_s(self) -> float | None:
        return None if self.finished_at is None else self.finished_at - self.started_at


class RunStore:
    """retrain_runs and the advisory lock, over one dedicated connection."""

    def __init__(self, dsn: str) -> None:
        try:
            self.conn = psycopg.connect(dsn, autocommit=True, connect_timeout=10)
        except psycopg.Error as exc:
            raise TrainerError(
                f"cannot reach PostgreSQL for retrain_runs: {exc} (is the stack up? "
                "`ulasan stack up`)"
            ) from exc

    def lock(self, timeout_s: float) -> None:
        """Block until this process holds the training lock (or fail after ``timeout_s``)."""
        self.conn.execute(f"SET lock_timeout = '{int(timeout_s * 1000)}ms'")
        self.conn.execute("SELECT pg_advisory_lock(%s)", (LOCK_KEY,))
        self.conn.execute("SET lock_timeout = 0")

    def try_lock(self) -> bool:
        row = self.conn.execute("SELECT pg_try_advisory_lock(%s)", (LOCK_KEY,)).fetchone()
        return bool(row and row[0])

    def unlock(self) -> None:
        self.conn.execute("SELECT pg_advisory_unlock(%s)", (LOCK_KEY,))

    def claim(self, record: RunRecord) -> bool:
        """Insert the run; False when its dedupe key was claimed before (a duplicate)."""
        row = self.conn.execute(
            CLAIM_SQL, (record.run_id, record.request_id, record.dedupe_key, record.reasons)
        ).fetchone()
        return row is not None

    def finish(self, record: RunRecord) -> None:
        """Record the run's outcome in its row."""
        self.conn.execute(
            FINISH_SQL,
            (
                record.status,
                record.duration_s,
                Jsonb(record.data_sizes),
                Jsonb(record.scores),
                record.decision,
                record.promoted_version,
                record.error,
                record.run_id,
            ),
        )

    def close(self) -> None:
        self.conn.close()
