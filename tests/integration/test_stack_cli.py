"""``ulasan stack`` end to end: a second stack on its own ports and state dir, up twice, down.

The shared stack keeps running: this one gets free ports and a state dir under /tmp (searchable
by the ``postgres`` user, which runs PostgreSQL when the tests run as root). The Kafka jars
come from the shared cache, so nothing is downloaded again.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from deploy.local import process

ULASAN = Path(sys.executable).parent / "ulasan"
SERVICES = ("postgres", "kafka", "mlflow", "prometheus")

pytestmark = pytest.mark.slow


def free_ports(n: int) -> list[int]:
    sockets = []
    try:
        for _ in range(n):
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for sock in sockets:
            sock.close()


@pytest.fixture
def stack_env() -> Iterator[dict[str, str]]:
    state = Path(tempfile.mkdtemp(prefix="ulasan-it-stack-", dir="/tmp"))
    state.chmod(0o755)
    kafka, controller, postgres, mlflow, prometheus = free_ports(5)
    env = {
        **os.environ,
        "ULASAN_STATE_DIR": str(state),
        "ULASAN_KAFKA__BOOTSTRAP_SERVERS": f"127.0.0.1:{kafka}",
        "ULASAN_STACK__KAFKA_CONTROLLER_PORT": str(controller),
        "ULASAN_STACK__KAFKA_HEAP": "512m",
        "ULASAN_POSTGRES__PORT": str(postgres),
        "ULASAN_MLFLOW__PORT": str(mlflow),
        "ULASAN_PROMETHEUS__PORT": str(prometheus),
        "COLUMNS": "200",
    }
    try:
        yield env
    finally:
        if process.processes_mentioning(str(state)):
            stack(env, "down")
        shutil.rmtree(state, ignore_errors=True)


def stack(env: dict[str, str], command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(ULASAN), "stack", command],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def states(output: str) -> dict[str, str]:
    """``{service: second word}`` from the lines of ``up``, ``status`` and ``down``."""
    found = {}
    for line in output.splitlines():
        words = line.split()
        if len(words) >= 2 and words[0] in SERVICES:
            found[words[0]] = " ".join(words[1:3]) if words[1] in ("already", "not") else words[1]
    return found


def test_up_twice_status_down_leaves_nothing(stack_env: dict[str, str]) -> None:
    state_dir = stack_env["ULASAN_STATE_DIR"]

    first = stack(stack_env, "up")
    assert first.returncode == 0, first.stdout + first.stderr
    assert states(first.stdout) == dict.fromkeys(SERVICES, "started"), first.stdout
    assert process.processes_mentioning(state_dir)

    second = stack(stack_env, "up")
    assert second.returncode == 0, second.stdout + second.stderr
    assert states(second.stdout) == dict.fromkeys(SERVICES, "already running"), second.stdout
    assert "0 created" in second.stdout and "up to date" in second.stdout

    running = stack(stack_env, "status")
    assert running.returncode == 0, running.stdout + running.stderr
    assert states(running.stdout) == dict.fromkeys(SERVICES, "running"), running.stdout

    down = stack(stack_env, "down")
    assert down.returncode == 0, down.stdout + down.stderr
    assert states(down.stdout) == dict.fromkeys(SERVICES, "stopped"), down.stdout
    assert process.processes_mentioning(state_dir) == []

    stopped = stack(stack_env, "status")
    assert stopped.returncode == 1
    assert states(stopped.stdout) == dict.fromkeys(SERVICES, "stopped"), stopped.stdout

    again = stack(stack_env, "down")
    assert again.returncode == 0
    assert states(again.stdout) == dict.fromkeys(SERVICES, "not running"), again.stdout


def test_missing_prerequisites_name_the_debian_packages(stack_env: dict[str, str]) -> None:
    # a PATH with python's folder only: no java, mvn or prometheus on it
    env = {**stack_env, "PATH": str(Path(ULASAN).parent)}
    jars = Path(tempfile.mkdtemp(prefix="ulasan-it-nojars-"))
    env["ULASAN_STACK__KAFKA_CACHE_DIR"] = str(jars)
    try:
        result = stack(env, "up")
    finally:
        shutil.rmtree(jars, ignore_errors=True)
    assert result.returncode == 1
    message = " ".join(result.stdout.split())
    for package in ("openjdk-17-jre-headless", "maven", "prometheus"):
        assert package in message, message
    assert "make system-deps" in message
    assert process.processes_mentioning(stack_env["ULASAN_STATE_DIR"]) == []


def test_port_taken_by_a_stranger_is_a_clear_error(stack_env: dict[str, str]) -> None:
    with socket.socket() as stranger:
        stranger.bind(("127.0.0.1", int(stack_env["ULASAN_PROMETHEUS__PORT"])))
        stranger.listen()
        result = stack(stack_env, "up")
    assert result.returncode == 1
    message = " ".join(result.stdout.split())
    assert "ULASAN_PROMETHEUS__PORT" in message, message
    # every port is checked before anything starts: nothing half-up stays behind
    assert process.processes_mentioning(stack_env["ULASAN_STATE_DIR"]) == []
