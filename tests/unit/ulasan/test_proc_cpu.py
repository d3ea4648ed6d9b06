"""CPU accounting from /proc: a fake /proc for the arithmetic, the real one for the wiring."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ulasan.proc_cpu import CpuWindow, machine_jiffies, process_cpu_s

HZ = os.sysconf("SC_CLK_TCK")


def _fake_proc(root: Path, *, busy: int, idle: int, pid_ticks: int, nice: int = 7) -> None:
    # user nice system idle iowait irq softirq steal guest guest_nice
    user = busy - 10
    (root / "stat").write_text(
        f"cpu  {user - nice} {nice} 10 {idle - 5} 5 0 0 0 0 0\ncpu0 1 2 3 4\n"
    )
    (root / "42").mkdir(exist_ok=True)
    fields = ["S"] + ["0"] * 10 + [str(pid_ticks - 3), "3"] + ["0"] * 30
    (root / "42" / "stat").write_text(f"42 (some (odd) name) {' '.join(fields)}\n")


def test_machine_and_process_ticks_from_a_fake_proc(tmp_path: Path) -> None:
    _fake_proc(tmp_path, busy=300, idle=700, pid_ticks=50)
    assert machine_jiffies(tmp_path) == (300, 1000, 7)
    assert process_cpu_s(42, tmp_path) == pytest.approx(50 / HZ)
    assert process_cpu_s(43, tmp_path) is None  # gone


def test_the_window_splits_busy_time_between_named_processes_and_the_rest(tmp_path: Path) -> None:
    _fake_proc(tmp_path, busy=300, idle=700, pid_ticks=50)
    window = CpuWindow({"worker": 42, "gone": 99}, proc=tmp_path)
    with window:
        _fake_proc(
            tmp_path, busy=300 + 3 * HZ, idle=700 + HZ, pid_ticks=50 + 2 * HZ, nice=7 + HZ // 2
        )
    result = window.result()
    assert result["machine_busy_share"] == pytest.approx(0.75)
    assert result["machine_busy_cpu_s"] == pytest.approx(3.0)
    assert result["processes_cpu_s"] == {"worker": pytest.approx(2.0), "gone": None}
    assert result["other_cpu_s"] == pytest.approx(1.0 - result["children_cpu_s"], abs=0.01)
    assert result["niced_cpu_s"] == pytest.approx(0.5, abs=0.01)


def test_a_malformed_stat_is_refused(tmp_path: Path) -> None:
    (tmp_path / "stat").write_text("intr 1 2 3\n")
    with pytest.raises(ValueError, match="unexpected first line"):
        machine_jiffies(tmp_path)


def test_a_busy_child_shows_in_the_real_proc() -> None:
    burn = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.3: pass"
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        with CpuWindow({"sleeper": child.pid}) as window:
            subprocess.run([sys.executable, "-c", burn], check=True)
            time.sleep(0.05)
        result = window.result()
    finally:
        child.kill()
        child.wait()
    assert result["children_cpu_s"] >= 0.25  # the burner, waited for
    assert result["processes_cpu_s"]["sleeper"] is not None
    assert result["processes_cpu_s"]["sleeper"] < 0.25
    assert 0 < result["machine_busy_share"] <= 1
    with pytest.raises(RuntimeError):
        CpuWindow({}).result()
