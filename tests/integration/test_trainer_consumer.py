"""The trainer consumer on the real PostgreSQL: one training at a time, duplicates ignored."""

from __future__ import annotations

import threading
import time
import uuid

import psycopg

from schemas.events import RetrainRequested
from trainer.retrain.config import TrainerSettings
from trainer.retrain.request import handle
from trainer.retrain.store import RunRecord, RunStore


def record(key: str) -> RunRecord:
    return RunRecord(
        run_id=uuid.uuid4().hex,
        request_id=uuid.uuid4().hex,
        dedupe_key=key,
        reasons=["drift"],
        status="running",
    )


def test_the_lock_admits_one_trainer_at_a_time(settings) -> None:  # noqa: ANN001
    a, b = RunStore(settings.postgres.dsn), RunStore(settings.postgres.dsn)
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


def test_a_duplicate_request_is_ignored_and_never_trains(settings, tmp_path) -> None:  # noqa: ANN001
    key = f"test:{uuid.uuid4().hex}"
    store = RunStore(settings.postgres.dsn)
    trained: list[str] = []
    ts = TrainerSettings(retrain={"logs_dir": tmp_path})
    try:
        assert store.claim(record(key))
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
        with psycopg.connect(settings.postgres.dsn, autocommit=True) as conn:
            conn.execute("DELETE FROM retrain_runs WHERE dedupe_key = %s", (key,))
