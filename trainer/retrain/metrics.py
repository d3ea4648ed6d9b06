"""Prometheus metrics of the retraining consumer (``ulasan trainer serve``), on a registry of
its own: runs started and finished by outcome, their seconds, skipped requests, and the last
gate's decision.

Counter names are given without ``_total``: prometheus-client appends it.
"""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from trainer.retrain.store import RunRecord
from ulasan.core.process_metrics import add_process_collectors

RUNS_STARTED = "ulasan_retrain_runs_started"
RUNS_FINISHED = "ulasan_retrain_runs_finished"
RUN_SECONDS = "ulasan_retrain_run_seconds"
REQUESTS_SKIPPED = "ulasan_retrain_requests_skipped"
LAST_GATE_DECISION = "ulasan_retrain_last_gate_decision"
LAST_GATE_MACRO_F1 = "ulasan_retrain_last_gate_macro_f1"
LAST_GATE_TIMESTAMP = "ulasan_retrain_last_gate_timestamp_seconds"

#: a retraining run takes minutes (tiny config) to hours (a transformer on CPU)
_RUN_BUCKETS = (30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400, 28800)
#: the outcomes of a run that was claimed and ended (see ``RunRecord.status``)
RUN_OUTCOMES = ("done", "failed", "stale")
#: requests that start no run: already handled, claimed by a live trainer, undecodable
SKIP_REASONS = ("duplicate", "busy", "undecodable")


class RetrainMetrics:
    """Every metric the trainer consumer exports; ``registry`` is private to this instance."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        add_process_collectors(self.registry)
        r = self.registry
        self.started = Counter(
            RUNS_STARTED, "Retraining runs started (each claimed attempt counts).", registry=r
        )
        self.finished = Counter(
            RUNS_FINISHED,
            "Retraining runs ended, by outcome: done (gated, or not registered by config), "
            "failed (recorded with its error; tried again up to max_attempts), stale.",
            ["outcome"],
            registry=r,
        )
        self.seconds = Histogram(
            RUN_SECONDS,
            "Seconds of a retraining run, claim to record (data, training, evaluation, gate, "
            "announcement), by outcome.",
            ["outcome"],
            buckets=_RUN_BUCKETS,
            registry=r,
        )
        self.skipped = Counter(
            REQUESTS_SKIPPED, "Retrain requests that started no run, by reason.", ["reason"],
            registry=r,
        )  # fmt: skip
        self.gate_decision = Gauge(
            LAST_GATE_DECISION,
            "The last gate's decision: 1 on it (promoted or refused), 0 on the other; no "
            "series before the first gate.",
            ["decision"],
            registry=r,
        )
        self.gate_macro_f1 = Gauge(
            LAST_GATE_MACRO_F1,
            "Macro-F1 on the last gate's set, by model (candidate, champion).",
            ["model"],
            registry=r,
        )
        self.gate_time = Gauge(
            LAST_GATE_TIMESTAMP, "Unix time of the last gate decision (0: none yet).", registry=r
        )
        for outcome in RUN_OUTCOMES:  # every series exists from the start (rates need it)
            self.finished.labels(outcome)
        for reason in SKIP_REASONS:
            self.skipped.labels(reason)

    def run_started(self, record: RunRecord) -> None:
        """A request was claimed: its run starts now."""
        self.started.inc()

    def observe(self, record: RunRecord) -> None:
        """A handled request's record: a finished run (outcome, seconds, its gate), or a
        skipped request."""
        if record.status in SKIP_REASONS:
            self.skipped.labels(record.status).inc()
            return
        self.finished.labels(record.status).inc()
        if record.duration_s is not None:
            self.seconds.labels(record.status).observe(record.duration_s)
        gate = record.scores.get("gate")
        if isinstance(gate, dict) and "promoted" in gate:
            self._gate(gate)

    def undecodable(self) -> None:
        self.skipped.labels("undecodable").inc()

    def _gate(self, gate: dict[str, Any]) -> None:
        promoted = bool(gate["promoted"])
        self.gate_decision.labels("promoted").set(1 if promoted else 0)
        self.gate_decision.labels("refused").set(0 if promoted else 1)
        self.gate_time.set(time.time())
        for model in ("candidate", "champion"):
            scores = gate.get(model) or {}
            if scores.get("macro_f1") is not None:
                self.gate_macro_f1.labels(model).set(float(scores["macro_f1"]))

    def serve(self, port: int, addr: str = "0.0.0.0") -> None:  # noqa: S104 - scraped by Prometheus
        """Serve ``/metrics`` of this registry on ``port`` in a daemon thread."""
        start_http_server(port, addr=addr, registry=self.registry)
