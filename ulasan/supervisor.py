"""Supervising the processes of ``ulasan run``: start them, notice a death, restart, stop all.

A process that exits while the run goes on is reported with its exit code and its log. Those
that may be restarted (workers, gateway, UI) come back after a short backoff, at most
``restart_limit`` times each; after that, or for one that must not be restarted (the trainer:
a retrain cut short is not resumed by starting it again), the run goes on without it, unless
it was essential (the workers: without them nothing is scored), which ends the run.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from ulasan.errors import MainJobError
from ulasan.procs import Child, Service, stop_all

#: Restarts of one process in one run before the run stops restarting it.
RESTART_LIMIT = 3
#: Seconds before the first restart; it doubles with each further one.
RESTART_BACKOFF_S = 2.0


@dataclass
class Supervised:
    """A service and what the supervisor knows of it."""

    service: Service
    restart: bool
    essential: bool
    restarts: int = 0
    #: when the dead process is due to be started again (monotonic), None while it runs
    restart_at: float | None = None
    gave_up: bool = False


class Supervisor:
    """Starts services, restarts those that die (within a limit), stops them all together."""

    def __init__(
        self,
        say: Callable[[str], None],
        *,
        restart_limit: int = RESTART_LIMIT,
        backoff_s: float = RESTART_BACKOFF_S,
    ) -> None:
        self.say = say
        self.restart_limit = restart_limit
        self.backoff_s = backoff_s
        self.entries: list[Supervised] = []

    def add(self, service: Service, *, restart: bool, essential: bool = False) -> Service:
        self.entries.append(Supervised(service, restart, essential))
        return service

    def start(self) -> None:
        """Start every service that has not been started yet."""
        for entry in self.entries:
            if entry.service.child is None:
                entry.service.start()

    def check(self, now: float | None = None) -> None:
        """Report services that exited, restart those due; :class:`MainJobError` when an
        essential one is gone for good."""
        now = time.monotonic() if now is None else now
        for entry in self.entries:
            service = entry.service
            if entry.gave_up or service.child is None or service.alive():
                continue
            if entry.restart_at is None:
                self._exited(entry, now)
            elif now >= entry.restart_at:
                entry.restarts += 1
                entry.restart_at = None
                child = service.start()
                self.say(
                    f"{service.name}: restarted ({entry.restarts} of {self.restart_limit}), "
                    f"pid {child.proc.pid}"
                )

    def _exited(self, entry: Supervised, now: float) -> None:
        service = entry.service
        tail = service.log_tail(1500).rstrip()
        self.say(
            f"{service.name}: exited with code {service.exit_code}; its log "
            f"({service.log_path}) ends with:\n{tail}"
        )
        if entry.restart and entry.restarts < self.restart_limit:
            entry.restart_at = now + self.backoff_s * 2**entry.restarts
            return
        entry.gave_up = True
        why = f"restarted {entry.restarts} times already" if entry.restart else "not restarted"
        self.say(f"{service.name}: {why}; the run goes on without it")
        if entry.essential:
            raise MainJobError(
                f"{service.name} keeps exiting ({why}); see its log {service.log_path}"
            )

    def running(self) -> list[Service]:
        return [e.service for e in self.entries if e.service.alive()]

    def stop(self, timeout_s: float = 30.0) -> dict[str, int | None]:
        """SIGTERM to every running service at once, SIGKILL to those still there after
        ``timeout_s``; each service's exit code."""
        children: list[Child] = [
            e.service.child for e in self.entries if e.service.child is not None
        ]
        stop_all(children, timeout_s)
        return {e.service.name: e.service.exit_code for e in self.entries}
