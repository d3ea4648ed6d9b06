"""Peak RSS from /proc (VmHWM), the process tree, ``wait4``'s peak, and the check that a live
process has PyTorch mapped (it can tell a process that imported torch from one that did not)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from ulasan.proc_memory import (
    children_of,
    proc_status_kib,
    process_memory,
    torch_loaded,
    waited_peak_mib,
)

HOLD = "import sys, time\nprint('ready', flush=True)\ntime.sleep(60)\n"


def _ready(code: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=dict(os.environ)
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    return proc


def test_this_process_has_a_peak_at_least_its_current_rss() -> None:
    status = proc_status_kib(os.getpid())
    assert status["VmHWM"] >= status["VmRSS"] > 0
    mine = process_memory(os.getpid())
    assert mine["pid"] == os.getpid()
    assert mine["peak_rss_mib"] >= mine["rss_mib"] > 0


def test_a_process_that_grew_keeps_its_peak_after_it_freed_the_memory() -> None:
    grow = "b = bytearray(200 * 2**20)\nfor i in range(0, len(b), 4096): b[i] = 1\ndel b\n"
    proc = _ready(grow + HOLD)
    try:
        mem = process_memory(proc.pid)
        assert mem["peak_rss_mib"] >= 200 > mem["rss_mib"]
    finally:
        proc.kill()
        proc.wait()


def test_a_tree_sums_the_children_peaks() -> None:
    code = (
        "import subprocess, sys\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n" + HOLD
    )
    proc = _ready(code)
    try:
        kids = children_of(proc.pid)
        assert len(kids) == 1
        tree = process_memory(proc.pid, tree=True)
        assert [k["pid"] for k in tree["children"]] == kids
        own, child = tree["own_peak_rss_mib"], tree["children"][0]["peak_rss_mib"]
        assert tree["peak_rss_mib"] == round(own + child, 1)
    finally:
        for pid in children_of(proc.pid):
            os.kill(pid, 9)
        proc.kill()
        proc.wait()


def test_a_gone_process_reads_as_empty() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    assert proc_status_kib(proc.pid) == {}
    assert process_memory(proc.pid)["peak_rss_mib"] is None
    assert torch_loaded(proc.pid) is False


def test_torch_is_seen_in_a_process_that_imported_it_and_only_there() -> None:
    with_torch = _ready("import torch\n" + HOLD)
    without = _ready("import json\n" + HOLD)
    try:
        assert torch_loaded(with_torch.pid) is True
        assert torch_loaded(without.pid) is False
    finally:
        for proc in (with_torch, without):
            proc.kill()
            proc.wait()


def test_the_waited_peak_of_a_child() -> None:
    code = "b = bytearray(120 * 2**20)\nfor i in range(0, len(b), 4096): b[i] = 1\n"
    proc = subprocess.Popen([sys.executable, "-c", code])
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    assert proc.returncode == 0
    assert waited_peak_mib(usage) >= 120


def test_the_stat_parser_survives_a_command_name_with_spaces(tmp_path: Path) -> None:
    for pid, ppid, name in ((10, 1, "a b) c"), (11, 10, "kid"), (12, 11, "grand kid")):
        (tmp_path / str(pid)).mkdir()
        (tmp_path / str(pid) / "stat").write_text(f"{pid} ({name}) S {ppid} 1 1 0 -1\n")
    (tmp_path / "self").mkdir()
    assert children_of(10, proc=tmp_path) == [11, 12]
    assert children_of(12, proc=tmp_path) == []
