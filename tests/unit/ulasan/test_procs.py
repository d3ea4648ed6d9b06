"""ulasan.procs: the one launcher of ``ulasan`` subprocesses (log file, own session, stop)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ulasan.cli import app
from ulasan.procs import Child, child_env, free_port, read_tail, spawn


def _python_child(tmp_path: Path, code: str) -> Child:
    log_path = tmp_path / "child.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-c", code],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return Child("child", proc, log_path)


def test_spawn_runs_ulasan_in_its_own_session_into_the_log(tmp_path: Path) -> None:
    log_path = tmp_path / "logs" / "help.log"
    proc = spawn(["--help"], env=child_env(), log_path=log_path)
    child = Child("help", proc, log_path)
    assert os.getsid(proc.pid) == proc.pid  # a session of its own (unreaped until the wait)
    assert proc.wait(timeout=60) == 0
    assert child.stop() == 0  # already exited: nothing is signalled
    assert "Usage" in child.log() and child.log(5) == child.log()[-5:]


def test_stop_sends_sigterm_then_kills_one_that_ignores_it(tmp_path: Path) -> None:
    polite = _python_child(tmp_path, "import time; print('up', flush=True); time.sleep(60)")
    assert polite.terminate(timeout_s=10) is True
    assert polite.exit_code == -signal.SIGTERM
    stubborn = _python_child(
        tmp_path,
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "print('up', flush=True); time.sleep(60)",
    )
    deadline = time.monotonic() + 20
    while "up" not in stubborn.log() and time.monotonic() < deadline:
        time.sleep(0.05)  # the handler is installed before "up" is printed
    assert stubborn.terminate(timeout_s=0.5) is False
    assert stubborn.exit_code == -signal.SIGKILL
    assert not stubborn.alive() and stubborn.terminate() is True  # already gone: nothing to do


def test_child_env_drops_or_keeps_this_process_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ULASAN_KAFKA__PARTITIONS", "3")
    kept = child_env({"ULASAN_WORKER__APP_ID": "x"})
    assert kept["ULASAN_KAFKA__PARTITIONS"] == "3" and kept["ULASAN_WORKER__APP_ID"] == "x"
    assert kept["PYTHONUNBUFFERED"] == "1"
    isolated = child_env({"ULASAN_WORKER__APP_ID": "x"}, inherit_settings=False)
    assert "ULASAN_KAFKA__PARTITIONS" not in isolated and isolated["ULASAN_WORKER__APP_ID"] == "x"


def test_free_port_prefers_the_given_port_unless_taken() -> None:
    port = free_port()
    assert free_port(port) == port
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))
        s.listen()
        assert free_port(port) != port


def test_read_tail_of_a_missing_log_is_empty(tmp_path: Path) -> None:
    assert read_tail(tmp_path / "nope.log") == ""


@pytest.mark.parametrize(
    "args",
    [
        ["bench", "pipeline", "--workers", "0"],
        ["bench", "gateway", "--threads", "0"],
        ["run", "--workers", "0"],
    ],
)
def test_shared_options_refuse_zero_workers_and_threads(args: list[str]) -> None:
    assert CliRunner().invoke(app, args).exit_code == 2


def test_bench_pipeline_refuses_model_and_shape_together() -> None:
    result = CliRunner().invoke(
        app, ["bench", "pipeline", "--model", "x", "--shape", "indobert-base"]
    )
    assert result.exit_code == 2
    assert "at most one of --model and --shape" in result.output
