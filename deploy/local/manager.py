"""The local stack manager: the service contract, and ``up`` / ``down`` / ``status`` over it.

A service owns a folder under ``state_dir``, a PID file under ``state_dir/run`` and a log under
``state_dir/logs``. ``up`` checks every prerequisite first, starts what is not running (Kafka,
MLflow and Prometheus boot in parallel), waits for each health check, then runs each service's
idempotent setup (database role and migrations, Kafka topics).
"""

from __future__ import annotations

import abc
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import ClassVar

from deploy.local import process
from deploy.local.errors import PrerequisiteMissing, ServiceStartError, StackError
from ulasan.core.settings import Settings

Say = Callable[[str], None]


def _quiet(_: str) -> None:
    return None


class State(StrEnum):
    RUNNING = "running"
    STOPPED = "stopped"
    UNHEALTHY = "unhealthy"


@dataclass(frozen=True)
class ServiceStatus:
    """What ``status`` knows about one service."""

    name: str
    state: State
    address: str
    pid: int | None = None
    detail: str = ""


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


class StatePaths:
    """Where the stack keeps its files under ``state_dir``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.logs = root / "logs"
        self.run = root / "run"

    def pid_file(self, service: str) -> Path:
        return self.run / f"{service}.pid"

    def log_file(self, service: str) -> Path:
        return self.logs / f"{service}.log"

    def service_dir(self, service: str) -> Path:
        return self.root / service


def require_program(program: str, package: str, what: str | None = None) -> str:
    """The path of ``program`` on PATH, else :class:`PrerequisiteMissing` naming ``package``."""
    found = shutil.which(program)
    if found is None:
        raise PrerequisiteMissing(what or f"`{program}`", package)
    return found


def http_error(url: str, timeout_s: float = 2.0) -> str | None:
    """None when GET ``url`` answers 200, else the reason (for HTTP health checks)."""
    import httpx

    try:
        response = httpx.get(url, timeout=timeout_s)
    except httpx.HTTPError as exc:
        return f"GET {url}: {type(exc).__name__} {exc}".strip()
    if response.status_code != 200:
        return f"GET {url}: HTTP {response.status_code}"
    return None


class Service(abc.ABC):
    """One process of the local stack, started detached and found again through its PID file."""

    name: ClassVar[str]

    def __init__(self, settings: Settings, say: Say = _quiet) -> None:
        self.settings = settings
        self.paths = StatePaths(settings.state_dir)
        self.say = say

    @property
    def dir(self) -> Path:
        """The service's folder under the state dir."""
        return self.paths.service_dir(self.name)

    @property
    def data_dir(self) -> Path:
        """Where the service keeps its data."""
        return self.dir / "data"

    # -- what each service defines ------------------------------------------------------------
    @abc.abstractmethod
    def address(self) -> str:
        """Where clients reach the service (printed by ``up`` and ``status``)."""

    @abc.abstractmethod
    def check_prerequisites(self) -> None:
        """Raise :class:`PrerequisiteMissing` when a program the service needs is absent."""

    @abc.abstractmethod
    def health(self) -> str | None:
        """None when the service answers as it should, else why it does not (network only)."""

    @abc.abstractmethod
    def command(self) -> list[str]:
        """The argv of the service process (must mention ``state_dir`` somewhere)."""

    def ports(self) -> list[tuple[str, int, str]]:
        """(host, port, setting) the service listens on; checked free before a start."""
        return []

    def prepare(self) -> None:
        """Create folders and config files before the process starts (here: the service dir)."""
        self.paths.service_dir(self.name).mkdir(parents=True, exist_ok=True)

    def env(self) -> dict[str, str] | None:
        """The environment of the process (None: inherit ours)."""
        return None

    def setup(self) -> str:
        """Idempotent work once the service is healthy (topics, migrations); returns a note."""
        return ""

    def diagnostic_logs(self) -> list[Path]:
        """Logs whose last lines explain a failed start (the process output by default)."""
        return [self.log_path]

    # -- shared machinery -----------------------------------------------------------------------
    @property
    def log_path(self) -> Path:
        return self.paths.log_file(self.name)

    @property
    def pid_path(self) -> Path:
        return self.paths.pid_file(self.name)

    @property
    def marker(self) -> str:
        """A string every process of this stack has on its command line: the state dir."""
        return str(self.settings.state_dir)

    def pid(self) -> int | None:
        """The PID of the running service, None when it does not run (stale files ignored)."""
        pid = process.read_pid(self.pid_path)
        return pid if process.owned(pid, self.marker) else None

    def start(self) -> None:
        """Start the process without waiting for it to become healthy."""
        for host, port, setting in self.ports():
            process.require_free_port(host, port, service=self.name, setting=setting)
        self.prepare()
        process.spawn(
            self.command(), log_path=self.log_path, pid_path=self.pid_path, env=self.env()
        )

    def stop(self) -> bool:
        """Stop the service if it runs; True when there was something to stop."""
        pid = self.pid()
        if pid is None:
            self.pid_path.unlink(missing_ok=True)  # a stale file of a process that is gone
            return False
        process.stop_group(pid, name=self.name)
        self.pid_path.unlink(missing_ok=True)
        return True

    def wait_healthy(self, timeout_s: float) -> None:
        """Block until :meth:`health` passes; :class:`ServiceStartError` on exit or timeout."""
        deadline = time.monotonic() + timeout_s
        reason = self.health()
        while reason is not None:
            if self.pid() is None:
                raise self.start_error("the process exited")
            if time.monotonic() > deadline:
                raise self.start_error(
                    f"not healthy after {timeout_s:.0f}s ({reason}); "
                    "a slow machine may need ULASAN_STACK__STARTUP_TIMEOUT_S"
                )
            time.sleep(0.25)
            reason = self.health()

    def start_error(self, reason: str) -> ServiceStartError:
        """A :class:`ServiceStartError` carrying the last lines of the diagnostic logs."""
        logs = [log for log in self.diagnostic_logs() if process.tail(log, 1)]
        if not logs:
            return ServiceStartError(self.name, reason, self.log_path)
        tail = "\n".join(f"[{log.name}]\n{process.tail(log)}" for log in logs)
        return ServiceStartError(self.name, reason, logs[-1], tail)

    def status(self) -> ServiceStatus:
        pid = self.pid()
        if pid is None:
            return ServiceStatus(self.name, State.STOPPED, self.address())
        reason = self.health()
        if reason is not None:
            return ServiceStatus(self.name, State.UNHEALTHY, self.address(), pid, reason)
        return ServiceStatus(self.name, State.RUNNING, self.address(), pid)


def services(settings: Settings, say: Say = _quiet) -> list[Service]:
    """The services of the stack in start order (stopped in reverse)."""
    from deploy.local.kafka import KafkaService
    from deploy.local.mlflow_server import MLflowService
    from deploy.local.postgres import PostgresService
    from deploy.local.prometheus import PrometheusService

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


def up(settings: Settings, say: Say = _quiet) -> list[UpResult]:
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
    from deploy.local.postgres import connect_error
    from ulasan.core.kafka_admin import metadata_error

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
