"""The retraining runs' store in PostgreSQL: ``retrain_runs`` (one claimed row per request's
dedupe key), the advisory lock that admits one training at a time, and the claim's lease.

A claim is a lease (``lease_until``), renewed by a :class:`Heartbeat` while the run trains. A
run still ``running`` after its lease expired lost its trainer (SIGKILL, a crashed machine):
the next trainer that meets its request takes the claim over and trains it. A ``failed`` run
(MLflow or PostgreSQL away, say) may be claimed again too, up to ``max_attempts`` tries of its
dedupe key. Anything else already claimed (done, stale) is a duplicate.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from trainer.errors import TrainerError

log = logging.getLogger(__name__)

#: pg_advisory_lock key of "a training is running" (any 64-bit constant works; this is 'ulasanTR').
LOCK_KEY = 0x756C6173616E5452

#: a new claim, or a takeover of a dead run (lease expired) or of a failed one
CLAIM_SQL = """
INSERT INTO retrain_runs AS r
    (run_id, request_id, dedupe_key, reasons, status, lease_until, attempts)
VALUES (%(run_id)s, %(request_id)s, %(key)s, %(reasons)s, 'running',
        now() + make_interval(secs => %(lease_s)s), 1)
ON CONFLICT (dedupe_key) DO UPDATE SET
    run_id = EXCLUDED.run_id, request_id = EXCLUDED.request_id, reasons = EXCLUDED.reasons,
    status = 'running', started_at = now(), finished_at = NULL, duration_s = NULL,
    data_sizes = NULL, scores = NULL, decision = NULL, error = NULL,
    lease_until = EXCLUDED.lease_until, attempts = r.attempts + 1
WHERE r.attempts < %(max_attempts)s AND r.promoted_version IS NULL AND (
    r.status = 'failed'
    OR (r.status = 'running' AND (r.lease_until IS NULL OR r.lease_until < now())))
RETURNING attempts
"""
#: what holds a key that could not be claimed: its status, attempts, seconds of lease left,
#: and whether it left a promotion not yet announced nor forgotten (announce_pending decides)
HOLDER_SQL = """
SELECT status, attempts, greatest(0, extract(epoch FROM lease_until - now()))::float8,
    promoted_version IS NOT NULL AND announced_at IS NULL
FROM retrain_runs WHERE dedupe_key = %s
"""
#: a run that died ``max_attempts`` times is given up on (recorded, never claimed again)
ABANDON_SQL = """
UPDATE retrain_runs SET status = 'failed', finished_at = now(), lease_until = NULL,
    error = coalesce(error || '; ', '') || %s
WHERE dedupe_key = %s AND status = 'running' AND (lease_until IS NULL OR lease_until < now())
"""
RENEW_SQL = """
UPDATE retrain_runs SET lease_until = now() + make_interval(secs => %s)
WHERE run_id = %s AND status = 'running'
"""
FINISH_SQL = """
UPDATE retrain_runs SET status = %s, finished_at = now(), duration_s = %s, data_sizes = %s,
    scores = %s, decision = %s, promoted_version = coalesce(%s, promoted_version), error = %s,
    lease_until = NULL
WHERE run_id = %s
"""
#: before the gate may move the alias: the version it would promote (cleared if it does not)
PROMOTING_SQL = "UPDATE retrain_runs SET promoted_version = %s WHERE run_id = %s"
ANNOUNCED_SQL = """
UPDATE retrain_runs SET announced_at = now(), lease_until = NULL,
    status = CASE WHEN status = 'running' THEN 'done' ELSE status END,
    finished_at = coalesce(finished_at, now()),
    decision = coalesce(decision, %s)
WHERE run_id = %s
"""
UNANNOUNCED_SQL = """
SELECT run_id, promoted_version, status FROM retrain_runs
WHERE promoted_version IS NOT NULL AND announced_at IS NULL
ORDER BY started_at
"""


@dataclass(frozen=True)
class Claim:
    """The outcome of :meth:`RunStore.claim`: ``claimed`` (this run may train: its
    ``attempts``-th try), else the holder's ``status`` and the seconds ``lease_left_s`` until a
    running holder's lease expires (then it may be taken over)."""

    claimed: bool
    attempts: int
    status: str | None = None
    lease_left_s: float = 0.0
    #: the holder left a promotion that is neither announced nor forgotten yet (the registry
    #: did not answer): try again later, never take it for a duplicate
    pending: bool = False

    @property
    def busy(self) -> bool:
        """Held by a run whose lease is still live, or whose promotion is pending: wait, then
        claim again."""
        live = self.status == "running" and self.lease_left_s > 0
        return not self.claimed and (live or self.pending)


@dataclass(frozen=True)
class Unannounced:
    """A run whose promotion was recorded but whose ModelPromoted was never delivered."""

    run_id: str
    version: str
    status: str


@dataclass
class RunRecord:
    """One handled request, as stored in retrain_runs and run.json."""

    run_id: str
    request_id: str
    dedupe_key: str
    reasons: list[str]
    status: str  # done | duplicate | stale | failed | busy (not recorded: try again)
    attempts: int = 1
    #: busy: seconds until the holder's lease expires (then the request is tried again)
    retry_in_s: float | None = None
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

    def claim(self, record: RunRecord, *, lease_s: float, max_attempts: int) -> Claim:
        """Claim ``record``'s dedupe key for ``lease_s`` seconds: new, or taken over from a
        dead run (lease expired) or a failed one, within ``max_attempts`` tries. A dead run
        out of tries is marked failed (given up on) and reported as not claimed."""
        row = self.conn.execute(
            CLAIM_SQL,
            {
                "run_id": record.run_id,
                "request_id": record.request_id,
                "key": record.dedupe_key,
                "reasons": record.reasons,
                "lease_s": lease_s,
                "max_attempts": max_attempts,
            },
        ).fetchone()
        if row is not None:
            record.attempts = int(row[0])
            return Claim(True, record.attempts)
        held = self.conn.execute(HOLDER_SQL, (record.dedupe_key,)).fetchone()
        if held is None:  # deleted in between: claim afresh
            return self.claim(record, lease_s=lease_s, max_attempts=max_attempts)
        status, attempts, left = str(held[0]), int(held[1]), float(held[2] or 0.0)
        if held[3]:
            return Claim(False, attempts, status, left, pending=True)
        if status == "running" and left <= 0 and attempts >= max_attempts:
            self.conn.execute(
                ABANDON_SQL,
                (f"given up: its trainer died {attempts} times", record.dedupe_key),
            )
            status = "failed"
        return Claim(False, attempts, status, left)

    def renew(self, run_id: str, lease_s: float) -> bool:
        """Extend the run's lease to ``lease_s`` from now; False when it is not running."""
        return self.conn.execute(RENEW_SQL, (lease_s, run_id)).rowcount == 1

    def promoting(self, run_id: str, version: str | None) -> None:
        """Record the version the gate is about to promote (None: it did not promote)."""
        self.conn.execute(PROMOTING_SQL, (version, run_id))

    def announced(self, run_id: str, decision: str | None = None) -> None:
        """The run's ModelPromoted was delivered (a run left running by a dead trainer after
        its alias moved becomes done, with ``decision``)."""
        self.conn.execute(ANNOUNCED_SQL, (decision, run_id))

    def unannounced(self) -> list[Unannounced]:
        """Runs whose promotion was recorded but never announced, oldest first."""
        rows = self.conn.execute(UNANNOUNCED_SQL).fetchall()
        return [Unannounced(str(r[0]), str(r[1]), str(r[2])) for r in rows]

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


class Heartbeat:
    """Renews one run's lease every ``lease_s / 3`` on a connection of its own, on a daemon
    thread, until :meth:`stop` (a failed renewal is logged and tried again next beat)."""

    def __init__(self, dsn: str, run_id: str, lease_s: float) -> None:
        self.dsn = dsn
        self.run_id = run_id
        self.lease_s = lease_s
        self.beats = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ulasan-lease", daemon=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        store: RunStore | None = None
        while not self._stop.wait(self.lease_s / 3.0):
            try:
                if store is None:
                    store = RunStore(self.dsn)
                store.renew(self.run_id, self.lease_s)
                self.beats += 1
            except (psycopg.Error, TrainerError) as exc:
                log.warning("cannot renew the lease of run %s: %s", self.run_id, exc)
                if store is not None:
                    store.close()
                store = None
        if store is not None:
            store.close()
