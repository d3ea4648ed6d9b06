"""The local stack manager: ``up`` / ``down`` / ``status`` over the services of the stack.

``up`` checks every prerequisite first, starts what is not running (Kafka, MLflow and
Prometheus boot in parallel), waits for each health check, then runs each service's idempotent
setup (database role and migrations, Kafka topics). The service contract is
:mod:`deploy.local.service`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from deploy.local import process
from deploy.local.errors import PrerequisiteMissing, StackError
from deploy.local.kafka import KafkaService
from deploy.local.mlflow_server import MLflowService
from deploy.local.postgres import PostgresService, connect_error
from deploy.local.prometheus import PrometheusService
from deploy.local.service import Say, Service, ServiceStatus, http_error, quiet
from ulasan.core.kafka_admin import metadata_error
from ulasan.core.settings import Settings


@dataclass(frozen=True)
class UpResult:
    """What ``up`` did for one service: ``action`` is ``started`` or ``already running``."""

    name: str
    action: str
    address: str
    note: str
    seconds: float


@dataclass(frozen=True)
class DownResult:
    """What ``down`` did for one service: ``action`` is ``stopped`` or ``not running``."""

    name: str
    action: str
    seconds: float


def services(settings: Settings, say: Say = quiet) -> list[Service]:
    """The services of the stack in start order (stopped in reverse)."""
    return [
        PostgresService(settings, say),
        KafkaService(settings, say),
        MLflowService(settings, say),
        PrometheusService(settings, say),
    ]


def check_prerequisites(stack: list[Service]) -> None:
    """Check every service; one :class:`PrerequisiteMissing` naming every missing package."""
    missing: list[PrerequisiteMissing] = []
    for service in stack:
        try:
            service.check_prerequisites()
        except PrerequisiteMissing as exc:
            missing.append(exc)
    if len(missing) == 1:
        raise missing[0]
    if missing:
        raise PrerequisiteMissing(
            ", ".join(m.what for m in missing), " ".join(sorted({m.package for m in missing}))
        )


def up(settings: Settings, say: Say = quiet) -> list[UpResult]:
    """Start every service that does not run, wait for all, run their setup. Idempotent."""
    stack = services(settings, say)
    check_prerequisites(stack)
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    began: dict[str, float] = {}
    started: set[str] = set()
    to_start = [service for service in stack if service.pid() is None]
    # every port first: a port taken by a stranger should stop us before anything starts
    for service in to_start:
        for host, port, setting in service.ports():
            process.require_free_port(host, port, service=service.name, setting=setting)
    try:
        for service in to_start:
            say(f"starting {service.name}")
            began[service.name] = time.monotonic()
            started.add(service.name)
            service.start()
        results = []
        for service in stack:
            t0 = began.get(service.name, time.monotonic())
            service.wait_healthy(settings.stack.startup_timeout_s)
            note = service.setup()
            action = "started" if service.name in started else "already running"
            results.append(
                UpResult(service.name, action, service.address(), note, time.monotonic() - t0)
            )
        return results
    except StackError:
        # leave nothing half-started behind: what this call started is stopped again
        for service in reversed(stack):
            if service.name in started:
                try:
                    service.stop()
                except StackError as stop_exc:
                    say(f"could not stop {service.name}: {stop_exc}")
        raise


def down(settings: Settings) -> list[DownResult]:
    """Stop every service of the stack (reverse start order); what does not run is skipped."""
    results = []
    for service in reversed(services(settings)):
        t0 = time.monotonic()
        action = "stopped" if service.stop() else "not running"
        results.append(DownResult(service.name, action, time.monotonic() - t0))
    return results


def status(settings: Settings) -> list[ServiceStatus]:
    """The state of every service: running, unhealthy (process up, no answer) or stopped."""
    return [service.status() for service in services(settings)]


def service_problems(settings: Settings) -> dict[str, str]:
    """Which services of ``settings`` do not answer, and why (network checks only).

    Unlike :func:`status` this needs no PID files, so it also checks a stack started elsewhere
    (CI, compose); an empty dict means Kafka, PostgreSQL, MLflow and Prometheus all answer.
    """
    checks: dict[str, Callable[[], str | None]] = {
        "kafka": lambda: metadata_error(settings.kafka.bootstrap_servers),
        "postgres": lambda: connect_error(settings.postgres.dsn),
        "mlflow": lambda: http_error(f"{settings.mlflow.uri}/health"),
        "prometheus": lambda: http_error(f"{settings.prometheus.url}/-/ready"),
    }
    problems = {}
    for name, check in checks.items():
        reason = check()
        if reason is not None:
            problems[name] = reason
    return problems
