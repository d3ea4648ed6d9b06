"""Hot reload under load: a real worker swaps to a promoted version while reviews flow."""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient

from schemas import topics
from schemas.codec import decode, encode
from schemas.events import ModelPromoted, SentimentScored
from tests.helpers.stream_env import BackgroundProducer, StreamEnv, wait_until
from tests.helpers.tiny_serving import copy_serving_folder
from trainer import registry
from ulasan.core.settings import Settings

N_BEFORE, N_DURING, N_AFTER = 300, 600, 200


@pytest.fixture(name="reload_env")
def reload_env_fixture(settings: Settings, tmp_path: Path) -> Iterator[tuple[StreamEnv, Settings]]:
    """A StreamEnv whose worker serves ``models:/<unique name>@champion`` from the registry."""
    name = f"test-reload-{uuid.uuid4().hex[:8]}"
    reg = settings.model_copy(
        update={
            "state_dir": tmp_path / "reg-state",
            "mlflow": settings.mlflow.model_copy(
                update={"registered_model": name, "experiment": "ulasan-tests"}
            ),
        }
    )
    env = StreamEnv(settings, copy_serving_folder(tmp_path / "model"), tmp_path, partitions=3)
    env.create(topic_names=[*env.topic_names, env.topic(topics.MODEL_UPDATES)])
    try:
        yield env, reg
    finally:
        env.destroy()

        with contextlib.suppress(Exception):
            admin = AdminClient({"bootstrap.servers": env.bootstrap})
            for fut in admin.delete_topics(
                [env.topic(topics.MODEL_UPDATES)], operation_timeout=30
            ).values():
                fut.result()
        with contextlib.suppress(Exception):
            registry.client(reg).delete_registered_model(name)


def _register(settings: Settings, folder: Path) -> str:
    mc = registry.client(settings)
    exp = mc.get_experiment_by_name(settings.mlflow.experiment)
    exp_id = exp.experiment_id if exp else mc.create_experiment(settings.mlflow.experiment)
    run_id = mc.create_run(exp_id).info.run_id
    mc.set_terminated(run_id)
    registry.log_serving_folder(settings, run_id, folder)
    info = registry.register_candidate(settings, run_id, folder, train_dataset_hash="reload-test")
    return info.version


def _scores_by_partition(env: StreamEnv, expect: int) -> list[SentimentScored]:
    return [decode(v, SentimentScored) for v in env.read_topic(env.topic(topics.SENTIMENT), expect)]


def test_a_promotion_under_load_swaps_the_model_with_no_failed_or_lost_event(
    reload_env: tuple[StreamEnv, Settings],
) -> None:
    env, reg = reload_env
    v1 = _register(reg, env.model_dir)
    v2 = _register(reg, env.model_dir)
    registry.set_alias(reg, registry.CHAMPION, v1)
    worker = env.start_worker(
        "w1",
        ULASAN_WORKER__MODEL=f"models:/{reg.mlflow.registered_model}@champion",
        ULASAN_MLFLOW__TRACKING_URI=reg.mlflow.uri,
        ULASAN_DRIFT__ENABLED="false",
    )
    env.wait_assigned(worker)
    env.produce_reviews(0, N_BEFORE)
    env.wait_rows(N_BEFORE, 120)

    # promote v2 while reviews keep coming: the announcement lands mid-stream
    with BackgroundProducer(env, N_BEFORE, N_BEFORE + N_DURING, seconds=6.0):
        time.sleep(2.0)
        registry.set_alias(reg, registry.CHAMPION, v2)

        producer = Producer({"bootstrap.servers": env.bootstrap, "acks": "all"})
        event = ModelPromoted(
            model_name=reg.mlflow.registered_model,
            version=v2,
            alias="champion",
            previous_version=v1,
            model_uri=f"models:/{reg.mlflow.registered_model}@champion",
        )
        producer.produce(
            env.topic(topics.MODEL_UPDATES), key=event.model_name.encode(), value=encode(event)
        )
        assert producer.flush(30) == 0
    wait_until(
        lambda: f"version {v1} -> {v2}" in worker.log(), 120, "the worker to log the hot reload"
    )
    # reviews produced after the swap was logged must all be scored by v2
    total = N_BEFORE + N_DURING + N_AFTER
    env.produce_reviews(N_BEFORE + N_DURING, total)
    env.wait_rows(total, 180)
    assert worker.alive(), worker.log()[-3000:]

    # zero failed or dropped events: every published review has exactly one row per table,
    # the group committed to the log end, each review is on sentiment.v1 once, no dead letters
    assert env.counts() == {t: total for t in ("reviews", "text_features", "prediction_logs")}
    env.assert_drained(env.review_ids(0, total), max_sentiment_duplicates=0)
    metrics = env.metrics(worker)
    assert not [
        line
        for line in metrics.splitlines()
        if line.startswith(("ulasan_dlq_total{", "ulasan_stream_errors_total{"))
        and not line.endswith(" 0.0")
    ], metrics
    reloads = [line for line in metrics.splitlines() if line.startswith("ulasan_model_reloads")]
    assert 'ulasan_model_reloads_total{outcome="swapped",role="champion"} 1.0' in reloads, reloads
    scores = _scores_by_partition(env, total)
    by_review = {s.review_id: s for s in scores}
    assert len(by_review) == total
    # every output names the version that scored it, and PostgreSQL agrees with the topic
    assert {s.model_version for s in scores} == {v1, v2}
    with psycopg.connect(env.dsn) as conn:
        stored = dict(conn.execute("SELECT review_id, model_version FROM prediction_logs"))
    assert stored == {rid: s.model_version for rid, s in by_review.items()}
    # the first reviews were scored by v1, the ones produced after the swap by v2
    assert all(by_review[f"rev-{i:06d}"].model_version == v1 for i in range(N_BEFORE))
    assert all(
        by_review[f"rev-{i:06d}"].model_version == v2 for i in range(N_BEFORE + N_DURING, total)
    )
