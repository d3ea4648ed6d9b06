"""Prometheus metrics of a stream worker, on a registry of its own (one per app)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from ulasan.core.process_metrics import add_process_collectors

PREDICTIONS_TOTAL = "ulasan_predictions"
PREDICTION_LATENCY = "ulasan_prediction_latency_seconds"
PREDICTION_CONFIDENCE = "ulasan_prediction_confidence"
INFERENCE_BATCH_SIZE = "ulasan_inference_batch_size"
STREAM_ERRORS_TOTAL = "ulasan_stream_errors"
DLQ_TOTAL = "ulasan_dlq"
CONSUMER_LAG = "ulasan_consumer_lag"
SINK_WRITE_SECONDS = "ulasan_sink_write_seconds"
SINK_ROWS_TOTAL = "ulasan_sink_rows"
EVENTS_TOTAL = "ulasan_stream_events"

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_CONFIDENCE_BUCKETS = (0.34, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
_SINK_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class WorkerMetrics:
    """Every metric a worker exports; ``registry`` is private to this instance.

    Counter names are given without ``_total``: prometheus-client appends it, so the exposed
    names are ``ulasan_predictions_total``, ``ulasan_dlq_total`` and so on.
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        add_process_collectors(self.registry)
        r = self.registry
        self.predictions = Counter(
            PREDICTIONS_TOTAL,
            "Texts scored, by label and model version.",
            ["label", "model_version"],
            registry=r,
        )
        self.prediction_latency = Histogram(
            PREDICTION_LATENCY,
            "Seconds from a cleaned review reaching Kafka to its score (queue + inference).",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.prediction_confidence = Histogram(
            PREDICTION_CONFIDENCE,
            "Probability of the predicted label.",
            buckets=_CONFIDENCE_BUCKETS,
            registry=r,
        )
        self.inference_batch_size = Histogram(
            INFERENCE_BATCH_SIZE, "Texts per inference batch.", buckets=_BATCH_BUCKETS, registry=r
        )
        self.stream_errors = Counter(
            STREAM_ERRORS_TOTAL,
            "Records or writes that failed, by stage and reason.",
            ["stage", "reason"],
            registry=r,
        )
        self.dlq = Counter(
            DLQ_TOTAL,
            "Records sent to a dead-letter topic, by source topic and reason.",
            ["topic", "reason"],
            registry=r,
        )
        self.consumer_lag = Gauge(
            CONSUMER_LAG,
            "Records behind the log end, per assigned topic partition.",
            ["topic", "partition"],
            registry=r,
        )
        self.sink_write_seconds = Histogram(
            SINK_WRITE_SECONDS,
            "Seconds per successful PostgreSQL batch write.",
            buckets=_SINK_BUCKETS,
            registry=r,
        )
        self.sink_rows = Counter(
            SINK_ROWS_TOTAL,
            "Rows handed to PostgreSQL (duplicates ignored by ON CONFLICT count).",
            ["table"],
            registry=r,
        )
        self.events = Counter(
            EVENTS_TOTAL, "Records consumed, by agent stage.", ["stage"], registry=r
        )

    def serve(self, port: int, addr: str = "0.0.0.0") -> None:  # noqa: S104 - scraped by Prometheus
        """Serve ``/metrics`` of this registry on ``port`` in a daemon thread."""
        start_http_server(port, addr=addr, registry=self.registry)


class LoopMetrics:
    """Metrics of the closed loop (feedback, drift windows, triggers), on the worker's registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.windows = Counter(
            "ulasan_drift_windows",
            "Drift windows closed, by outcome (reported, too_few, no_reference).",
            ["outcome"],
            registry=registry,
        )
        self.drift_score = Gauge(
            "ulasan_drift_score", "Drift score of the last reported window.", registry=registry
        )
        self.late = Counter(
            "ulasan_drift_late_events",
            "Observations for a window already closed (counted, not judged).",
            registry=registry,
        )
        self.feedback_error = Gauge(
            "ulasan_feedback_error_rate",
            "Rolling error rate of the champion over the last feedback outcomes.",
            registry=registry,
        )
        self.outcomes = Counter(
            "ulasan_feedback_outcomes",
            "Predictions joined with their true label, by role and correctness.",
            ["role", "correct"],
            registry=registry,
        )
        self.retrain_requests = Counter(
            "ulasan_retrain_requests",
            "Retraining requests published, by reason.",
            ["reason"],
            registry=registry,
        )
        self.drift_alerts = Counter(
            "ulasan_drift_alerts",
            "Drifted windows that requested no retrain, by kind (unlabelled: too few new labels).",
            ["kind"],
            registry=registry,
        )
