"""Faults of the trainer on the real stack (Kafka, PostgreSQL, MLflow), the tiny config's
seconds-long trainings: a trainer SIGKILLed mid-retrain (its claim's lease expires, the next
trainer trains the request), SIGKILLed after the alias moved but before the announcement was
delivered (the next trainer announces it on start), MLflow down during a retrain (the run fails
cleanly, nothing is promoted, it is tried again), and the announcement failing after the alias
moved (tried again until delivered). Each reports what it measured (print, ``-s``)."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from prometheus_client import generate_latest

from schemas import topics
from schemas.codec import decode, encode
from schemas.events import ModelPromoted, RetrainRequested
from tests.helpers.loop_env import TcpProxy, fresh_database, own_model, register_version
from tests.helpers.tiny_serving import copy_serving_folder
from tests.integration.conftest import delete_topics
from trainer import registry
from trainer.retrain.config import TrainerSettings
from trainer.retrain.metrics import RetrainMetrics
from trainer.retrain.request import default_train
from trainer.retrain.service import serve
from ulasan.core.kafka_admin import ensure_topics
from ulasan.core.settings import PROJECT_ROOT, Settings
from ulasan.procs import Child, child_env, free_port, spawn

pytestmark = pytest.mark.faults

#: seconds-long trainings (as tests/e2e/test_closed_loop.py); the gate lets the tiny model pass
OVERRIDES = {
    "pretrain.steps": 0,
    "epochs": 1,
    "max_examples": 200,
    "max_valid_examples": 60,
    "threads": 1,
    "gate.tolerance": 1.0,
    "gate.base_tolerance": 1.0,
}
TINY = PROJECT_ROOT / "configs" / "tiny.yaml"


@dataclass
class Loop:
    """One test's corner of the stack: database, registered model, topics, trainer group."""

    settings: Settings
    prefix: str
    group: str
    logs: Path
    champion: str

    @property
    def requests_topic(self) -> str:
        return self.prefix + topics.RETRAIN_REQUESTS

    @property
    def updates_topic(self) -> str:
        return self.prefix + topics.MODEL_UPDATES

    def request(self) -> RetrainRequested:
        """A drift request that judged the champion (what the triggers publish)."""
        return RetrainRequested(
            request_id=uuid.uuid4().hex,
            dedupe_key=f"{self.champion}:{int(time.time())}",
            reasons=["drift"],
            model_version=self.champion,
        )

    def publish(self, request: RetrainRequested) -> None:
        producer = Producer({"bootstrap.servers": self.settings.kafka.bootstrap_servers})
        producer.produce(
            self.requests_topic, key=request.dedupe_key.encode(), value=encode(request)
        )
        assert producer.flush(30) == 0

    def run_row(self, key: str) -> dict[str, Any] | None:
        with psycopg.connect(self.settings.postgres.dsn, connect_timeout=5) as conn:
            cur = conn.execute(
                "SELECT run_id, status, attempts, promoted_version, announced_at, decision, "
                "error FROM retrain_runs WHERE dedupe_key = %s",
                (key,),
            )
            row = cur.fetchone()
            cols = [d.name for d in cur.description or []]
        return dict(zip(cols, row, strict=True)) if row else None

    def champion_now(self) -> str | None:
        info = registry.champion(self.settings)
        return info.version if info else None

    def announcements(self) -> list[ModelPromoted]:
        """Every ModelPromoted on the updates topic, read from the start to its end."""
        return [decode(v, ModelPromoted) for v in read_all(self.settings, self.updates_topic)]

    def committed_at_end(self) -> bool:
        """The trainer group's committed offset equals the requests topic's log end."""
        consumer = Consumer(
            {"bootstrap.servers": self.settings.kafka.bootstrap_servers, "group.id": self.group}
        )
        try:
            tp = TopicPartition(self.requests_topic, 0)
            (committed,) = consumer.committed([tp], timeout=10)
            _, high = consumer.get_watermark_offsets(tp, timeout=10)
            return bool(committed.offset == high)
        finally:
            consumer.close()


def read_all(settings: Settings, topic: str) -> list[bytes]:
    consumer = Consumer(
        {
            "bootstrap.servers": settings.kafka.bootstrap_servers,
            "group.id": f"read-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
        }
    )
    try:
        tp = TopicPartition(topic, 0)
        _, high = consumer.get_watermark_offsets(tp, timeout=10)
        consumer.assign([TopicPartition(topic, 0, 0)])
        out: list[bytes] = []
        deadline = time.monotonic() + 30
        while len(out) < high and time.monotonic() < deadline:
            msg = consumer.poll(1.0)
            if msg is not None and msg.error() is None:
                out.append(msg.value())
        return out
    finally:
        consumer.close()


@pytest.fixture(name="loop")
def loop_fixture(settings: Settings, tmp_path: Path) -> Iterator[Loop]:
    """A fresh database, a registered model of its own with a tiny champion (v1), and the
    retrain.requests topic; model.updates is NOT created: each test decides when it exists."""
    with (
        fresh_database(settings) as db,
        own_model(db, tmp_path / "state", prefix="test-faults") as mine,
    ):
        folder = copy_serving_folder(tmp_path / "champion")
        v1 = register_version(mine, folder)
        registry.set_alias(mine, registry.CHAMPION, v1)
        prefix = f"t{uuid.uuid4().hex[:10]}."
        ensure_topics(mine.kafka.bootstrap_servers, [prefix + topics.RETRAIN_REQUESTS], 1, 1)
        loop = Loop(mine, prefix, f"trainer-{prefix.strip('.')}", tmp_path / "runs", v1)
        try:
            yield loop
        finally:
            delete_topics(mine.kafka.bootstrap_servers, [], prefix=prefix)


def wait_for(check: Any, timeout_s: float, what: str, child: Child | None = None) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        if child is not None and not child.alive():
            raise AssertionError(
                f"{child.name} exited while waiting for {what}:\n{child.log(4000)}"
            )
        time.sleep(0.25)
    tail = f"\n{child.log(4000)}" if child is not None else ""
    raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {what}{tail}")


def trainer_env(loop: Loop, **extra: str) -> dict[str, str]:
    s = loop.settings
    return child_env(
        {
            "ULASAN_KAFKA__BOOTSTRAP_SERVERS": s.kafka.bootstrap_servers,
            "ULASAN_POSTGRES__HOST": s.postgres.host,
            "ULASAN_POSTGRES__PORT": str(s.postgres.port),
            "ULASAN_POSTGRES__USER": s.postgres.user,
            "ULASAN_POSTGRES__DBNAME": s.postgres.dbname,
            "ULASAN_MLFLOW__TRACKING_URI": s.mlflow.uri,
            "ULASAN_MLFLOW__REGISTERED_MODEL": s.mlflow.registered_model,
            "ULASAN_MLFLOW__EXPERIMENT": s.mlflow.experiment,
            "ULASAN_STATE_DIR": str(s.state_dir),
            "ULASAN_RETRAIN__CONFIG": str(TINY),
            "ULASAN_RETRAIN__OVERRIDES": json.dumps(OVERRIDES),
            "ULASAN_RETRAIN__TOPIC_PREFIX": loop.prefix,
            "ULASAN_RETRAIN__GROUP_ID": loop.group,
            "ULASAN_RETRAIN__LOGS_DIR": str(loop.logs),
            "ULASAN_RETRAIN__LEASE_S": "6",
            "ULASAN_RETRAIN__SESSION_TIMEOUT_S": "6",
            "ULASAN_RETRAIN__ANNOUNCE_TIMEOUT_S": "2",
            "ULASAN_RETRAIN__ANNOUNCE_BACKOFF_MAX_S": "2",
            # /metrics on a port of its own, registered beside the runs (a killed trainer
            # leaves its target there, not in the shared Prometheus's folder)
            "ULASAN_RETRAIN__METRICS_PORT": str(free_port()),
            "ULASAN_PROMETHEUS__TARGETS_DIR": str(loop.logs.parent / "targets"),
            **extra,
        },
        inherit_settings=False,
    )


def start_trainer(loop: Loop, name: str, *args: str) -> Child:
    log_path = loop.logs.parent / f"trainer-{name}.log"
    proc = spawn(
        ["trainer", "serve", "--loglevel", "info", *args],
        env=trainer_env(loop),
        log_path=log_path,
        cwd=loop.logs.parent,
    )
    return Child(name, proc, log_path)


@pytest.mark.slow
def test_a_trainer_killed_mid_retrain_or_before_its_announcement_loses_nothing(
    loop: Loop,
) -> None:
    request = loop.request()
    loop.publish(request)
    key = request.dedupe_key

    # 1. SIGKILL while training: the claim stays 'running', its lease no longer renewed
    a = start_trainer(loop, "a")
    row = wait_for(lambda: loop.run_row(key), 180, "trainer a to claim the request", a)
    wait_for(lambda: (loop.logs / row["run_id"] / "train.jsonl").is_file(), 120, "training", a)
    a.kill()
    killed_at = time.monotonic()

    # 2. the next trainer takes the expired lease over and trains; model.updates does not
    # exist yet, so after the gate moved the alias the announcement keeps failing: SIGKILL
    b = start_trainer(loop, "b")

    def promoted_unannounced() -> dict[str, Any] | None:
        r = loop.run_row(key)
        ok = r and r["promoted_version"] and r["announced_at"] is None
        return r if ok and loop.champion_now() == r["promoted_version"] else None

    row = wait_for(promoted_unannounced, 300, "trainer b to promote", b)
    retrained_s = time.monotonic() - killed_at
    wait_for(lambda: "could not announce version" in b.log(), 60, "a failed announcement", b)
    b.kill()
    promoted = row["promoted_version"]
    assert row["attempts"] == 2 and row["status"] == "running" and promoted != loop.champion

    # 3. the topic is back; a new trainer announces the orphaned promotion on start, then
    # meets the (uncommitted) request again: a duplicate now, committed
    ensure_topics(loop.settings.kafka.bootstrap_servers, [loop.updates_topic], 1, 1)
    started = time.monotonic()
    c = start_trainer(loop, "c", "--max", "1", "--idle-timeout", "120")
    wait_for(lambda: loop.announcements(), 120, "trainer c's announcement", c)
    announced_s = time.monotonic() - started
    assert c.proc.wait(timeout=180) == 0, c.log(4000)

    row = loop.run_row(key)
    assert row is not None and row["status"] == "done" and row["attempts"] == 2
    assert row["promoted_version"] == promoted == loop.champion_now()
    assert row["announced_at"] is not None and "announced after a restart" in row["decision"]
    (event,) = loop.announcements()  # exactly one: nothing queued by b was delivered late
    assert (event.model_name, event.version) == (loop.settings.mlflow.registered_model, promoted)
    assert loop.committed_at_end()
    # one retrain registered one candidate: nothing trained twice
    versions = registry.client(loop.settings).search_model_versions(
        f"name='{loop.settings.mlflow.registered_model}'"
    )
    assert sorted(int(v.version) for v in versions) == [int(loop.champion), int(promoted)]
    print(
        json.dumps(
            {
                "fault": "trainer SIGKILL mid-retrain, then after the alias moved",
                "lost": 0,
                "trainings": 1,
                "announcements": 1,
                "kill_to_promotion_s": round(retrained_s, 1),
                "restart_to_announcement_s": round(announced_s, 1),
            }
        )
    )


def test_mlflow_down_mid_retrain_fails_cleanly_and_a_failed_announcement_is_retried(
    loop: Loop, monkeypatch: pytest.MonkeyPatch
) -> None:
    # MLflow's client would retry for minutes: a refused connection must fail the run now
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
    mlflow = loop.settings.mlflow
    proxy = TcpProxy(mlflow.host, mlflow.port).up()
    ts = TrainerSettings(
        **loop.settings.model_dump(exclude={"mlflow"}),
        mlflow=mlflow.model_copy(update={"tracking_uri": proxy.url}),
        retrain={
            "config": TINY,
            "overrides": OVERRIDES,
            "topic_prefix": loop.prefix,
            "group_id": loop.group,
            "logs_dir": loop.logs,
            "lease_s": 10,
            "retry_backoff_s": 3,
            "announce_timeout_s": 2,
            "announce_backoff_max_s": 2,
            "session_timeout_s": 6,
        },
    )
    request = loop.request()
    loop.publish(request)
    seen: dict[str, Any] = {}
    metrics = RetrainMetrics()

    def train(*args: Any) -> Any:
        if "down_at" not in seen:  # the first attempt: MLflow goes away as training starts
            proxy.down()
            seen["down_at"] = time.monotonic()
        return default_train(*args)

    def fault_driver() -> None:
        failed = wait_for(
            lambda: (r := loop.run_row(request.dedupe_key)) and r["status"] == "failed" and r,
            300,
            "the first attempt to fail",
        )
        # nothing half-done: the champion is still v1 and nothing was announced
        seen["failed"] = failed
        seen["champion_after_failure"] = loop.champion_now()
        proxy.up()
        seen["up_at"] = time.monotonic()

        def alias_moved() -> bool:
            r = loop.run_row(request.dedupe_key)
            return bool(
                r and r["promoted_version"] and loop.champion_now() == r["promoted_version"]
            )

        wait_for(alias_moved, 300, "the promotion")
        seen["promoted_at"] = time.monotonic()
        time.sleep(4.0)  # a try takes 2 s: at least one fails on the missing topic
        ensure_topics(ts.kafka.bootstrap_servers, [loop.updates_topic], 1, 1)

    driver = threading.Thread(target=fault_driver, daemon=True)
    driver.start()
    try:
        records = serve(ts, max_requests=1, idle_timeout_s=300, train=train, metrics=metrics)
    finally:
        proxy.down()
    driver.join(timeout=10)

    assert seen["failed"]["attempts"] == 1 and seen["failed"]["error"]
    assert seen["champion_after_failure"] == loop.champion
    (record,) = records
    assert record.status == "done" and record.attempts == 2, record
    assert record.promoted_version is not None and record.promoted_version != loop.champion
    assert record.scores["announce_tries"] >= 2  # it failed, then it was delivered
    assert loop.champion_now() == record.promoted_version
    (event,) = loop.announcements()
    assert event.version == record.promoted_version
    row = loop.run_row(request.dedupe_key)
    assert row is not None and row["announced_at"] is not None and row["status"] == "done"
    assert loop.committed_at_end()
    # what /metrics showed: two attempts, the first failed, the second promoted
    exposed = generate_latest(metrics.registry).decode()
    assert "ulasan_retrain_runs_started_total 2.0" in exposed
    assert 'ulasan_retrain_runs_finished_total{outcome="failed"} 1.0' in exposed
    assert 'ulasan_retrain_runs_finished_total{outcome="done"} 1.0' in exposed
    assert 'ulasan_retrain_last_gate_decision{decision="promoted"} 1.0' in exposed
    print(
        json.dumps(
            {
                "fault": "MLflow down mid-retrain; model.updates missing after the alias moved",
                "lost": 0,
                "attempts": record.attempts,
                "announce_tries": record.scores["announce_tries"],
                "mlflow_back_to_promotion_s": round(seen["promoted_at"] - seen["up_at"], 1),
            }
        )
    )
