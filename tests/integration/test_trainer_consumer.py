"""The trainer consumer on the real PostgreSQL: one training at a time, duplicates ignored,
claims as leases (a dead run is taken over, a failed one tried again, a live one waited for)."""

from __future__ import annotations

import json
import signal
import threading
import time
import uuid
from collections.abc import Iterator

import httpx
import psycopg
import pytest
from prometheus_client import generate_latest

from schemas.events import RetrainRequested
from tests.helpers.loop_env import fresh_database
from trainer.retrain.config import TrainerSettings
from trainer.retrain.metrics import RetrainMetrics
from trainer.retrain.request import handle
from trainer.retrain.store import Heartbeat, RunRecord, RunStore
from ulasan.core.settings import Settings
from ulasan.procs import child_env, free_port, spawn


@pytest.fixture(name="db", scope="module")
def db_fixture(settings: Settings) -> Iterator[Settings]:
    """The stack's settings on a fresh migrated database of this module's own."""
    with fresh_database(settings) as fresh:
        yield fresh


def record(key: str) -> RunRecord:
    return RunRecord(
        run_id=uuid.uuid4().hex,
        request_id=uuid.uuid4().hex,
        dedupe_key=key,
        reasons=["drift"],
        status="running",
    )


def test_the_lock_admits_one_trainer_at_a_time(db) -> None:  # noqa: ANN001
    a, b = RunStore(db.postgres.dsn), RunStore(db.postgres.dsn)
    try:
        a.lock(10)
        assert not b.try_lock()
        got: list[float] = []
        waiter = threading.Thread(target=lambda: (b.lock(30), got.append(time.monotonic())))
        waiter.start()
        time.sleep(0.5)
        assert not got  # still waiting while a holds it
        released = time.monotonic()
        a.unlock()
        waiter.join(timeout=30)
        assert got and got[0] >= released
        b.unlock()
    finally:
        a.close()
        b.close()


def test_a_duplicate_request_is_ignored_and_never_trains(db, tmp_path) -> None:  # noqa: ANN001
    key = f"test:{uuid.uuid4().hex}"
    store = RunStore(db.postgres.dsn)
    trained: list[str] = []
    ts = TrainerSettings(retrain={"logs_dir": tmp_path}, postgres=db.postgres)
    try:
        assert store.claim(record(key), lease_s=60, max_attempts=3).claimed
        store.finish(done(key, store))
        request = RetrainRequested(request_id=uuid.uuid4().hex, dedupe_key=key, reasons=["drift"])
        result = handle(
            request,
            ts,
            store,
            publish=lambda e: None,
            train=lambda *a: trained.append("called"),
        )
        assert result.status == "duplicate" and not trained
        assert store.try_lock()  # handle() released the lock
        store.unlock()
    finally:
        store.close()
        with psycopg.connect(db.postgres.dsn, autocommit=True) as conn:
            conn.execute("DELETE FROM retrain_runs WHERE dedupe_key = %s", (key,))


def done(key: str, store: RunStore) -> RunRecord:
    """The record of ``key``'s run, finished as done."""
    row = store.conn.execute(
        "SELECT run_id FROM retrain_runs WHERE dedupe_key = %s", (key,)
    ).fetchone()
    assert row is not None
    r = record(key)
    r.run_id, r.status, r.finished_at = row[0], "done", time.time()
    return r


def lease_left(store: RunStore, key: str) -> float:
    row = store.conn.execute(
        "SELECT extract(epoch FROM lease_until - now())::float8 FROM retrain_runs "
        "WHERE dedupe_key = %s",
        (key,),
    ).fetchone()
    assert row is not None and row[0] is not None
    return float(row[0])


def test_a_live_lease_is_busy_and_an_expired_one_is_taken_over(db) -> None:  # noqa: ANN001
    key = f"test:{uuid.uuid4().hex}"
    store = RunStore(db.postgres.dsn)
    try:
        first = record(key)
        assert store.claim(first, lease_s=2, max_attempts=3).claimed  # then its trainer dies
        second = record(key)
        claim = store.claim(second, lease_s=2, max_attempts=3)
        assert not claim.claimed and claim.busy and 0 < claim.lease_left_s <= 2
        time.sleep(claim.lease_left_s + 0.2)  # the dead run's lease runs out
        claim = store.claim(second, lease_s=60, max_attempts=3)
        assert claim.claimed and claim.attempts == 2 and second.attempts == 2
        status, run_id = store.conn.execute(
            "SELECT status, run_id FROM retrain_runs WHERE dedupe_key = %s", (key,)
        ).fetchone()  # type: ignore[misc]
        assert (status, run_id) == ("running", second.run_id)
        store.finish(done(key, store))
        again = store.claim(record(key), lease_s=60, max_attempts=3)
        assert not again.claimed and not again.busy and again.status == "done"  # a duplicate
    finally:
        store.close()


def test_a_failed_run_is_claimed_again_up_to_max_attempts(db) -> None:  # noqa: ANN001
    key = f"test:{uuid.uuid4().hex}"
    store = RunStore(db.postgres.dsn)
    try:
        for attempt in (1, 2):
            r = record(key)
            assert store.claim(r, lease_s=60, max_attempts=2).attempts == attempt
            r.status, r.error, r.finished_at = "failed", "MLflow down", time.time()
            store.finish(r)
        out = store.claim(record(key), lease_s=60, max_attempts=2)
        assert not out.claimed and out.status == "failed" and out.attempts == 2
    finally:
        store.close()


def test_a_run_that_dies_every_time_is_given_up_after_max_attempts(db) -> None:  # noqa: ANN001
    key = f"test:{uuid.uuid4().hex}"
    store = RunStore(db.postgres.dsn)
    try:
        assert store.claim(record(key), lease_s=1, max_attempts=1).claimed
        time.sleep(1.2)  # dead: its lease expired, and it had its one attempt
        out = store.claim(record(key), lease_s=60, max_attempts=1)
        assert not out.claimed and out.status == "failed"
        error = store.conn.execute(
            "SELECT error FROM retrain_runs WHERE dedupe_key = %s", (key,)
        ).fetchone()
        assert error is not None and "given up" in error[0]
    finally:
        store.close()


def test_the_heartbeat_renews_the_lease_while_the_run_trains(db) -> None:  # noqa: ANN001
    key = f"test:{uuid.uuid4().hex}"
    store = RunStore(db.postgres.dsn)
    try:
        r = record(key)
        # a lease long enough that a loaded machine's late renewal still lands in time
        assert store.claim(r, lease_s=3.0, max_attempts=3).claimed
        with Heartbeat(db.postgres.dsn, r.run_id, lease_s=3.0) as beat:
            time.sleep(6.5)  # twice the lease: without renewals it would have expired
            assert beat.beats >= 2
            assert lease_left(store, key) > 0
            assert store.claim(record(key), lease_s=60, max_attempts=3).busy
    finally:
        store.close()


def test_a_claimed_run_is_counted_started_then_finished_with_its_outcome(db, tmp_path) -> None:  # noqa: ANN001
    """``handle`` on the real store with the callback ``serve`` gives it: the claim is
    counted when it happens (before the run), the outcome once the run is recorded."""
    key = f"test:{uuid.uuid4().hex}"
    store = RunStore(db.postgres.dsn)
    metrics = RetrainMetrics()
    seen: list[str] = []

    def claimed(r: RunRecord) -> None:
        seen.append(f"claimed {r.status}")
        metrics.run_started(r)

    def broken_training(*args: object) -> None:
        raise RuntimeError("no GPU today")

    # one attempt: the failed run is final, so the request's next copy starts no run
    ts = TrainerSettings(retrain={"logs_dir": tmp_path, "max_attempts": 1}, postgres=db.postgres)
    request = RetrainRequested(request_id=uuid.uuid4().hex, dedupe_key=key, reasons=["drift"])
    try:
        result = handle(
            request, ts, store, publish=lambda e: None, train=broken_training, on_claimed=claimed
        )
        metrics.observe(result)
        duplicate = handle(
            request, ts, store, publish=lambda e: None, train=broken_training, on_claimed=claimed
        )
        metrics.observe(duplicate)
    finally:
        store.close()
        with psycopg.connect(db.postgres.dsn, autocommit=True) as conn:
            conn.execute("DELETE FROM retrain_runs WHERE dedupe_key = %s", (key,))
    assert result.status == "failed" and result.error
    assert seen == ["claimed running"]  # once, while the run was still running
    exposed = generate_latest(metrics.registry).decode()
    assert "ulasan_retrain_runs_started_total 1.0" in exposed
    assert 'ulasan_retrain_runs_finished_total{outcome="failed"} 1.0' in exposed
    assert 'ulasan_retrain_run_seconds_count{outcome="failed"} 1.0' in exposed
    assert duplicate.status == "duplicate"
    assert 'ulasan_retrain_requests_skipped_total{reason="duplicate"} 1.0' in exposed


def test_trainer_serve_exposes_metrics_registered_until_sigterm(db, tmp_path) -> None:  # noqa: ANN001
    """``ulasan trainer serve`` serves /metrics, registers it as a file_sd target, and on
    SIGTERM (what supervisors send) stops cleanly and unregisters it."""
    port, prefix, targets = free_port(), f"t{uuid.uuid4().hex[:10]}.", tmp_path / "targets"
    group = f"trainer-{prefix.strip('.')}"
    env = child_env(
        {
            "ULASAN_POSTGRES__DBNAME": db.postgres.dbname,
            "ULASAN_PROMETHEUS__TARGETS_DIR": str(targets),
            "ULASAN_PROMETHEUS__REGISTER_TARGETS": "true",
            "ULASAN_RETRAIN__TOPIC_PREFIX": prefix,
            "ULASAN_RETRAIN__GROUP_ID": group,
            "ULASAN_RETRAIN__LOGS_DIR": str(tmp_path / "runs"),
        }
    )
    log = tmp_path / "trainer.log"
    proc = spawn(["trainer", "serve", "--metrics-port", str(port)], env=env, log_path=log)
    try:

        def scraped() -> str | None:
            if proc.poll() is not None:
                raise AssertionError(f"trainer exited {proc.returncode}: {log.read_text()}")
            try:
                return httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
            except httpx.HTTPError:
                time.sleep(0.5)
                return None

        deadline = time.monotonic() + 120
        text = None
        while text is None and time.monotonic() < deadline:
            text = scraped()
        assert text is not None, log.read_text()
        assert "ulasan_retrain_runs_started_total 0.0" in text
        assert 'ulasan_retrain_runs_finished_total{outcome="failed"} 0.0' in text
        assert "process_resident_memory_bytes" in text
        name = f"trainer-{group}-{port}"
        entry = json.loads((targets / f"{name}.json").read_text())
        assert entry == [
            {"targets": [f"127.0.0.1:{port}"], "labels": {"process": name, "role": "trainer"}}
        ]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0, log.read_text()
        assert not (targets / f"{name}.json").exists()
        assert "trainer stopped" in log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
