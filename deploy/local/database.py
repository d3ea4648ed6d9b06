"""ulasan's PostgreSQL schema: yoyo migrations from ``deploy/migrations/``, applied idempotently.

Used by ``ulasan stack up`` on the local stack and by ``ulasan stack migrate`` against any
PostgreSQL (the compose ``migrate`` service). yoyo records what it applied in its own tables
(``_yoyo_migration``, ...), so applying twice is a no-op.
"""

from __future__ import annotations

from pathlib import Path

import psycopg
from yoyo import get_backend, read_migrations

from deploy.local.errors import MigrationError
from ulasan.core.settings import redact_dsn

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"

#: The tables the migrations create, in the order of ``0001_initial.sql``.
TABLES: tuple[str, ...] = (
    "reviews",
    "text_features",
    "prediction_logs",
    "feedback",
    "model_metrics",
    "drift_reports",
    "retrain_runs",
    "producer_checkpoints",
)


def yoyo_uri(dsn: str) -> str:
    """The yoyo database URI of a ``postgresql://`` DSN, on the psycopg 3 driver."""
    scheme, sep, rest = dsn.partition("://")
    if not sep or scheme not in ("postgresql", "postgres"):
        raise MigrationError(f"expected a postgresql:// DSN, got {redact_dsn(dsn)!r}")
    return f"postgresql+psycopg://{rest}"


def _read(migrations_dir: Path):  # type: ignore[no-untyped-def]
    if not migrations_dir.is_dir() or not any(migrations_dir.glob("*.sql")):
        raise MigrationError(f"no migrations found in {migrations_dir}")
    return read_migrations(str(migrations_dir))


def _backend(dsn: str):  # type: ignore[no-untyped-def]
    try:
        return get_backend(yoyo_uri(dsn))
    except psycopg.OperationalError as exc:
        raise MigrationError(
            f"cannot connect to {redact_dsn(dsn)}: {redact_dsn(str(exc).strip())}"
        ) from exc


def pending(dsn: str, migrations_dir: Path = MIGRATIONS_DIR) -> list[str]:
    """Ids of the migrations not yet applied to the database at ``dsn``."""
    migrations = _read(migrations_dir)
    backend = _backend(dsn)
    try:
        return [m.id for m in backend.to_apply(migrations)]
    finally:
        backend.connection.close()


def migrate(dsn: str, migrations_dir: Path = MIGRATIONS_DIR) -> list[str]:
    """Apply every pending migration under yoyo's lock; return the ids applied (maybe none).

    Raises :class:`MigrationError` when the database cannot be reached or a migration fails
    (a failed migration is rolled back as a whole: each one runs in a transaction).
    """
    migrations = _read(migrations_dir)
    backend = _backend(dsn)
    try:
        with backend.lock():
            todo = backend.to_apply(migrations)
            backend.apply_migrations(todo)
        return [m.id for m in todo]
    except psycopg.Error as exc:
        raise MigrationError(
            f"applying migrations to {redact_dsn(dsn)} failed: {redact_dsn(str(exc).strip())}"
        ) from exc
    finally:
        backend.connection.close()
