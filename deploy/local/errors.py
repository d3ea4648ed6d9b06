"""Errors of the local stack: one root, :class:`StackError`, and leaves that say what to do."""

from __future__ import annotations

from pathlib import Path


class StackError(Exception):
    """Root of every error ``ulasan stack`` raises; the message is meant for the user."""


class PrerequisiteMissing(StackError):
    """A program the stack needs is not installed; names the Debian package that provides it."""

    def __init__(self, what: str, package: str) -> None:
        super().__init__(
            f"not installed: {what}. Run `make system-deps` "
            f"(or `apt-get install -y {package}`) and try again"
        )
        self.what = what
        self.package = package


class ConfigError(StackError):
    """Settings the local stack cannot run with (a remote host, a port already taken, ...)."""


class ServiceStartError(StackError):
    """A service did not start or did not become healthy; carries the tail of its log."""

    def __init__(self, service: str, reason: str, log: Path | None = None, tail: str = "") -> None:
        message = f"{service} did not start: {reason}"
        if log is not None:
            message += f"\n  log: {log}"
        if tail:
            message += "\n  last lines:\n" + "\n".join(f"    {line}" for line in tail.splitlines())
        super().__init__(message)
        self.service = service
        self.reason = reason
        self.log = log


class ServiceStopError(StackError):
    """A service's processes are still there after SIGKILL (or pg_ctl stop failed)."""


class ServiceUnavailable(StackError):
    """A service that should be running does not answer (topics, migrations, smoke flow)."""


class MigrationError(StackError):
    """The database migrations could not be read or applied."""
