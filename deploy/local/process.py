"""Processes of the local stack: spawn detached, PID files, liveness, stop by process group.

Linux only (it reads ``/proc``). Every service runs in its own session (``start_new_session``),
so its process group id equals the PID we record and stopping the group also stops any
children (uvicorn workers, postgres backends). A PID counts as ours only while its command
line still mentions the stack's state directory, which guards against PID reuse.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from deploy.local.errors import ConfigError, ServiceStopError

PROC = Path("/proc")


def read_pid(path: Path) -> int | None:
    """The PID in ``path`` (first line), or None when the file is missing or not a number."""
    try:
        first = path.read_text().split("\n", 1)[0].strip()
    except (FileNotFoundError, NotADirectoryError):
        return None
    return int(first) if first.isdigit() else None


def write_pid(path: Path, pid: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(f"{pid}\n")
    tmp.replace(path)


def _stat_fields(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name: [state, ppid, pgrp, ...]."""
    try:
        raw = (PROC / str(pid) / "stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # the command name is in parentheses and may itself contain spaces or parentheses
    return raw[raw.rindex(")") + 2 :].split()


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, which nobody has reaped yet, does not count)."""
    fields = _stat_fields(pid)
    return fields is not None and fields[0] not in ("Z", "X")


def cmdline(pid: int) -> str:
    """The command line of ``pid`` joined by spaces ("" when it is gone)."""
    try:
        raw = (PROC / str(pid) / "cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return ""
    return raw.replace(b"\0", b" ").decode("utf-8", "replace").strip()


def owned(pid: int | None, marker: str) -> bool:
    """Whether ``pid`` is alive and its command line contains ``marker`` (our state dir)."""
    return pid is not None and alive(pid) and marker in cmdline(pid)


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes whose process group is ``pgid``."""
    members = []
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(int(entry.name))
        if fields is not None and fields[0] not in ("Z", "X") and fields[2] == str(pgid):
            members.append(int(entry.name))
    return members


def processes_mentioning(marker: str) -> list[int]:
    """Live processes whose command line contains ``marker`` (used to find leftovers)."""
    own = os.getpid()
    found = []
    for entry in PROC.iterdir():
        if entry.name.isdigit() and int(entry.name) != own:
            pid = int(entry.name)
            if alive(pid) and marker in cmdline(pid):
                found.append(pid)
    return found


def spawn(
    argv: Sequence[str],
    *,
    log_path: Path,
    pid_path: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> int:
    """Start ``argv`` detached in a new session, output appended to ``log_path``; return PID."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        log.write(
            f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} starting: {' '.join(argv)}\n".encode()
        )
        log.flush()
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            start_new_session=True,
            close_fds=True,
        )
    write_pid(pid_path, proc.pid)
    return proc.pid


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def stop_group(pgid: int, *, name: str, timeout_s: float = 20.0) -> None:
    """SIGTERM the process group ``pgid``, wait up to ``timeout_s``, then SIGKILL it.

    Raises :class:`ServiceStopError` when processes of the group survive SIGKILL.
    """
    _signal_group(pgid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while group_members(pgid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if group_members(pgid):
        _signal_group(pgid, signal.SIGKILL)
        deadline = time.monotonic() + 5.0
        while group_members(pgid) and time.monotonic() < deadline:
            time.sleep(0.1)
    left = group_members(pgid)
    if left:
        raise ServiceStopError(
            f"{name}: processes {left} survived SIGKILL; check them with `ps -o pid,cmd -p "
            f"{','.join(map(str, left))}`"
        )


def port_free(host: str, port: int) -> bool:
    """Whether nothing listens on ``host:port`` (TCP)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) != 0


def require_free_port(host: str, port: int, *, service: str, setting: str) -> None:
    """Raise :class:`ConfigError` when another program already listens on ``host:port``."""
    if not port_free(host, port):
        raise ConfigError(
            f"{service}: port {port} on {host} is taken by a process that is not part of this "
            f"stack; stop it or choose another port with {setting}"
        )


def tail(path: Path, lines: int = 15) -> str:
    """The last ``lines`` lines of a text file ("" when it does not exist)."""
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 64 * 1024))
            data = fh.read().decode("utf-8", "replace")
    except FileNotFoundError:
        return ""
    return "\n".join(data.splitlines()[-lines:])
