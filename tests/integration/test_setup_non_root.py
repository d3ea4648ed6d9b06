"""Set-up as a normal user (Debian 12): ``make system-deps`` and ``make uv`` run as a user this
test creates, with a normal user's PATH (no /usr/sbin, no uv on it).

What broke before: the system-deps script demanded ``runuser`` (in /usr/sbin, and only root
needs it) and so sudo; ``python3 -m pip install uv`` is refused by Debian's externally managed
Python (PEP 668) or finds no pip at all. Now uv goes into a private venv under
``~/.cache/ulasan`` and the system Python stays untouched. Run as a normal user already, the
test runs as that user.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from deploy.local import process
from tests.integration.test_stack_cli import free_ports
from ulasan.core.settings import PROJECT_ROOT, Settings

#: A normal user's PATH on Debian: no /usr/sbin, no pyenv, no uv.
USER_PATH = "/usr/local/bin:/usr/bin:/bin"
#: what pip needs to reach its index here (certificates, proxies, a local wheel folder)
PASSED = ("PIP_", "SSL_CERT", "REQUESTS_CA_BUNDLE", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY")
FILES = ("Makefile", "uv.lock", "pyproject.toml", "deploy/local/install-system-deps.sh")


@dataclass(frozen=True)
class User:
    name: str
    home: Path

    def run(
        self, command: str, timeout_s: float = 300, extra: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """``command`` in ``~/ulasan`` as this user, with a normal login's environment."""
        env = {"HOME": str(self.home), "PATH": USER_PATH, "LANG": "C.UTF-8", "USER": self.name}
        env |= {k: v for k, v in os.environ.items() if k.upper().startswith(PASSED)}
        env |= extra or {}
        argv = ["env", "-i", *(f"{k}={v}" for k, v in env.items())]
        argv += ["bash", "-c", f"cd ~/ulasan && {command}"]
        if os.getuid() == 0:
            argv = ["runuser", "-u", self.name, "--", *argv]
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s)


@pytest.fixture(scope="module")
def user() -> Iterator[User]:
    if os.getuid() != 0:
        home = Path(tempfile.mkdtemp(prefix="ulasan-home-"))
        yield from _with_copy(User(getpass.getuser(), home))
        shutil.rmtree(home, ignore_errors=True)
        return
    name = f"ulasan-t{uuid.uuid4().hex[:6]}"
    home = Path(tempfile.mkdtemp(prefix=f"{name}-"))
    subprocess.run(
        ["/usr/sbin/useradd", "--no-create-home", "--home-dir", str(home), "--shell", "/bin/bash"]
        + [name],
        check=True,
    )
    try:
        shutil.chown(home, name, name)
        yield from _with_copy(User(name, home))
    finally:
        subprocess.run(["/usr/sbin/userdel", name], check=False)
        shutil.rmtree(home, ignore_errors=True)


def _with_copy(user: User) -> Iterator[User]:
    """The files ``make system-deps`` and ``make uv`` read, in ``~/ulasan``, owned by the user."""
    dest = user.home / "ulasan"
    for rel in FILES:
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(PROJECT_ROOT / rel, dest / rel)
    if os.getuid() == 0:
        subprocess.run(["chown", "-R", f"{user.name}:{user.name}", str(user.home)], check=True)
    yield user


def test_system_deps_need_neither_root_nor_runuser(user: User) -> None:
    assert shutil.which("runuser", path=USER_PATH) is None  # as on a normal user's PATH
    done = user.run("id -u && make system-deps")
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.splitlines()[0] != "0"  # really not root
    assert "sudo" not in done.stderr and "missing Debian packages" not in done.stderr


def test_uv_goes_into_a_private_venv_not_the_system_python(user: User) -> None:
    done = user.run("make uv", timeout_s=600)
    assert done.returncode == 0, done.stdout + done.stderr
    private = user.home / ".cache" / "ulasan" / "uv-venv" / "bin" / "uv"
    assert "installing uv into" in done.stdout and private.exists()
    assert done.stdout.splitlines()[-1].startswith("uv ")  # `uv --version` of that copy
    system = subprocess.run(["/usr/bin/python3", "-c", "import uv"], capture_output=True)
    assert system.returncode != 0  # nothing was installed into Debian's Python
    again = user.run("make uv")  # present now: nothing is installed twice
    assert again.returncode == 0 and "installing uv" not in again.stdout


@contextlib.contextmanager
def project_env_reachable() -> Iterator[None]:
    """As root, the project's venv (and the Kafka jars) live under /root (mode 700): let other
    users traverse it (o+x: enter, not list) for the test, and restore the mode after."""
    root = Path("/root")
    if os.getuid() != 0 or not str(Path(sys.executable).resolve()).startswith("/root/"):
        yield
        return
    mode = root.stat().st_mode & 0o7777
    root.chmod(mode | 0o001)
    try:
        yield
    finally:
        root.chmod(mode)


def owner(pid: int) -> int:
    """The real uid of process ``pid``."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return int(line.split()[1])
    raise AssertionError(f"no Uid line for {pid}")


def test_the_stack_runs_as_that_user(user: User) -> None:
    """``ulasan stack up`` as the normal user: PostgreSQL initialised and run as that user (no
    runuser, no postgres account), Kafka, MLflow and Prometheus too; ``status``, then ``down``."""
    state = user.home / "state"
    ports = dict(zip(("kafka", "ctl", "pg", "mlflow", "prom"), free_ports(5), strict=True))
    extra = {
        "ULASAN_STATE_DIR": str(state),
        "ULASAN_KAFKA__BOOTSTRAP_SERVERS": f"127.0.0.1:{ports['kafka']}",
        "ULASAN_STACK__KAFKA_CONTROLLER_PORT": str(ports["ctl"]),
        "ULASAN_STACK__KAFKA_HEAP": "512m",
        # the jars already fetched (by whoever ran `make setup`): nothing is downloaded again
        "ULASAN_STACK__KAFKA_CACHE_DIR": str(Settings().stack.kafka_libs_dir()),
        "ULASAN_POSTGRES__PORT": str(ports["pg"]),
        "ULASAN_MLFLOW__PORT": str(ports["mlflow"]),
        "ULASAN_PROMETHEUS__PORT": str(ports["prom"]),
        "JAVA_HOME": os.environ.get("JAVA_HOME", ""),
        "COLUMNS": "200",
    }
    ulasan = Path(sys.executable).parent / "ulasan"
    uid = int(user.run("id -u").stdout)
    with project_env_reachable():
        try:
            up = user.run(f"{ulasan} stack up", timeout_s=600, extra=extra)
            assert up.returncode == 0, up.stdout + up.stderr
            pids = process.processes_mentioning(str(state))
            assert len(pids) >= 4, up.stdout
            assert {owner(pid) for pid in pids} == {uid}  # every service runs as that user
            pg_data = state / "postgres" / "data"
            assert pg_data.stat().st_uid == uid
            status = user.run(f"{ulasan} stack status", extra=extra)
            assert status.returncode == 0, status.stdout + status.stderr
            assert status.stdout.count("running") >= 4, status.stdout
        finally:
            down = user.run(f"{ulasan} stack down", timeout_s=300, extra=extra)
    assert down.returncode == 0, down.stdout + down.stderr
    assert not process.processes_mentioning(str(state))
