"""``ulasan chaos soak`` for real, short: a private Kafka and PostgreSQL, two workers, one fault
of each kind forced (a worker SIGKILLed, the broker SIGKILLed, PostgreSQL stopped), nothing
lost; and a SIGTERM mid-run leaves nothing behind (no process, no state dir)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from ulasan.procs import ULASAN_BIN, child_env

pytestmark = [pytest.mark.slow, pytest.mark.faults]

ROOT_LINE = re.compile(r"logs in (/tmp/ulasan-chaos-[^/\s]+)/logs")


def soak_root(stderr: str) -> Path:
    found = ROOT_LINE.search(stderr)
    assert found, f"the soak never said where its state dir is:\n{stderr[-3000:]}"
    return Path(found.group(1))


def processes_mentioning(text: str) -> list[int]:
    """Pids of live processes whose command line or environment holds ``text`` (the soak's
    state dir: the broker and the database name it on their command lines, the workers have
    it as ULASAN_STATE_DIR)."""
    needle = text.encode()
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            seen = (entry / "cmdline").read_bytes() + (entry / "environ").read_bytes()
        except OSError:
            continue
        if needle in seen:
            pids.append(int(entry.name))
    return pids


def assert_left_nothing(root: Path) -> None:
    assert not root.exists(), f"{root} was left behind"
    assert not processes_mentioning(str(root)), f"processes of {root} still run"


def test_a_short_soak_with_every_fault_loses_nothing_and_reports_each_recovery() -> None:
    args = ["chaos", "soak", "--minutes", "0.5", "--rate", "30", "--seed", "1",
            "--faults", "worker,broker,postgres", "--json"]  # fmt: skip
    # the workers take the environment's worker settings: a short session timeout makes the
    # killed worker's partitions move in seconds (30 s by default), as in the stream tests
    env = child_env(
        {"ULASAN_WORKER__SESSION_TIMEOUT_S": "6", "ULASAN_WORKER__HEARTBEAT_INTERVAL_S": "1"}
    )
    done = subprocess.run(
        [str(ULASAN_BIN), *args], capture_output=True, text=True, timeout=900, env=env
    )
    assert done.returncode == 0, done.stderr[-4000:]
    result = json.loads(done.stdout)  # one document, nothing else on stdout
    print(json.dumps(result))
    assert {
        "published", "stored", "lost", "duplicates_sentiment", "faults", "max_recovery_s",
        "committed_at_log_end",
    } <= set(result)  # fmt: skip
    # how many were published depends on the machine's speed (no timing is asserted): some were
    assert result["published"] > 0
    assert result["lost"] == 0 and result["stored"] == result["published"]
    assert result["committed_at_log_end"] is True
    assert [f["kind"] for f in result["faults"]] == ["worker", "broker", "postgres"]
    for fault in result["faults"]:
        assert set(fault) >= {"kind", "at_s", "recovery_s"}
        assert isinstance(fault["recovery_s"], float) and fault["recovery_s"] > 0, fault
    assert result["max_recovery_s"] == max(f["recovery_s"] for f in result["faults"])
    assert isinstance(result["duplicates_sentiment"], int) and result["duplicates_sentiment"] >= 0
    assert_left_nothing(soak_root(done.stderr))


def test_sigterm_mid_soak_stops_every_child_and_removes_the_state_dir(tmp_path: Path) -> None:
    err = tmp_path / "stderr.log"
    with err.open("wb") as fh:
        proc = subprocess.Popen(
            [str(ULASAN_BIN), "chaos", "soak", "--minutes", "10", "--rate", "20", "--json"],
            stdout=subprocess.PIPE,
            stderr=fh,
            env=child_env(),
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 300
        while "streaming" not in err.read_text() and time.monotonic() < deadline:
            assert proc.poll() is None, err.read_text()[-3000:]
            time.sleep(0.5)
        root = soak_root(err.read_text())
        started = processes_mentioning(str(root))
        # the broker, the database's processes, two workers (and their children)
        assert len(started) >= 4, started
        proc.send_signal(signal.SIGTERM)
        stdout, _ = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode != 0 and stdout == b"", "a stopped soak reports no result"
    assert_left_nothing(root)
