"""Where the CPU went during a measurement, read from ``/proc``.

A latency or throughput figure on a small machine means little without the CPU it had: at
100 requests per second the load generator, the gateway, the broker and the worker share the
same cores, and once those cores are busy every hop waits for one. :class:`CpuWindow` records,
over one measured interval, the machine's busy share (``/proc/stat``: everything but idle and
iowait, over all cores), the CPU seconds of the named processes (``utime + stime`` of
``/proc/PID/stat``), of this process's waited-for children (the load generators run as
children) and what is left for everything else (the broker, PostgreSQL, the kernel).
"""

from __future__ import annotations

import os
import resource
from pathlib import Path
from types import TracebackType
from typing import Any

PROC = Path("/proc")


def machine_jiffies(proc: Path = PROC) -> tuple[int, int, int]:
    """(busy, total, niced) clock ticks of all cores since boot, from the ``cpu`` line of
    /proc/stat (niced: the user time of processes at a positive nice value, part of busy)."""
    first = (proc / "stat").read_text().split("\n", 1)[0].split()
    if not first or first[0] != "cpu":
        raise ValueError(f"unexpected first line of {proc / 'stat'}: {' '.join(first)!r}")
    ticks = [int(x) for x in first[1:9]]  # user nice system idle iowait irq softirq steal
    idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)
    total = sum(ticks)
    return total - idle, total, ticks[1]


def process_cpu_s(pid: int, proc: Path = PROC) -> float | None:
    """CPU seconds (user + system) the process used so far; None when it is gone."""
    try:
        stat = (proc / str(pid) / "stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


class CpuWindow:
    """``with CpuWindow({"gateway": pid, ...}) as w: ...`` then ``w.result()``."""

    def __init__(self, pids: dict[str, int], proc: Path = PROC) -> None:
        self.pids = dict(pids)
        self.proc = proc
        self._start: tuple[tuple[int, int, int], dict[str, float | None], float] | None = None
        self._end: tuple[tuple[int, int, int], dict[str, float | None], float] | None = None

    def _read(self) -> tuple[tuple[int, int, int], dict[str, float | None], float]:
        own = {name: process_cpu_s(pid, self.proc) for name, pid in self.pids.items()}
        return machine_jiffies(self.proc), own, _children_cpu_s()

    def __enter__(self) -> CpuWindow:
        self._start = self._read()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._end = self._read()

    def result(self) -> dict[str, Any]:
        """``machine_busy_share`` (0-1 over all cores), ``cores``, ``machine_busy_cpu_s``,
        ``processes_cpu_s`` (None for a process that ended meanwhile), ``children_cpu_s``
        (the load generators), ``other_cpu_s`` (busy time nobody named used) and, of that,
        ``niced_cpu_s``: background work at a positive nice value, which only takes what the
        measured processes leave idle."""
        if self._start is None or self._end is None:
            raise RuntimeError("CpuWindow.result() before the window closed")
        (busy0, total0, niced0), own0, kids0 = self._start
        (busy1, total1, niced1), own1, kids1 = self._end
        hz = os.sysconf("SC_CLK_TCK")
        busy_s = (busy1 - busy0) / hz
        processes: dict[str, float | None] = {}
        for name, before in own0.items():
            after = own1.get(name)
            processes[name] = (
                round(after - before, 2) if before is not None and after is not None else None
            )
        kids = round(kids1 - kids0, 2)
        named = sum(v for v in processes.values() if v is not None) + kids
        return {
            "machine_busy_share": round((busy1 - busy0) / (total1 - total0), 3)
            if total1 > total0
            else None,
            "cores": os.cpu_count(),
            "machine_busy_cpu_s": round(busy_s, 2),
            "processes_cpu_s": processes,
            "children_cpu_s": kids,
            "other_cpu_s": round(max(0.0, busy_s - named), 2),
            "niced_cpu_s": round((niced1 - niced0) / hz, 2),
        }
