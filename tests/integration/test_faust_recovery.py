"""faust on the local Kafka: a killed worker's table comes back from its changelog topic."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from ulasan.core.settings import PROJECT_ROOT, Settings

KEYS = ("k0", "k1", "k2", "k3")
PARTITIONS = 2

pytestmark = pytest.mark.slow


class Worker:
    """One ``faust worker`` subprocess of the counter app, in its own process group."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.log = log
        self.out = Path(env["FAUST_COUNTER_OUT"])
        with log.open("ab") as fh:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "tests.integration.apps.faust_counter", "worker",
                 "-l", "info", "--without-web"],
                cwd=PROJECT_ROOT,
                env=env,
                stdout=fh,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip

    def ready(self) -> bool:
        """Whether faust finished recovery and the handover to the streams ("Worker ready")."""
        return "Worker ready" in self.log.read_text(errors="replace")

    def lines(self) -> list[dict[str, Any]]:
        if not self.out.exists():
            return []
        return [json.loads(line) for line in self.out.read_text().splitlines()]

    def counts(self) -> dict[str, int]:
        latest: dict[str, int] = {}
        for line in self.lines():
            latest[line["key"]] = line["count"]
        return latest

    def tail(self) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-40:])

    def kill(self) -> None:
        """SIGKILL: no shutdown, no final commit, no flush."""
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(30)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)


def wait_for(check: Callable[[], bool], timeout_s: float, what: str, worker: Worker) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if worker.proc.poll() is not None:
            pytest.fail(f"the faust worker exited ({worker.proc.returncode}):\n{worker.tail()}")
        if time.monotonic() > deadline:
            pytest.fail(
                f"timed out waiting for {what}; counted so far {worker.counts()} "
                f"in {len(worker.lines())} lines; worker log:\n{worker.tail()}"
            )
        time.sleep(0.5)


def produce(bootstrap: str, topic: str, per_key: int, tag: str) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
    for i in range(per_key):
        for key in KEYS:
            producer.produce(topic, key=key.encode(), value=f"{tag}-{i}".encode())
    assert producer.flush(30) == 0


def offsets(bootstrap: str, group: str, topic: str) -> tuple[int, int]:
    """(committed offsets of ``group`` summed, end offsets summed) over ``topic``."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        parts = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        committed = sum(max(tp.offset, 0) for tp in consumer.committed(parts, timeout=10))
        end = sum(consumer.get_watermark_offsets(tp, timeout=10)[1] for tp in parts)
    finally:
        consumer.close()
    return committed, end


def end_offsets(bootstrap: str, topic: str) -> int:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "unused"})
    try:
        meta = consumer.list_topics(topic, timeout=10).topics[topic]
        return sum(
            consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in meta.partitions
        )
    finally:
        consumer.close()


def test_table_is_restored_from_changelog_after_kill(
    settings: Settings, kafka_topics: Any, unique_name: Callable[[str], str], tmp_path: Path
) -> None:
    bootstrap = settings.kafka.bootstrap_servers
    app_id = unique_name("it-faust")
    kafka_topics.delete_later(app_id)  # the changelog and assignor topics faust creates
    topic = kafka_topics.new(partitions=PARTITIONS, prefix="faust")
    changelog = f"{app_id}-counts-changelog"

    def worker_env(run: str) -> dict[str, str]:
        (tmp_path / run).mkdir()
        return {
            **os.environ,
            "FAUST_COUNTER_APP_ID": app_id,
            "FAUST_COUNTER_BROKER": bootstrap,
            "FAUST_COUNTER_TOPIC": topic,
            "FAUST_COUNTER_PARTITIONS": str(PARTITIONS),
            "FAUST_COUNTER_DATADIR": str(tmp_path / run / "data"),
            "FAUST_COUNTER_OUT": str(tmp_path / run / "out.jsonl"),
        }

    # Records are produced only once a worker is ready: faust 0.15.3 may ack a record without
    # running the agent on it when it arrives during the recovery -> streams handover after a
    # restart (seen in about 1 of 6 runs here: the backlog's first record was skipped and its
    # offset committed). That is a faust bug of its own; this test is about the changelog.
    first = Worker(worker_env("first"), tmp_path / "first.log")
    try:
        wait_for(first.ready, 120, "the first worker to be ready", first)
        produce(bootstrap, topic, per_key=5, tag="a")
        wait_for(lambda: first.counts() == dict.fromkeys(KEYS, 5), 120, "5 per key", first)
        # before the kill: the source offsets are committed and every table update is in the
        # changelog, so a restarted worker that does NOT restore the table would count from 0
        wait_for(
            lambda: offsets(bootstrap, app_id, topic) == (20, 20), 60, "the offset commit", first
        )
        wait_for(lambda: end_offsets(bootstrap, changelog) >= 20, 60, "the changelog writes", first)
        first.kill()
    finally:
        first.stop()

    second = Worker(worker_env("second"), tmp_path / "second.log")
    try:
        wait_for(second.ready, 120, "the second worker to recover", second)
        produce(bootstrap, topic, per_key=3, tag="b")
        wait_for(lambda: second.counts() == dict.fromkeys(KEYS, 8), 90, "8 per key", second)
    finally:
        second.stop()

    # the second worker saw only the 12 new records, and counted on from the restored 5
    lines = second.lines()
    assert len(lines) == 12
    for key in KEYS:
        assert [ln["count"] for ln in lines if ln["key"] == key] == [6, 7, 8]
