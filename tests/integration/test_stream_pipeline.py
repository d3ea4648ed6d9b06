"""The stream worker end to end on the real stack: 2,000 reviews in, 2,000 of everything out."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from schemas import topics
from stream_processors.inference.batching import event_id
from tests.helpers.stream_env import ULASAN, StreamEnv, wait_until
from tests.helpers.tiny_serving import MODEL_NAME, copy_serving_folder
from tests.integration.stream_fixtures import stream_env_fixture  # noqa: F401 - fixture
from ulasan.core.kafka_admin import admin_client
from ulasan.core.settings import Settings

N = 2000


def test_2000_reviews_make_2000_rows_and_2000_scores(stream_env: StreamEnv) -> None:
    env = stream_env
    worker = env.start_worker("w1")
    env.wait_assigned(worker)
    t0 = time.monotonic()
    env.produce_reviews(0, N)
    counts = env.wait_rows(N, timeout_s=240)
    print(f"{N} reviews through the pipeline in {time.monotonic() - t0:.1f}s")
    assert counts == {t: N for t in counts}, counts
    # no crash, so no replay: exactly one event per review on sentiment.v1
    env.assert_drained(env.review_ids(0, N), max_sentiment_duplicates=0)

    scores = env.sentiment(N)
    assert len(scores) == N
    assert len({s.review_id for s in scores}) == N
    for s in scores:
        assert (s.model_name, s.model_version) == (MODEL_NAME, "local")
        assert s.event_id == event_id(MODEL_NAME, "local", review_id=s.review_id)
        assert s.text is not None
    assert env.read_topic(topics.dlq(env.topic(topics.REVIEWS_RAW)), 0, timeout_s=5) == []
    # scored in the agent that cleans, and still published on reviews.clean.v1 for downstream
    assert len(env.read_topic(env.topic(topics.REVIEWS_CLEAN), N)) == N

    text = wait_until(
        lambda: (m := env.metrics(worker)) and "ulasan_predictions_total{" in m and m,
        30,
        "the worker's /metrics",
    )
    predicted = sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("ulasan_predictions_total{")
    )
    assert predicted == N
    for name in (
        "ulasan_prediction_latency_seconds_bucket",
        "ulasan_prediction_confidence_bucket",
        "ulasan_inference_batch_size_bucket",
        "ulasan_sink_write_seconds_bucket",
        'ulasan_sink_rows_total{table="prediction_logs"}',
        "ulasan_consumer_lag{",
    ):
        assert name in text, name

    # a downstream reader needs nothing but the codec: ulasan consume sentiment
    shown = subprocess.run(
        [str(ULASAN), "consume", "sentiment", "--from-beginning", "--max", "5", "--timeout", "30"],
        env=env.env(COLUMNS="200"),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert shown.returncode == 0, shown.stderr
    assert "5 events" in shown.stdout
    assert MODEL_NAME in shown.stdout

    assert worker.stop() == 0, worker.log()[-3000:]


def test_the_two_hop_worker_scores_what_it_reads_from_reviews_clean(
    stream_env: StreamEnv,
) -> None:
    """``ULASAN_WORKER__CLEAN_AND_SCORE=false``: the infer agent consumes reviews.clean.v1 and
    the group commits both topics; the same rows and one score per review."""
    env = stream_env
    n = 500
    worker = env.start_worker("w1", ULASAN_WORKER__CLEAN_AND_SCORE="false")
    env.wait_assigned(worker)
    env.produce_reviews(0, n)
    counts = env.wait_rows(n, timeout_s=240)
    assert counts == {t: n for t in counts}, counts
    env.assert_drained(
        env.review_ids(0, n),
        max_sentiment_duplicates=0,
        topics_read=(topics.REVIEWS_RAW, topics.REVIEWS_CLEAN),
    )
    assert 'ulasan_stream_events_total{stage="infer"} 500.0' in env.metrics(worker)
    assert worker.stop() == 0, worker.log()[-3000:]


def test_the_worker_creates_its_missing_topics_before_subscribing(tmp_path: Path) -> None:
    env = StreamEnv(Settings(), copy_serving_folder(tmp_path / "model"), tmp_path)
    env.create(topic_names=[env.topic(topics.REVIEWS_RAW)])  # nothing downstream exists yet
    try:
        worker = env.start_worker("w1")
        env.wait_assigned(worker)
        env.produce_reviews(0, 20)
        env.wait_rows(20, timeout_s=120)
        meta = admin_client(env.bootstrap).list_topics(timeout=10)  # type: ignore[attr-defined]
        assert {t: len(meta.topics[t].partitions) for t in env.topic_names} == {
            t: env.partitions for t in env.topic_names
        }
        assert worker.stop() == 0, worker.log()[-3000:]
    finally:
        env.destroy()
