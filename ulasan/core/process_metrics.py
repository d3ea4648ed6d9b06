"""Process metrics (``process_*``, ``python_info``, ``python_gc_*``) on a registry of one's own.

prometheus_client registers its process, platform and GC collectors on its default registry
only; ulasan's processes serve registries of their own, so each adds them here. Memory
(``process_resident_memory_bytes``), CPU seconds and open files of every worker and gateway
replica are then scraped beside its own metrics.
"""

from __future__ import annotations

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    GCCollector,
    PlatformCollector,
    ProcessCollector,
)


def add_process_collectors(registry: CollectorRegistry) -> CollectorRegistry:
    """Register the process, platform and GC collectors on ``registry``; returns it.

    The default registry already has them (registering twice would raise)."""
    if registry is REGISTRY:
        return registry
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    return registry
