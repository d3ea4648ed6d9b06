"""The contract of one local-stack service: folders, PID file, log, start, stop, health.

A service owns a folder under ``state_dir``, a PID file under ``state_dir/run`` and a log under
``state_dir/logs``. Each service module (kafka, postgres, mlflow_server, prometheus) subclasses
:class:`Service`; :mod:`deploy.local.manager` runs them together.
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

import httpx

from deploy.local import process
from deploy.local.errors import PrerequisiteMissing, ServiceStartError
from ulasan.core.settings import Settings

Say = Callable[[str], None]


def quiet(_: str) -> None:
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

    def __init__(self, settings: Settings, say: Say = quiet) -> None:
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
