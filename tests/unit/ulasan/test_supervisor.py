"""ulasan.supervisor: a death is reported, restarted within a limit, and every child stops on
SIGTERM to the supervising process as on Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from ulasan.errors import MainJobError
from ulasan.procs import Service, child_env
from ulasan.supervisor import Supervisor

PYTHON = Path(sys.executable)


def _service(tmp_path: Path, name: str, code: str) -> Service:
    return Service(name, ["-c", code], child_env(), tmp_path / f"{name}.log", program=PYTHON)


def _wait(check, timeout_s: float = 30.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("timed out")


def test_a_dead_process_is_reported_restarted_then_given_up(tmp_path: Path) -> None:
    said: list[str] = []
    sup = Supervisor(said.append, restart_limit=2, backoff_s=0.0)
    crashing = sup.add(
        _service(tmp_path, "gateway", "print('boom', flush=True); raise SystemExit(3)"),
        restart=True,
    )
    sup.start()
    for _ in range(600):  # exits -> restarted twice -> given up; the run goes on
        sup.check()
        if any("the run goes on without it" in line for line in said):
            break
        time.sleep(0.05)
    assert any("gateway: exited with code 3" in line and "boom" in line for line in said)
    assert [line for line in said if "restarted" in line and "of 2" in line][-1].startswith(
        "gateway: restarted (2 of 2)"
    )
    assert "gateway: restarted 2 times already; the run goes on without it" in said
    assert crashing.log_tail().count("boom") == 3  # the log is appended to, not replaced


def test_an_essential_process_that_keeps_dying_ends_the_run(tmp_path: Path) -> None:
    sup = Supervisor(lambda line: None, restart_limit=0, backoff_s=0.0)
    sup.add(_service(tmp_path, "worker-0", "raise SystemExit(1)"), restart=True, essential=True)
    sup.start()
    with pytest.raises(MainJobError, match="worker-0 keeps exiting"):
        _wait(lambda: sup.check() or False, timeout_s=30)


def test_a_process_not_to_restart_is_reported_once(tmp_path: Path) -> None:
    said: list[str] = []
    sup = Supervisor(said.append, backoff_s=0.0)
    trainer = sup.add(_service(tmp_path, "trainer", "raise SystemExit(2)"), restart=False)
    sup.start()
    _wait(lambda: not trainer.alive())
    for _ in range(3):
        sup.check()
    assert said[-1] == "trainer: not restarted; the run goes on without it"
    assert sum("exited with code 2" in line for line in said) == 1


def test_stop_ends_every_child_and_kills_one_that_ignores_sigterm(tmp_path: Path) -> None:
    sup = Supervisor(lambda line: None)
    polite = sup.add(_service(tmp_path, "ui", "import time; time.sleep(60)"), restart=True)
    stubborn = sup.add(
        _service(
            tmp_path,
            "stubborn",
            "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
            "print('up', flush=True); time.sleep(60)",
        ),
        restart=True,
    )
    sup.start()
    _wait(lambda: "up" in stubborn.log_tail())
    codes = sup.stop(timeout_s=1.0)
    assert codes == {"ui": -signal.SIGTERM, "stubborn": -signal.SIGKILL}
    assert not polite.alive() and not stubborn.alive()


# A supervising command in miniature: children started, SIGTERM handled as Ctrl-C, the
# clean-up (deferred signals) stops them. Without interrupt_on_stop_signals Python dies at
# once on SIGTERM and the children, in sessions of their own, live on.
SUPERVISING = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from ulasan.procs import Service, child_env, interrupt_on_stop_signals, stop_signals_deferred
    from ulasan.supervisor import Supervisor
    interrupt_on_stop_signals()
    out = Path(sys.argv[1])
    sup = Supervisor(print)
    for n in range(3):
        code = "import time; time.sleep(120)"
        sup.add(Service(f"c{n}", ["-c", code], child_env(), out / f"c{n}.log",
                        program=Path(sys.executable)), restart=True)
    try:
        sup.start()
        (out / "pids").write_text(" ".join(str(e.service.child.proc.pid) for e in sup.entries))
        while True:
            sup.check()
            time.sleep(0.1)
    except KeyboardInterrupt:
        print("stopping", flush=True)
    finally:
        with stop_signals_deferred():
            print(sup.stop(), flush=True)
    """
)


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return True
    return state == "Z"  # a zombie has ended; only its exit status is left


def test_no_child_survives_sigterm_to_the_supervisor(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", SUPERVISING, str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    pids_file = tmp_path / "pids"
    _wait(lambda: pids_file.exists() and pids_file.read_text())
    pids = [int(p) for p in pids_file.read_text().split()]
    assert len(pids) == 3 and not any(_gone(p) for p in pids)
    os.kill(proc.pid, signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    assert "stopping" in out
    survivors = [p for p in pids if not _gone(p)]
    for pid in survivors:  # do not leave them behind when the test fails
        os.killpg(pid, signal.SIGKILL)
    assert survivors == [], out
