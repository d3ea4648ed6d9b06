"""Runs one gateway: the core, uvicorn (HTTP) and grpc.aio (gRPC) on one event loop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import grpc
import uvicorn

from producers.gateway.core import GatewayCore
from producers.gateway.errors import GatewayConfigError
from producers.gateway.grpc_server import build_grpc_server, set_serving, watch_readiness
from producers.gateway.http import build_http_app
from producers.gateway.metrics import GatewayMetrics
from producers.gateway.security import AuditLog, Guard
from producers.gateway.settings import GatewaySettings

log = logging.getLogger(__name__)


@dataclass
class Gateway:
    """The parts of one running gateway (for the CLI, tests and the benchmark)."""

    settings: GatewaySettings
    core: GatewayCore
    guard: Guard
    audit: AuditLog
    http_app: Any

    @classmethod
    def build(cls, settings: GatewaySettings) -> Gateway:

        core = GatewayCore(settings, GatewayMetrics())
        guard = Guard(settings.gateway)
        audit = AuditLog(settings.audit_log_path)
        return cls(settings, core, guard, audit, build_http_app(core, guard, audit))

    def http_config(self, port: int | None = None) -> uvicorn.Config:
        """uvicorn's settings with the gateway's limits: connections + requests at once
        (``http_limit_concurrency``, then 503), idle keep-alive (``http_keep_alive_s``), request
        line + headers (``http_max_header_bytes``, then 400; h11 is the parser that enforces it)."""
        cfg = self.settings.gateway
        return uvicorn.Config(
            self.http_app,
            host=cfg.host,
            port=cfg.http_port if port is None else port,
            http="h11",
            log_level="warning",
            access_log=False,
            # uvicorn's records go to the process's handlers (ULASAN_LOG_FORMAT)
            log_config=None,
            ssl_certfile=str(cfg.tls_cert) if cfg.tls_cert else None,
            ssl_keyfile=str(cfg.tls_key) if cfg.tls_key else None,
            lifespan="off",
            limit_concurrency=cfg.http_limit_concurrency,
            timeout_keep_alive=cfg.http_keep_alive_s,
            h11_max_incomplete_event_size=cfg.http_max_header_bytes,
            server_header=False,
        )

    def grpc_credentials(self) -> Any:
        cfg = self.settings.gateway
        if cfg.tls_cert is None or cfg.tls_key is None:
            return None

        try:
            pair = (cfg.tls_key.read_bytes(), cfg.tls_cert.read_bytes())
        except OSError as exc:
            raise GatewayConfigError(f"cannot read the TLS key or certificate: {exc}") from exc
        return grpc.ssl_server_credentials([pair])

    async def serve(self, *, on_ready: Callable[[dict[str, int]], None] | None = None) -> None:
        """Start the core, then serve HTTP and gRPC until SIGINT/SIGTERM (uvicorn's handlers)
        or until the task is cancelled; close everything on the way out."""

        cfg = self.settings.gateway
        await self.core.start()
        grpc_server = health = watcher = None
        ports: dict[str, int] = {}
        try:
            if cfg.grpc_port or cfg.http_port == 0:
                grpc_server, health, port = build_grpc_server(
                    self.core,
                    self.guard,
                    self.audit,
                    address=f"{cfg.host}:{cfg.grpc_port}",
                    credentials=self.grpc_credentials(),
                )
                await grpc_server.start()
                watcher = asyncio.create_task(watch_readiness(self.core, health), name="health")
                ports["grpc"] = port
            http: Any = None
            if cfg.http_port:
                http = uvicorn.Server(self.http_config())
                ports["http"] = cfg.http_port
            if on_ready is not None:
                on_ready(ports)
            if http is not None:
                await http.serve()
            else:
                await asyncio.Event().wait()
        finally:
            if watcher is not None:
                watcher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watcher
            if health is not None:
                with contextlib.suppress(Exception):
                    await set_serving(health, False)
            if grpc_server is not None:
                await grpc_server.stop(grace=2.0)
            await self.core.stop()
