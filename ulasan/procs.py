"""Launching ``ulasan`` subprocesses: the command line, the environment, a log file, the stop.

One launcher for the main job, the benchmarks, the scenario and the test helpers. Every child
runs in its own session (its own process group), its stdout and stderr go to one log file, and
stopping it is SIGTERM to the group, then SIGKILL when it does not leave in time.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

#: The ``ulasan`` entry point of this interpreter's environment.
ULASAN_BIN = Path(sys.executable).parent / "ulasan"


def free_port(preferred: int | None = None) -> int:
    """``preferred`` when nobody listens on it, else any free port on 127.0.0.1."""
    if preferred:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", preferred))
                return preferred
            except OSError:
                pass
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def child_env(
    overrides: Mapping[str, str] | None = None, *, inherit_settings: bool = True
) -> dict[str, str]:
    """This process's environment with ``overrides`` (``ULASAN_*`` settings) on top, output
    unbuffered. ``inherit_settings=False`` drops this process's own ``ULASAN_*`` variables
    first, so the child sees only the settings it is given."""
    env = {k: v for k, v in os.environ.items() if inherit_settings or not k.startswith("ULASAN_")}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(overrides or {})
    return env


def gateway_serve_args(http_port: int, grpc_port: int) -> list[str]:
    """``ulasan gateway serve`` on the given ports, not registered as a Prometheus target."""
    return [
        "gateway",
        "serve",
        "--http-port",
        str(http_port),
        "--grpc-port",
        str(grpc_port),
        "--no-register",
    ]


def spawn(
    args: Sequence[str],
    *,
    env: Mapping[str, str],
    log_path: Path,
    cwd: Path | None = None,
    append: bool = False,
) -> subprocess.Popen[bytes]:
    """Start ``ulasan ARGS...`` in its own session, stdout and stderr into ``log_path``."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab" if append else "wb") as log:
        return subprocess.Popen(
            [str(ULASAN_BIN), *args],
            env=dict(env),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            cwd=cwd,
        )


def read_tail(path: Path, chars: int | None = None) -> str:
    """The last ``chars`` characters of a log file (all of it for None); "" when missing."""
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return ""
    return text if chars is None else text[-chars:]


def _signal_group(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    # the child leads its own session, so its process group id is its pid; it may have
    # exited between the check and the signal
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)


@dataclass
class Child:
    """One ``ulasan`` subprocess started by :func:`spawn`, and its log file."""

    name: str
    proc: subprocess.Popen[bytes]
    log_path: Path

    def alive(self) -> bool:
        return self.proc.poll() is None

    @property
    def exit_code(self) -> int | None:
        """The exit code, None while it runs (negative: the signal that ended it)."""
        return self.proc.poll()

    def log(self, chars: int | None = None) -> str:
        """Its log, or the last ``chars`` characters of it."""
        return read_tail(self.log_path, chars)

    def kill(self, wait_s: float = 30.0) -> None:
        """SIGKILL to its process group: no clean-up, no goodbye (what a crash looks like)."""
        if self.alive():
            _signal_group(self.proc, signal.SIGKILL)
        self.proc.wait(timeout=wait_s)

    def terminate(self, timeout_s: float = 60.0, kill_wait_s: float = 30.0) -> bool:
        """SIGTERM to its process group (a clean leave), SIGKILL after ``timeout_s``. True when
        it left on SIGTERM (or had already exited), False when it had to be killed."""
        if not self.alive():
            return True
        _signal_group(self.proc, signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.kill(kill_wait_s)
            return False
        return True

    def stop(self, timeout_s: float = 60.0, kill_wait_s: float = 30.0) -> int:
        """:meth:`terminate`, then the exit code."""
        self.terminate(timeout_s, kill_wait_s)
        return self.proc.wait()
