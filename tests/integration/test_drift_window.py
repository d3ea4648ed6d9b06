"""Drift window state survives a SIGKILLed worker: the report counts events from both lives."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from confluent_kafka import Consumer, Producer

from schemas import topics
from tests.helpers.stream_env import StreamEnv, wait_until
from tests.helpers.tiny_model import smsa_rows
from tests.helpers.tiny_serving import copy_serving_folder
from trainer.profile import build_profile, write_profile
from ulasan.core.kafka_admin import admin_client
from ulasan.core.settings import Settings
from ulasan.core.text import default_lexicon

N_BEFORE, N_AFTER = 150, 100
#: one window far longer than the test, so every event lands in it; a tick closes it
WINDOW_S = 10_000_000.0


@pytest.fixture(name="drift_env")
def drift_env_fixture(settings: Settings, tmp_path: Path) -> Iterator[StreamEnv]:
    """Own topics and database; the tiny model folder with a training profile (the reference)."""
    folder = copy_serving_folder(tmp_path / "model")
    rows = smsa_rows("train", 300)
    profile = build_profile(
        [t for t, _ in rows], [y for _, y in rows], folder=folder, lexicon=default_lexicon()
    )
    write_profile(profile, folder)
    env = StreamEnv(settings, folder, tmp_path, partitions=2)
    env.create()
    try:
        yield env
    finally:
        env.destroy()

        admin = admin_client(env.bootstrap)
        doomed = [
            t
            for t in admin.list_topics(timeout=10).topics  # type: ignore[attr-defined]
            if t.startswith((env.prefix, env.app_id))
        ]
        if doomed:
            for fut in admin.delete_topics(doomed, operation_timeout=30).values():  # type: ignore[attr-defined]
                try:
                    fut.result()
                except Exception as exc:  # noqa: BLE001 - cleanup must not hide the result
                    print(f"cleanup: {exc}")


def windows_in_changelog(env: StreamEnv) -> dict[str, dict[str, Any]]:
    """The latest value of every open window (``w:<start>``) in the drift table's changelog."""

    consumer = Consumer(
        {
            "bootstrap.servers": env.bootstrap,
            "group.id": f"reader-{uuid.uuid4().hex}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
        }
    )
    consumer.subscribe([f"{env.app_id}-drift-changelog"])
    latest: dict[str, dict[str, Any]] = {}
    deadline = time.monotonic() + 10
    try:
        while time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            if msg.error():
                if msg.error().code() == -191:  # _PARTITION_EOF: read to the end
                    break
                continue
            key = json.loads(msg.key())
            if isinstance(key, str) and key.startswith("w:"):
                value = msg.value()
                if value is None:
                    latest.pop(key, None)
                else:
                    latest[key] = json.loads(value)
    finally:
        consumer.close()
    return latest


def window_count(env: StreamEnv) -> int:
    return sum(int(w["n"]) for w in windows_in_changelog(env).values())


def test_a_killed_workers_open_window_is_recovered_and_reported_whole(
    drift_env: StreamEnv,
) -> None:
    env = drift_env
    drift = {
        "ULASAN_DRIFT__WINDOW_S": str(WINDOW_S),
        "ULASAN_DRIFT__GRACE_S": "0",
        "ULASAN_DRIFT__MIN_EVENTS": "20",
        "ULASAN_TRIGGERS__ENABLED": "false",
    }
    first = env.start_worker("w1", **drift)
    env.wait_assigned(first)
    env.produce_reviews(0, N_BEFORE)
    env.wait_rows(N_BEFORE, 120)
    # the observations reached the window and its state is in the changelog: now crash
    wait_until(lambda: window_count(env) >= N_BEFORE, 120, f"{N_BEFORE} events in the window")
    first.kill()

    second = env.start_worker("w2", **drift)
    env.wait_assigned(second)
    env.produce_reviews(N_BEFORE, N_BEFORE + N_AFTER)
    env.wait_rows(N_BEFORE + N_AFTER, 120)
    wait_until(
        lambda: window_count(env) >= N_BEFORE + N_AFTER,
        120,
        f"{N_BEFORE + N_AFTER} events in the recovered window",
    )
    windows = windows_in_changelog(env)
    assert len(windows) == 1, windows.keys()
    (key,) = windows
    start = float(key.removeprefix("w:"))

    # close the window now: a tick past its end, sent on the observations topic like the timer's

    producer = Producer({"bootstrap.servers": env.bootstrap, "acks": "all"})
    tick = {"kind": "tick", "t": start + WINDOW_S + 1.0}
    producer.produce(
        env.topic(topics.DRIFT_OBSERVATIONS), key=b"drift", value=json.dumps(tick).encode()
    )
    assert producer.flush(30) == 0

    def report() -> tuple[Any, ...] | None:
        with psycopg.connect(env.dsn, connect_timeout=5) as conn:
            return conn.execute(
                "SELECT n_events, extract(epoch FROM window_start), drift_score, signals "
                "FROM drift_reports"
            ).fetchone()

    row = wait_until(report, 120, "the drift report of the recovered window")
    assert second.alive(), second.log()[-3000:]
    n_events, window_start, score, signals = row
    # nothing the first life counted was lost (at-least-once may replay, never drop). A review
    # of the first life can be counted up to three times: in the window state the changelog
    # restored, again when its observations message is replayed (its offset was not committed
    # before the kill), and once more if its clean record is re-scored (same offsets reason)
    # and a new observations message is sent for it.
    assert n_events >= N_BEFORE + N_AFTER
    assert n_events <= 3 * N_BEFORE + N_AFTER
    assert float(window_start) == start
    assert 0.0 <= score <= 1.0 and signals
    # the closed window left the table (its tombstone reaches the changelog)
    wait_until(lambda: windows_in_changelog(env) == {}, 60, "the window's tombstone")
