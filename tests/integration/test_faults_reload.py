"""Faults of the hot reload on a real worker (Kafka, PostgreSQL, MLflow): MLflow down when a
promotion is announced (the worker keeps serving, then catches up with no new announcement),
and corrupt models promoted (a truncated ONNX file, a graph with the wrong output shape: the
old model keeps serving, each failed load is counted, the next good model is loaded). The
worker serves a registered model with a non-default name through the one setting
(``ULASAN_MLFLOW__REGISTERED_MODEL``, no ``ULASAN_WORKER__MODEL``), and a retrain request for
the version it serves is not judged stale by the trainer."""

from __future__ import annotations

import json
import shutil
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import onnx
import psycopg
import pytest
from confluent_kafka import Producer
from onnx import TensorProto, helper

from schemas import topics
from schemas.codec import decode, encode
from schemas.events import ModelPromoted, RetrainRequested, SentimentScored
from tests.helpers.loop_env import TcpProxy, own_model, register_version
from tests.helpers.stream_env import StreamEnv, Worker, wait_until
from tests.helpers.tiny_serving import copy_serving_folder
from tests.integration.conftest import delete_topics
from trainer import registry
from trainer.retrain.config import TrainerSettings
from trainer.retrain.request import stale_reason
from ulasan.core.inference.manifest import ModelManifest
from ulasan.core.settings import Settings

pytestmark = pytest.mark.faults

#: MLflow's client retries a refused connection for minutes by default: fail at once
MLFLOW_FAST_FAIL = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "5"}


@dataclass
class ReloadEnv:
    env: StreamEnv
    reg: Settings
    folder: Path

    @property
    def name(self) -> str:
        return self.reg.mlflow.registered_model

    def start_worker(self, tracking_uri: str) -> Worker:
        """A worker whose model comes from the registered-model setting alone."""
        worker = self.env.start_worker(
            "w1",
            ULASAN_WORKER__MODEL="",
            ULASAN_MLFLOW__REGISTERED_MODEL=self.name,
            ULASAN_MLFLOW__TRACKING_URI=tracking_uri,
            ULASAN_DRIFT__ENABLED="false",
            **MLFLOW_FAST_FAIL,
        )
        self.env.wait_assigned(worker)
        wait_until(
            lambda: "model.updates listener assigned" in worker.log(),
            60,
            "the reload listener to hold its partition",
        )
        return worker

    def promote(self, version: str, previous: str) -> None:
        """Move @champion to ``version`` and announce it, as the trainer does."""
        registry.set_alias(self.reg, registry.CHAMPION, version)
        event = ModelPromoted(
            model_name=self.name,
            version=version,
            alias="champion",
            previous_version=previous,
            model_uri=f"models:/{self.name}@champion",
        )
        producer = Producer({"bootstrap.servers": self.env.bootstrap, "acks": "all"})
        producer.produce(
            self.env.topic(topics.MODEL_UPDATES), key=self.name.encode(), value=encode(event)
        )
        assert producer.flush(30) == 0

    def failed_loads(self, worker: Worker) -> float:
        return _sample(self.env.metrics(worker), 'outcome="failed",role="champion"')

    def versions_by_review(self, n: int) -> dict[str, str]:
        """review_id -> the version that scored it, from PostgreSQL; asserts one row each."""
        with psycopg.connect(self.env.dsn) as conn:
            rows = conn.execute("SELECT review_id, model_version FROM prediction_logs").fetchall()
        stored = dict(rows)
        assert len(rows) == len(stored) == n, f"{len(rows)} rows, {len(stored)} reviews, {n} sent"
        assert set(stored) == {f"rev-{i:06d}" for i in range(n)}  # every review exactly once
        return stored

    def produce(self, start: int, stop: int) -> None:
        self.env.produce_reviews(start, stop)
        self.env.wait_rows(stop, 120)


def _sample(metrics: str, labels: str) -> float:
    for line in metrics.splitlines():
        if line.startswith("ulasan_model_reloads_total{") and labels in line:
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def no_dead_letters(env: StreamEnv, worker: Worker) -> list[str]:
    metrics = env.metrics(worker)
    return [
        line
        for line in metrics.splitlines()
        if line.startswith(("ulasan_dlq_total{", "ulasan_stream_errors_total{"))
        and not line.endswith(" 0.0")
    ]


@pytest.fixture(name="reload_env")
def reload_env_fixture(settings: Settings, tmp_path: Path) -> Iterator[ReloadEnv]:
    folder = copy_serving_folder(tmp_path / "model")
    with own_model(settings, tmp_path / "reg-state", prefix="test-reload-faults") as reg:
        env = StreamEnv(settings, folder, tmp_path, partitions=3)
        names = [*env.topic_names, env.topic(topics.MODEL_UPDATES)]
        env.create(topic_names=names)
        try:
            yield ReloadEnv(env, reg, folder)
        finally:
            env.destroy()
            delete_topics(env.bootstrap, [env.topic(topics.MODEL_UPDATES)])


def test_mlflow_down_during_a_reload_keeps_the_old_model_then_catches_up(
    reload_env: ReloadEnv,
) -> None:
    r = reload_env
    v1 = register_version(r.reg, r.folder)
    v2 = register_version(r.reg, r.folder)
    registry.set_alias(r.reg, registry.CHAMPION, v1)
    proxy = TcpProxy(r.reg.mlflow.host, r.reg.mlflow.port).up()
    try:
        worker = r.start_worker(proxy.url)
        r.produce(0, 100)

        proxy.down()  # MLflow is away from the worker when the promotion is announced
        r.promote(v2, v1)
        wait_until(lambda: r.failed_loads(worker) >= 1, 60, "the failed reload to be counted")
        r.produce(100, 200)  # still served, by the old model
        assert worker.alive(), worker.log(3000)

        proxy.up()  # no new announcement: the listener asks the registry again by itself
        back = time.monotonic()
        wait_until(lambda: f"version {v1} -> {v2}" in worker.log(), 90, "the catch-up reload")
        recovery_s = time.monotonic() - back
        r.produce(200, 300)
    finally:
        proxy.down()

    stored = r.versions_by_review(300)
    assert {stored[f"rev-{i:06d}"] for i in range(200)} == {v1}
    assert {stored[f"rev-{i:06d}"] for i in range(250, 300)} == {v2}
    assert not no_dead_letters(r.env, worker)
    scored = [
        decode(v, SentimentScored) for v in r.env.read_topic(r.env.topic(topics.SENTIMENT), 300)
    ]
    assert {s.model_name for s in scored} == {r.name}  # the setting's model, not the default
    # the trainer, configured by the same one setting, judges a request for what the worker
    # serves as current (the default name's champion would make every request stale)
    trainer = TrainerSettings(
        mlflow=r.reg.mlflow.model_copy(update={"tracking_uri": r.reg.mlflow.uri})
    )
    request = RetrainRequested(
        request_id=uuid.uuid4().hex, dedupe_key=f"{v2}:1", reasons=["drift"], model_version=v2
    )
    assert stale_reason(request, registry.champion(trainer)) is None
    print(
        json.dumps(
            {
                "fault": "MLflow down during a reload",
                "lost": 0,
                "duplicated_rows": 0,
                "failed_loads": r.failed_loads(worker),
                "mlflow_back_to_reload_s": round(recovery_s, 1),
            }
        )
    )


def truncated(folder: Path, dest: Path) -> Path:
    """A copy of ``folder`` whose ONNX graph is cut to half its bytes."""
    out = shutil.copytree(folder, dest)
    graph = out / ModelManifest.read(out).model_file
    data = graph.read_bytes()
    graph.write_bytes(data[: len(data) // 2])
    return out


def wrong_shape(folder: Path, dest: Path) -> Path:
    """A copy of ``folder`` whose graph is valid ONNX with the serving inputs, but gives one
    score per token where the manifest lists three labels: its output is ``[batch, seq]``,
    a shape no static check can refuse (ONNX Runtime keeps it symbolic), only scoring does."""
    out = shutil.copytree(folder, dest)
    inputs = [
        helper.make_tensor_value_info(n, TensorProto.INT64, ["batch", "seq"])
        for n in ("input_ids", "attention_mask", "token_type_ids")
    ]
    nodes = [helper.make_node("Cast", ["attention_mask"], ["logits"], to=TensorProto.FLOAT)]
    output = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", "seq"])
    graph = helper.make_graph(nodes, "wrong-shape", inputs, [output])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, out / ModelManifest.read(out).model_file)
    return out


def test_corrupt_models_promoted_are_refused_and_the_next_good_one_loads(
    reload_env: ReloadEnv, tmp_path: Path
) -> None:
    r = reload_env
    v1 = register_version(r.reg, r.folder)
    registry.set_alias(r.reg, registry.CHAMPION, v1)
    worker = r.start_worker(r.reg.mlflow.uri)
    r.produce(0, 100)

    cut = register_version(r.reg, truncated(r.folder, tmp_path / "truncated"))
    r.promote(cut, v1)
    wait_until(lambda: r.failed_loads(worker) >= 1, 60, "the truncated model to be refused")
    r.produce(100, 150)
    shape = register_version(r.reg, wrong_shape(r.folder, tmp_path / "wrong-shape"))
    before = r.failed_loads(worker)
    r.promote(shape, cut)
    try:
        wait_until(
            lambda: f"version {shape} loads but cannot score" in worker.log(),
            60,
            "the wrong-shape model to be refused",
        )
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{worker.log(4000)}") from None
    assert r.failed_loads(worker) > before
    r.produce(150, 200)
    assert worker.alive(), worker.log(3000)

    good = register_version(r.reg, copy_serving_folder(tmp_path / "good"))
    r.promote(good, shape)
    wait_until(lambda: f"version {v1} -> {good}" in worker.log(), 90, "the good model to load")
    r.produce(200, 300)

    stored = r.versions_by_review(300)
    assert {stored[f"rev-{i:06d}"] for i in range(200)} == {v1}  # never a corrupt version
    assert {stored[f"rev-{i:06d}"] for i in range(250, 300)} == {good}
    assert set(stored.values()) == {v1, good}
    assert not no_dead_letters(r.env, worker)
    print(
        json.dumps(
            {
                "fault": "corrupt models promoted (truncated ONNX, wrong output shape)",
                "lost": 0,
                "failed_loads": r.failed_loads(worker),
                "served_by_corrupt": 0,
            }
        )
    )
