"""Every worker and gateway registry exposes the process metrics (memory, CPU, open files)."""

from __future__ import annotations

import resource

from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from producers.gateway.metrics import GatewayMetrics
from stream_processors.metrics import WorkerMetrics
from ulasan.core.process_metrics import add_process_collectors


def samples(registry: CollectorRegistry) -> dict[str, float]:
    """Every exposed sample by name, and every family by name (with ``#family`` prefixed)."""
    text = generate_latest(registry).decode()
    families = list(text_string_to_metric_families(text))
    out = {s.name: s.value for f in families for s in f.samples}
    out.update({f"#{f.name}": 0.0 for f in families})
    return out


def test_worker_and_gateway_registries_expose_process_metrics() -> None:
    # ru_maxrss is in KiB on Linux: the resident memory now is at most the peak, and above 0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    for registry in (WorkerMetrics().registry, GatewayMetrics().registry):
        got = samples(registry)
        assert 0 < got["process_resident_memory_bytes"] <= peak * 1.05
        assert got["process_cpu_seconds_total"] > 0
        assert "python_info" in got and "python_gc_collections_total" in got
        # and the registry's own metrics are still there
        assert any(n.startswith("#ulasan_") for n in got)


def test_the_default_registry_is_left_as_it_is() -> None:
    assert add_process_collectors(REGISTRY) is REGISTRY
    assert "process_resident_memory_bytes" in samples(REGISTRY)
