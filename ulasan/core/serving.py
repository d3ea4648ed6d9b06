"""Serving /metrics to Prometheus for the life of a process: serve, register, run, unregister.

The worker and the gateway both wrap their run in a :class:`MetricsEndpoint`::

    with MetricsEndpoint(settings, host=cfg.metrics_host, role="worker") as endpoint:
        endpoint.announce(f"worker-{app_id}-{port}", port, serve=metrics.serve)
        run()

``announce`` starts the endpoint when the process serves /metrics itself (``serve``), then
registers it as a Prometheus file_sd target (:mod:`ulasan.core.scrape`); leaving the block
unregisters every target it registered, however the run ended.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from types import TracebackType

from ulasan.core.errors import CoreError
from ulasan.core.scrape import register_target, unregister_target
from ulasan.core.settings import Settings

log = logging.getLogger(__name__)


class MetricsServeError(CoreError):
    """/metrics could not be served (the port is taken or not ours to bind)."""


class MetricsEndpoint:
    """The /metrics endpoints of one process and the scrape targets registered for them.

    ``role`` labels the targets (``worker``, ``gateway``); ``register=False`` serves without
    registering (a process Prometheus should not scrape, or one Prometheus discovers itself);
    ``None`` follows ``settings.prometheus.register_targets``. A target that cannot be
    registered is logged and skipped: the process runs unscraped rather than not at all.
    """

    def __init__(
        self, settings: Settings, *, host: str, role: str, register: bool | None = None
    ) -> None:
        self.settings = settings
        self.host = host
        self.role = role
        self.register = settings.prometheus.register_targets if register is None else register
        self.targets: list[str] = []

    def announce(
        self, name: str, port: int, *, serve: Callable[[int], object] | None = None
    ) -> str | None:
        """Serve /metrics on ``port`` (when ``serve`` is given) and register it as ``name``.

        Returns the registered target name, None when not registered. Raises
        :class:`MetricsServeError` when ``serve`` cannot bind the port.
        """
        if serve is not None:
            try:
                serve(port)
            except OSError as exc:
                raise MetricsServeError(f"cannot serve /metrics on port {port}: {exc}") from exc
        if not self.register:
            return None
        try:
            register_target(self.settings, name, port, host=self.host, labels={"role": self.role})
        except (CoreError, OSError) as exc:
            log.warning("Prometheus will not scrape %s %s: %s", self.role, name, exc)
            return None
        self.targets.append(name)
        return name

    def close(self) -> None:
        """Unregister every target this endpoint registered."""
        while self.targets:
            unregister_target(self.settings, self.targets.pop())

    def __enter__(self) -> MetricsEndpoint:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
