"""``ulasan gateway``: serve HTTP and gRPC, hash API keys, regenerate the gRPC stubs."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import typer
from prometheus_client import start_http_server
from rich.console import Console

from producers.gateway.errors import GatewayError
from producers.gateway.protos import ROOT, generate
from producers.gateway.security import hash_key
from producers.gateway.server import Gateway
from producers.gateway.settings import GatewaySettings
from ulasan.core.logs import configure_logging
from ulasan.core.serving import MetricsEndpoint

console = Console()
app = typer.Typer(
    help="The HTTP/gRPC gateway: ad-hoc predictions through the stream.",
    no_args_is_help=True,
)


@app.command("serve")
def serve(
    host: str | None = typer.Option(None, "--host", help="listen address [127.0.0.1]"),
    http_port: int | None = typer.Option(None, "--http-port", help="HTTP port (0 = none) [8080]"),
    grpc_port: int | None = typer.Option(None, "--grpc-port", help="gRPC port (0 = none) [50051]"),
    deadline_s: float | None = typer.Option(None, "--deadline", help="reply deadline, s [2]"),
    topic_prefix: str | None = typer.Option(None, "--topic-prefix", help="as the workers'"),
    metrics_host: str | None = typer.Option(
        None, "--metrics-host", help="address Prometheus reaches /metrics at [127.0.0.1]"
    ),
    register: bool | None = typer.Option(
        None,
        "--register/--no-register",
        help="register /metrics as a file_sd target [ULASAN_PROMETHEUS__REGISTER_TARGETS]",
    ),
) -> None:
    """Serve the gateway until SIGTERM or Ctrl-C (needs Kafka and running `ulasan worker`s)."""
    settings = _settings(
        host=host,
        http_port=http_port,
        grpc_port=grpc_port,
        deadline_s=deadline_s,
        topic_prefix=topic_prefix,
        metrics_host=metrics_host,
    )
    cfg = settings.gateway
    configure_logging(cfg.loglevel, settings.log_format)
    gateway = Gateway.build(settings)
    with MetricsEndpoint(
        settings, host=cfg.metrics_host, role="gateway", register=register
    ) as endpoint:
        try:
            asyncio.run(gateway.serve(on_ready=_on_ready(gateway, endpoint)))
        except GatewayError as exc:
            console.print(f"[red]gateway failed:[/red] {exc}")
            raise typer.Exit(1) from exc
        except KeyboardInterrupt:
            pass


def _settings(**overrides: object) -> GatewaySettings:
    """The gateway settings from the environment, with the options given on the command line."""
    try:
        settings = GatewaySettings()
    except ValueError as exc:
        console.print(f"[red]bad gateway settings:[/red] {exc}")
        raise typer.Exit(2) from exc
    given = {k: v for k, v in overrides.items() if v is not None}
    if given:
        settings = settings.model_copy(
            update={"gateway": settings.gateway.model_copy(update=given)}
        )
    return settings


def _on_ready(gateway: Gateway, endpoint: MetricsEndpoint) -> Callable[[dict[str, int]], None]:
    """Once the ports are bound: say where, and register /metrics (served by the HTTP app)."""
    cfg = gateway.settings.gateway
    scheme = "https" if cfg.tls_cert else "http"

    def ready(ports: dict[str, int]) -> None:
        if "http" in ports:
            docs = "docs at /docs" if cfg.docs_on else "docs off"
            console.print(f"HTTP on {scheme}://{cfg.host}:{ports['http']} ({docs})")
        if cfg.metrics_port is not None:
            registry = gateway.core.metrics.registry
            endpoint.announce(
                f"gateway-{cfg.metrics_port}",
                cfg.metrics_port,
                serve=lambda port: start_http_server(
                    port, addr=cfg.metrics_host, registry=registry
                ),
            )
            console.print(f"/metrics on http://{cfg.metrics_host}:{cfg.metrics_port}")
        elif "http" in ports:
            endpoint.announce(f"gateway-{ports['http']}", ports["http"])
        if "grpc" in ports:
            console.print(f"gRPC on {cfg.host}:{ports['grpc']} (TLS: {bool(cfg.tls_cert)})")
        console.print(
            f"instance {gateway.core.instance_id} reads {gateway.core.replies_topic}"
            f"[{gateway.core.partition}]; auth {'on' if cfg.auth_required else 'off'}"
        )

    return ready


@app.command("hash-key")
def hash_key_command(
    key: str = typer.Argument(..., help="the API key to store (its SHA-256 is printed)"),
) -> None:
    """Print the SHA-256 digest to put in ULASAN_GATEWAY__API_KEYS (never store the key)."""
    typer.echo(hash_key(key))


@app.command("protos")
def protos(
    out: Path | None = typer.Option(None, "--out", help="root to write under [the repository]"),
) -> None:
    """Regenerate ulasan/core/grpc_gen from schemas/ulasan.proto (needs grpcio-tools)."""
    for path in generate(out or ROOT):
        console.print(f"wrote {path}")
