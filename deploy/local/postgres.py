"""PostgreSQL for the local stack: a private cluster of the Debian binaries under ``state_dir``.

``initdb`` and ``pg_ctl`` refuse to run as root, so when ``ulasan stack`` runs as root they run
as the ``postgres`` system user (``runuser``) and the cluster's folders belong to that user.
Clients connect over TCP on 127.0.0.1 with trust authentication; the unix socket lives in the
state dir too, so nothing touches the system cluster's /var/run/postgresql.
"""

from __future__ import annotations

import os
import pwd
import re
import shlex
import subprocess
import time
from pathlib import Path

import psycopg
from psycopg import sql

from deploy.local import database, process
from deploy.local.errors import (
    ConfigError,
    PrerequisiteMissing,
    ServiceStartError,
    ServiceStopError,
)
from deploy.local.service import Service, require_program
from ulasan.core.settings import Settings

DEBIAN_ROOT = Path("/usr/lib/postgresql")
SUPERUSER = "postgres"
LOCAL_HOSTS = ("127.0.0.1", "localhost")
SOCKET_PATH_MAX = 107  # sun_path is 108 bytes on Linux, one for the NUL


def bin_dir(settings: Settings) -> Path:
    """The folder of ``initdb``/``pg_ctl``: the setting, else the newest Debian version."""
    if settings.stack.postgres_bin_dir is not None:
        chosen = settings.stack.postgres_bin_dir
        if not (chosen / "pg_ctl").is_file():
            raise ConfigError(f"ULASAN_STACK__POSTGRES_BIN_DIR={chosen} holds no pg_ctl")
        return chosen
    versions = []
    if DEBIAN_ROOT.is_dir():
        for entry in DEBIAN_ROOT.iterdir():
            if re.fullmatch(r"\d+", entry.name) and (entry / "bin" / "pg_ctl").is_file():
                versions.append(int(entry.name))
    if not versions:
        raise PrerequisiteMissing(
            f"the PostgreSQL server (no {DEBIAN_ROOT}/<version>/bin)", "postgresql"
        )
    return DEBIAN_ROOT / str(max(versions)) / "bin"


def _running_as_root() -> bool:
    return os.geteuid() == 0


def _server_ids() -> tuple[int, int]:
    try:
        entry = pwd.getpwnam(SUPERUSER)
    except KeyError:
        raise PrerequisiteMissing(
            "the `postgres` system user (needed to run PostgreSQL as root)", "postgresql"
        ) from None
    return entry.pw_uid, entry.pw_gid


def superuser_conninfo(settings: Settings, dbname: str = "postgres") -> dict[str, object]:
    """Connection keywords for the cluster's superuser over TCP (trust authentication)."""
    return {
        "host": settings.postgres.host,
        "port": settings.postgres.port,
        "user": SUPERUSER,
        "dbname": dbname,
        "connect_timeout": 2,
    }


def connect_error(conninfo: dict[str, object] | str) -> str | None:
    """None when ``SELECT 1`` works over ``conninfo``, else the reason."""
    try:
        if isinstance(conninfo, str):
            conn = psycopg.connect(conninfo, connect_timeout=2)
        else:
            conn = psycopg.connect(**conninfo)  # type: ignore[arg-type]
        with conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return None


#: The read-only role of the UI (deploy/migrations/0004_reader_role.sql).
READER = "ulasan_reader"


def ensure_role_and_database(settings: Settings) -> list[str]:
    """Create the application role (LOGIN, CREATEDB), the read-only role ``ulasan_reader`` (the
    application role a member) and the database if missing; say what."""
    pg = settings.postgres
    done = []
    with psycopg.connect(**superuser_conninfo(settings), autocommit=True) as conn:  # type: ignore[arg-type]
        if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (pg.user,)).fetchone() is None:
            stmt = sql.SQL("CREATE ROLE {} LOGIN CREATEDB").format(sql.Identifier(pg.user))
            if pg.password:
                stmt = sql.SQL("{} PASSWORD {}").format(stmt, sql.Literal(pg.password))
            conn.execute(stmt)
            done.append(f"role {pg.user}")
        if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (READER,)).fetchone() is None:
            # the UI's read-only role (migration 0004 grants it SELECT); a member may take it
            conn.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(READER)))
            done.append(f"role {READER}")
        conn.execute(
            sql.SQL("GRANT {} TO {}").format(sql.Identifier(READER), sql.Identifier(pg.user))
        )
        if (
            conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (pg.dbname,)).fetchone()
            is None
        ):
            conn.execute(
                sql.SQL("CREATE DATABASE {} OWNER {}").format(
                    sql.Identifier(pg.dbname), sql.Identifier(pg.user)
                )
            )
            done.append(f"database {pg.dbname}")
    return done


class PostgresService(Service):
    """A PostgreSQL cluster in ``state_dir/postgres``, started and stopped with ``pg_ctl``."""

    name = "postgres"

    @property
    def socket_dir(self) -> Path:
        return self.dir / "run"

    def address(self) -> str:
        return self.settings.postgres.dsn

    def check_prerequisites(self) -> None:
        bin_dir(self.settings)
        if _running_as_root():
            _server_ids()
            require_program("runuser", "util-linux")

    def ports(self) -> list[tuple[str, int, str]]:
        return [(self._host(), self.settings.postgres.port, "ULASAN_POSTGRES__PORT")]

    def _host(self) -> str:
        host = self.settings.postgres.host
        if host not in LOCAL_HOSTS:
            raise ConfigError(
                "the local stack runs PostgreSQL on 127.0.0.1, "
                f"but ULASAN_POSTGRES__HOST is {host!r}"
            )
        return "127.0.0.1"

    def _run(
        self, program: str, *args: str, timeout: float = 120.0
    ) -> subprocess.CompletedProcess[str]:
        """Run a PostgreSQL program (as the postgres user when we are root)."""
        argv = [str(bin_dir(self.settings) / program), *args]
        if _running_as_root():
            argv = ["runuser", "-u", SUPERUSER, "--", *argv]
        return subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            cwd=self.dir,
            start_new_session=True,
        )

    def _own(self, path: Path) -> None:
        if _running_as_root():
            uid, gid = _server_ids()
            os.chown(path, uid, gid)

    def _check_reachable(self) -> None:
        """As root, make sure the postgres user can reach the data dir (every parent o+x)."""
        if not _running_as_root():
            return
        probe = subprocess.run(
            ["runuser", "-u", SUPERUSER, "--", "test", "-w", str(self.data_dir)],
            capture_output=True,
            check=False,
        )
        if probe.returncode != 0:
            raise ConfigError(
                f"the postgres system user cannot write {self.data_dir}: every parent folder of "
                f"{self.settings.state_dir} must be searchable by others (chmod o+x), "
                "or choose another ULASAN_STATE_DIR"
            )

    def prepare(self) -> None:
        sock = self.socket_dir / f".s.PGSQL.{self.settings.postgres.port}"
        if len(str(sock)) > SOCKET_PATH_MAX:
            raise ConfigError(
                f"the socket path {sock} is longer than {SOCKET_PATH_MAX} bytes; "
                "choose a shorter ULASAN_STATE_DIR"
            )
        self.paths.logs.mkdir(parents=True, exist_ok=True)
        self.dir.mkdir(parents=True, exist_ok=True)
        for folder in (self.data_dir, self.socket_dir):
            folder.mkdir(mode=0o700, exist_ok=True)
            self._own(folder)
        self.log_path.touch()
        self._own(self.log_path)
        self._check_reachable()
        if (self.data_dir / "PG_VERSION").exists():
            return
        done = self._run(
            "initdb",
            "-D",
            str(self.data_dir),
            "-U",
            SUPERUSER,
            "--auth=trust",
            "--encoding=UTF8",
            "--no-locale",
            "--no-sync",
        )
        if done.returncode != 0:
            raise ServiceStartError(
                self.name,
                f"initdb in {self.data_dir} failed (exit {done.returncode})",
                tail=(done.stdout + done.stderr).strip(),
            )

    def command(self) -> list[str]:
        """``pg_ctl start``: it forks the server into its own session and waits until ready."""
        options = " ".join(
            [
                f"-c listen_addresses={self._host()}",
                f"-p {self.settings.postgres.port}",
                f"-k {shlex.quote(str(self.socket_dir))}",
            ]
        )
        timeout = int(self.settings.stack.startup_timeout_s)
        return [
            "pg_ctl", "start", "-D", str(self.data_dir), "-l", str(self.log_path), "-w",
            "-t", str(timeout), "-s", "-o", options,
        ]  # fmt: skip

    def start(self) -> None:
        process.require_free_port(
            self._host(),
            self.settings.postgres.port,
            service=self.name,
            setting="ULASAN_POSTGRES__PORT",
        )
        self.prepare()
        done = self._run(*self.command(), timeout=self.settings.stack.startup_timeout_s + 10)
        if done.returncode != 0:
            raise self.start_error(
                f"pg_ctl start failed (exit {done.returncode}): {done.stderr.strip()}"
            )

    def pid(self) -> int | None:
        pid = process.read_pid(self.data_dir / "postmaster.pid")
        return pid if process.owned(pid, self.marker) else None

    def stop(self) -> bool:
        pid = self.pid()
        if pid is None:
            return False
        done = self._run(
            "pg_ctl", "stop", "-D", str(self.data_dir), "-m", "fast", "-w", "-t", "60", "-s"
        )
        if done.returncode != 0 and self.pid() is not None:
            # pg_ctl could not do it cleanly: fall back to signals on the postmaster's group
            process.stop_group(pid, name=self.name)
        deadline = time.monotonic() + 10
        while process.group_members(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if process.group_members(pid):
            raise ServiceStopError(
                f"postgres: processes of {pid} are still running after pg_ctl stop"
            )
        return True

    def health(self) -> str | None:
        return connect_error(self.settings.postgres.dsn)

    def wait_healthy(self, timeout_s: float) -> None:
        # the server first, as superuser; then the role and database the health check uses
        deadline = time.monotonic() + timeout_s
        reason = connect_error(superuser_conninfo(self.settings))
        while reason is not None:
            if self.pid() is None:
                raise self.start_error("the server is not running")
            if time.monotonic() > deadline:
                raise self.start_error(f"not answering after {timeout_s:.0f}s ({reason})")
            time.sleep(0.25)
            reason = connect_error(superuser_conninfo(self.settings))
        ensure_role_and_database(self.settings)
        super().wait_healthy(max(1.0, deadline - time.monotonic()))

    def setup(self) -> str:
        applied = database.migrate(self.settings.postgres.dsn)
        return f"migrations: {len(applied)} applied" if applied else "migrations: up to date"
