"""Worker settings from the environment and the worker's metrics on a registry of its own."""

from __future__ import annotations

import pytest
from prometheus_client import generate_latest
from pydantic import ValidationError

from stream_processors.metrics import WorkerMetrics
from stream_processors.settings import WorkerConfig, WorkerSettings
from stream_processors.wiring import TopicNames


def test_worker_settings_read_the_ulasan_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ULASAN_WORKER__MAX_BATCH", "16")
    monkeypatch.setenv("ULASAN_WORKER__TOPIC_PREFIX", "t1.")
    monkeypatch.setenv("ULASAN_KAFKA__PARTITIONS", "3")
    s = WorkerSettings()
    assert s.worker.max_batch == 16
    assert s.worker.model == "models:/ulasan-sentiment@champion"
    assert s.kafka.partitions == 3
    assert s.effective_metrics_port == s.metrics_port
    assert TopicNames(s.worker.topic_prefix).raw == "t1.reviews.raw.v1"
    assert TopicNames("t1.").dlq("t1.reviews.raw.v1") == "t1.reviews.raw.v1.dlq"


def test_the_default_model_derives_from_the_registered_model_setting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # one setting names the model: the worker serves what the trainer and the gate promote
    monkeypatch.setenv("ULASAN_MLFLOW__REGISTERED_MODEL", "ulasan-shop")
    assert WorkerSettings().worker.model == "models:/ulasan-shop@champion"
    monkeypatch.setenv("ULASAN_WORKER__MODEL", "models:/other@challenger")
    assert WorkerSettings().worker.model == "models:/other@challenger"  # explicit: kept


def test_worker_settings_refuse_inconsistent_values() -> None:
    with pytest.raises(ValidationError, match="pg_retry_max_s"):
        WorkerConfig(pg_retry_initial_s=5, pg_retry_max_s=1)
    with pytest.raises(ValidationError, match="heartbeat_interval_s"):
        WorkerConfig(session_timeout_s=6, heartbeat_interval_s=3)
    with pytest.raises(ValidationError):
        WorkerConfig(max_batch=0)


def test_metrics_have_their_own_registry_and_prometheus_names() -> None:
    a, b = WorkerMetrics(), WorkerMetrics()  # two apps in one process must not collide
    a.predictions.labels("positive", "3").inc()
    a.dlq.labels("reviews.raw.v1", "invalid_json").inc()
    a.consumer_lag.labels("reviews.raw.v1", "0").set(7)
    text = generate_latest(a.registry).decode()
    assert 'ulasan_predictions_total{label="positive",model_version="3"} 1.0' in text
    assert 'ulasan_dlq_total{reason="invalid_json",topic="reviews.raw.v1"} 1.0' in text
    assert 'ulasan_consumer_lag{partition="0",topic="reviews.raw.v1"} 7.0' in text
    for name in (
        "ulasan_prediction_latency_seconds",
        "ulasan_prediction_confidence",
        "ulasan_inference_batch_size",
        "ulasan_stream_errors_total",
        "ulasan_sink_write_seconds",
        "ulasan_sink_rows_total",
    ):
        assert f"# TYPE {name.removesuffix('_total')}" in text
    assert "ulasan_predictions_total{" not in generate_latest(b.registry).decode()
