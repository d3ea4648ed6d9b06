"""Pieces of the closed loop's fault tests: a fresh migrated database, a registered model of
its own, versions registered from a serving folder, and a TCP proxy that takes a service away
(a refused connection, as when it is down) and brings it back on the same port."""

from __future__ import annotations

import contextlib
import socket
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
from psycopg import sql

from deploy.local.database import migrate
from trainer import registry
from ulasan.core.settings import PostgresSettings, Settings


@contextlib.contextmanager
def fresh_database(settings: Settings) -> Iterator[Settings]:
    """``settings`` pointed at a new database with every migration applied (dropped after)."""
    name = f"loop_{uuid.uuid4().hex[:12]}"
    admin = settings.postgres.dsn
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    pg = PostgresSettings(**{**settings.postgres.model_dump(), "dbname": name})
    try:
        migrate(pg.dsn)
        yield settings.model_copy(update={"postgres": pg})
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@contextlib.contextmanager
def own_model(settings: Settings, state_dir: Path, prefix: str = "test-loop") -> Iterator[Settings]:
    """``settings`` with a registered model of its own (a non-default name; deleted after)."""
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    mine = settings.model_copy(
        update={
            "state_dir": state_dir,
            "mlflow": settings.mlflow.model_copy(
                update={"registered_model": name, "experiment": "ulasan-tests"}
            ),
        }
    )
    try:
        yield mine
    finally:
        with contextlib.suppress(Exception):
            registry.client(mine).delete_registered_model(name)


def register_version(settings: Settings, folder: Path, *, tag: str = "loop-test") -> str:
    """Register ``folder`` (a serving folder) as a new version; its version number. The MLflow
    ``onnx`` flavor is not logged: the fault tests register graphs corrupted on purpose (what a
    damaged artifact store serves), which onnx cannot parse."""
    mc = registry.client(settings)
    exp = mc.get_experiment_by_name(settings.mlflow.experiment)
    exp_id = exp.experiment_id if exp else mc.create_experiment(settings.mlflow.experiment)
    run_id = mc.create_run(exp_id).info.run_id
    mc.set_terminated(run_id)
    registry.log_serving_folder(settings, run_id, folder, onnx_flavor=False)
    info = registry.register_candidate(settings, run_id, folder, train_dataset_hash=tag)
    return info.version


class TcpProxy:
    """Forwards ``127.0.0.1:port`` to ``target``; :meth:`down` refuses new connections and cuts
    the open ones (the service looks dead), :meth:`up` serves again on the same port."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = int(s.getsockname()[1])
        self._listener: socket.socket | None = None
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def up(self) -> TcpProxy:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()
        return self

    def down(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        with self._lock:
            conns, self._conns = self._conns, []
        for c in conns:
            with contextlib.suppress(OSError):
                c.shutdown(socket.SHUT_RDWR)
            c.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # closed by down()
            try:
                upstream = socket.create_connection(self.target, timeout=10)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=_pipe, args=(a, b), daemon=True).start()


def _pipe(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)
