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
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

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
    program: Path | None = None,
) -> subprocess.Popen[bytes]:
    """Start ``ulasan ARGS...`` (or ``program ARGS...``) in its own session, stdout and stderr
    into ``log_path``."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab" if append else "wb") as log:
        return subprocess.Popen(
            [str(program or ULASAN_BIN), *args],
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

    def signal_stop(self) -> None:
        """SIGTERM to its process group, without waiting (see :func:`stop_all`)."""
        if self.alive():
            _signal_group(self.proc, signal.SIGTERM)

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


@dataclass
class Service:
    """A named ``ulasan ARGS...`` process (``program ARGS...`` when given) that can be started
    (again), its output appended to ``log_path``; ``child`` is the latest process, None before
    the first start."""

    name: str
    args: list[str]
    env: dict[str, str]
    log_path: Path
    child: Child | None = None
    program: Path | None = None

    def start(self) -> Child:
        """Start it (again); the new process."""
        proc = spawn(
            self.args, env=self.env, log_path=self.log_path, append=True, program=self.program
        )
        self.child = Child(self.name, proc, self.log_path)
        return self.child

    def alive(self) -> bool:
        return self.child is not None and self.child.alive()

    @property
    def exit_code(self) -> int | None:
        """The latest process's exit code; None while it runs or before it started."""
        return None if self.child is None else self.child.exit_code

    def log_tail(self, chars: int = 3000) -> str:
        return read_tail(self.log_path, chars)

    def stop(self, timeout_s: float = 60.0) -> int | None:
        """SIGTERM (a clean leave), SIGKILL after ``timeout_s``; the exit code."""
        if self.child is None:
            return None
        return self.child.stop(timeout_s)


def stop_all(children: Sequence[Child], timeout_s: float = 30.0) -> None:
    """Stop ``children`` together: SIGTERM to every process group at once, then wait for all
    of them up to ``timeout_s`` in total; those still running are killed."""
    for child in children:
        child.signal_stop()
    deadline = time.monotonic() + timeout_s
    for child in children:
        try:
            child.proc.wait(timeout=max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            child.kill()


_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def interrupt_on_stop_signals() -> None:
    """SIGTERM and SIGHUP raise :class:`KeyboardInterrupt` as Ctrl-C does, so a supervising
    command's clean-up runs whichever way it is stopped (``timeout``, systemd and container
    runtimes send SIGTERM; Python's default for it ends the process at once, leaving the
    children, which run in sessions of their own, behind as orphans). Main thread only."""
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGHUP, _interrupt)


@contextlib.contextmanager
def stop_signals_deferred() -> Iterator[None]:
    """Ignore Ctrl-C, SIGTERM and SIGHUP inside the block (a clean-up in progress must not be
    cut short and leave children running); the previous handlers come back after it. Does
    nothing outside the main thread, where handlers cannot be set."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.getsignal(sig) for sig in _STOP_SIGNALS}
    for sig in _STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
