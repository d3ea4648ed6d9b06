"""Where each producer got to: JSON checkpoints in PostgreSQL ``producer_checkpoints``.

The table (a migration of the local stack) is ``producer_checkpoints(producer, key, value jsonb,
updated_at, PRIMARY KEY (producer, key))``. Replay keys by the file's sha256, Google Play by
app id. :class:`MemoryCheckpoints` keeps them in a dict for runs that must not persist any.
"""

from __future__ import annotations

import copy
from types import TracebackType
from typing import Any, Protocol

import psycopg
from psycopg.types.json import Jsonb

from producers.errors import CheckpointError

TABLE = "producer_checkpoints"


class CheckpointStore(Protocol):
    """Read and write one JSON object per ``(producer, key)``."""

    def get(self, producer: str, key: str) -> dict[str, Any] | None: ...

    def put(self, producer: str, key: str, value: dict[str, Any]) -> None: ...

    def delete(self, producer: str, key: str) -> None: ...

    def close(self) -> None: ...


class MemoryCheckpoints:
    """Checkpoints that live as long as the object (``--no-checkpoint`` runs, unit tests)."""

    def __init__(self) -> None:
        self._data: dict[tuple[str, str], dict[str, Any]] = {}

    def get(self, producer: str, key: str) -> dict[str, Any] | None:
        value = self._data.get((producer, key))
        return copy.deepcopy(value) if value is not None else None

    def put(self, producer: str, key: str, value: dict[str, Any]) -> None:
        self._data[(producer, key)] = copy.deepcopy(value)

    def delete(self, producer: str, key: str) -> None:
        self._data.pop((producer, key), None)

    def close(self) -> None:
        return None


class PostgresCheckpoints:
    """Checkpoints in PostgreSQL over one autocommit connection (opened lazily)."""

    def __init__(self, dsn: str, *, connect_timeout_s: int = 10) -> None:
        self.dsn = dsn
        self._timeout = connect_timeout_s
        self._conn: psycopg.Connection[Any] | None = None

    def _connection(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed:
            try:
                self._conn = psycopg.connect(
                    self.dsn, autocommit=True, connect_timeout=self._timeout
                )
            except psycopg.OperationalError as exc:
                raise CheckpointError(
                    f"PostgreSQL is not reachable for producer checkpoints ({exc}): start the "
                    "local stack with `ulasan stack up`, or pass --no-checkpoint"
                ) from exc
        return self._conn

    def _execute(self, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        try:
            with self._connection().cursor() as cur:
                cur.execute(sql, params)
                return cur.fetchall() if cur.description is not None else []
        except psycopg.errors.UndefinedTable as exc:
            raise CheckpointError(
                f"table {TABLE} is missing: apply the migrations (`ulasan stack up` does)"
            ) from exc
        except psycopg.Error as exc:
            raise CheckpointError(f"producer checkpoint query failed: {exc}") from exc

    def get(self, producer: str, key: str) -> dict[str, Any] | None:
        rows = self._execute(
            f"SELECT value FROM {TABLE} WHERE producer = %s AND key = %s", (producer, key)
        )
        return dict(rows[0][0]) if rows else None

    def put(self, producer: str, key: str, value: dict[str, Any]) -> None:
        self._execute(
            f"INSERT INTO {TABLE} (producer, key, value, updated_at) VALUES (%s, %s, %s, now()) "
            "ON CONFLICT (producer, key) DO UPDATE "
            "SET value = EXCLUDED.value, updated_at = EXCLUDED.updated_at",
            (producer, key, Jsonb(value)),
        )

    def delete(self, producer: str, key: str) -> None:
        self._execute(f"DELETE FROM {TABLE} WHERE producer = %s AND key = %s", (producer, key))

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self) -> PostgresCheckpoints:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
