"""A process's peak resident memory and whether it loaded PyTorch, read from ``/proc``.

Peak RSS is the kernel's high-water mark ``VmHWM`` of ``/proc/PID/status`` (the most resident
memory the process ever had), read while the process still runs; for a process that runs to
its end (a training) it is ``ru_maxrss`` of ``wait4`` (the largest process of the tree that
was waited for). A process that starts children (``ulasan ui`` starts Streamlit's server) is
reported with its tree: each process's own peak and their sum (an upper bound: the peaks need
not coincide).

Serving processes must not load PyTorch: :func:`torch_loaded` tells from the live process's
memory map (``/proc/PID/maps`` naming ``libtorch``), and the JSON says it per process.
"""

from __future__ import annotations

import re
import resource
from pathlib import Path
from typing import Any

PROC = Path("/proc")
_KIB = re.compile(r"^(Vm\w+):\s+(\d+)\s+kB", re.MULTILINE)


def proc_status_kib(pid: int, proc: Path = PROC) -> dict[str, int]:
    """The ``Vm*`` lines of ``/proc/PID/status`` in KiB (empty when the process is gone)."""
    try:
        text = (proc / str(pid) / "status").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return {}
    return {name: int(kib) for name, kib in _KIB.findall(text)}


def children_of(pid: int, proc: Path = PROC) -> list[int]:
    """Every live descendant of ``pid`` (by the parent ids in ``/proc/*/stat``)."""
    parents: dict[int, list[int]] = {}
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        # the command name is in parentheses and may hold spaces: the ppid follows the last ')'
        ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
        parents.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return sorted(out)


def _mib(kib: int | None) -> float | None:
    return None if kib is None else round(kib / 1024.0, 1)


def torch_loaded(pid: int, proc: Path = PROC) -> bool:
    """Whether ``pid`` has PyTorch's native library mapped (it imported torch)."""
    try:
        maps = (proc / str(pid) / "maps").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return "libtorch" in maps


def process_memory(pid: int, *, tree: bool = False, proc: Path = PROC) -> dict[str, Any]:
    """``pid``'s peak and current RSS (MiB) and whether it loaded torch; with ``tree``, also
    each live descendant's and ``peak_rss_mib`` as the sum over the tree."""
    status = proc_status_kib(pid, proc)
    out: dict[str, Any] = {
        "pid": pid,
        "peak_rss_mib": _mib(status.get("VmHWM")),
        "rss_mib": _mib(status.get("VmRSS")),
        "torch_loaded": torch_loaded(pid, proc),
    }
    if tree:
        kids: list[dict[str, Any]] = []
        for child in children_of(pid, proc):
            kid = proc_status_kib(child, proc)
            name = _comm(child, proc)
            kids.append({"pid": child, "name": name, "peak_rss_mib": _mib(kid.get("VmHWM"))})
        out["children"] = kids
        out["own_peak_rss_mib"] = out["peak_rss_mib"]
        out["peak_rss_mib"] = round(
            (out["peak_rss_mib"] or 0.0) + sum(k["peak_rss_mib"] or 0.0 for k in kids), 1
        )
    return out


def _comm(pid: int, proc: Path) -> str:
    try:
        return (proc / str(pid) / "comm").read_text().strip()
    except (FileNotFoundError, ProcessLookupError):
        return ""


def waited_peak_mib(rusage: resource.struct_rusage) -> float:
    """``ru_maxrss`` of a ``wait4`` (KiB on Linux) in MiB."""
    return round(float(rusage.ru_maxrss) / 1024.0, 1)
