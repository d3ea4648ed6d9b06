"""Prometheus metrics of the gateway (one registry per gateway) and the rolling /stats."""

from __future__ import annotations

import math
import threading
from collections import Counter as Tally
from collections import deque
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from ulasan.core.process_metrics import add_process_collectors

LATENCY_BUCKETS = (0.002, 0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)
#: hops are a fraction of a request: finer at the bottom (0.1 ms)
HOP_BUCKETS = (0.0001, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0)


class GatewayMetrics:
    """``ulasan_api_*``: requests by route and code, errors, latency per route and protocol,
    requests in flight."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        add_process_collectors(self.registry)
        self.requests = Counter(
            "ulasan_api_requests",
            "API requests by route and response code (HTTP status or gRPC status name).",
            ["route", "code", "protocol"],
            registry=self.registry,
        )
        self.errors = Counter(
            "ulasan_api_errors",
            "API requests that failed, by route and reason.",
            ["route", "reason", "protocol"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "ulasan_api_request_duration_seconds",
            "API request latency by route and protocol.",
            ["route", "protocol"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "ulasan_api_in_flight_requests",
            "API requests being handled now.",
            ["protocol"],
            registry=self.registry,
        )
        self.replies = Counter(
            "ulasan_api_replies",
            "predict.replies.v1 records read: matched, late (after the deadline) or foreign.",
            ["outcome"],
            registry=self.registry,
        )
        self.hops = Histogram(
            "ulasan_gateway_hop_seconds",
            "Answered prediction requests, time per hop (producers/gateway/hops.py): parse_auth, "
            "produce, worker_wait, inference, reply, response_write, total.",
            ["hop", "protocol"],
            buckets=HOP_BUCKETS,
            registry=self.registry,
        )

    def observe(self, route: str, protocol: str, code: str, seconds: float) -> None:
        self.requests.labels(route, code, protocol).inc()
        self.latency.labels(route, protocol).observe(seconds)


def percentile(sorted_values: list[float], q: float) -> float | None:
    """Nearest-rank percentile ``q`` (0-100) of an ascending list; None when empty."""
    if not sorted_values:
        return None
    rank = max(1, min(len(sorted_values), math.ceil(q / 100.0 * len(sorted_values))))
    return sorted_values[rank - 1]


class Stats:
    """Counts, latency percentiles of the last ``window`` predictions and the label mix."""

    def __init__(self, window: int = 10_000) -> None:
        self._lock = threading.Lock()
        self._latency_ms: deque[float] = deque(maxlen=window)
        self.outcomes: Tally[str] = Tally()
        self.labels: Tally[str] = Tally()
        self.texts = 0

    def record(self, outcome: str, latency_ms: float, labels: list[str] | None = None) -> None:
        with self._lock:
            self.outcomes[outcome] += 1
            if outcome == "ok":
                self._latency_ms.append(latency_ms)
                for label in labels or []:
                    self.labels[label] += 1
                self.texts += len(labels or [])

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            values = sorted(self._latency_ms)
            outcomes = dict(self.outcomes)
            labels = dict(self.labels)
            texts = self.texts
        total = sum(labels.values())
        return {
            "requests": sum(outcomes.values()),
            "outcomes": outcomes,
            "texts_scored": texts,
            "latency_ms": {
                "window": len(values),
                **{f"p{q}": percentile(values, q) for q in (50, 90, 95, 99)},
                "max": values[-1] if values else None,
            },
            "labels": labels,
            "label_share": {k: v / total for k, v in labels.items()} if total else {},
        }
