"""A live gateway for tests: `ulasan gateway serve` subprocesses beside a StreamEnv's workers."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.helpers.stream_env import StreamEnv, wait_until
from ulasan.procs import Child, free_port, gateway_serve_args, spawn


@dataclass
class GatewayProcess(Child):
    """One `ulasan gateway serve` subprocess and where it listens."""

    http_port: int
    grpc_port: int
    audit_path: Path
    scheme: str = "http"
    verify: ssl.SSLContext | bool = True

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.http_port}"

    @property
    def grpc_target(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def wait_up(self, timeout_s: float = 60.0) -> None:
        def up() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(f"the gateway exited:\n{self.log()[-4000:]}")
            try:
                resp = httpx.get(self.url + "/health", timeout=1, verify=self.verify)
                return resp.status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(up, timeout_s, "the gateway to answer /health")

    def wait_ready(self, timeout_s: float = 90.0, headers: dict[str, str] | None = None) -> None:
        def ready() -> bool:
            try:
                resp = httpx.get(self.url + "/ready", timeout=5, headers=headers)
            except httpx.HTTPError:
                return False
            return resp.status_code == 200

        wait_until(ready, timeout_s, "the gateway to be ready (a worker answering)", 1.0)

    def stop(self, timeout_s: float = 20.0, kill_wait_s: float = 10.0) -> int:
        return super().stop(timeout_s, kill_wait_s)


def start_gateway(
    env: StreamEnv,
    name: str,
    *,
    scheme: str = "http",
    verify: ssl.SSLContext | bool = True,
    **extra_env: str,
) -> GatewayProcess:
    """Start a gateway on free ports reading ``env``'s prefixed topics."""
    http_port, grpc_port = free_port(), free_port()
    log_path = env.workdir / f"gateway-{name}.log"
    audit = env.workdir / f"audit-{name}.jsonl"
    variables = env.env(
        ULASAN_GATEWAY__TOPIC_PREFIX=env.prefix,
        ULASAN_GATEWAY__AUDIT_LOG=str(audit),
        ULASAN_GATEWAY__INSTANCE_ID=f"gw-{name}-{env.prefix.strip('.')}",
        ULASAN_GATEWAY__WORKER_GROUP=env.app_id,
        ULASAN_GATEWAY__HEALTH_INTERVAL_S="1",
        **extra_env,
    )
    proc = spawn(
        gateway_serve_args(http_port, grpc_port), env=variables, log_path=log_path, cwd=env.workdir
    )
    gw = GatewayProcess(name, proc, log_path, http_port, grpc_port, audit, scheme, verify)
    gw.wait_up()
    return gw
