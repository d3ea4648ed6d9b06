"""The migrations against a fresh database of the local PostgreSQL: up, no-op again, rollback."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import psycopg
import pytest
from psycopg import sql
from yoyo import get_backend, read_migrations

from deploy.local import database
from ulasan.core.settings import PostgresSettings, Settings


@pytest.fixture
def fresh_dsn(settings: Settings, unique_name: Callable[[str], str]) -> Iterator[str]:
    """The DSN of a new, empty database (dropped afterwards)."""
    name = unique_name("it_migrations").replace("-", "_")
    admin = settings.postgres.dsn
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield PostgresSettings(**{**settings.postgres.model_dump(), "dbname": name}).dsn
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def tables(dsn: str) -> set[str]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
        ).fetchall()
    return {r[0] for r in rows}


MIGRATIONS = [
    "0001_initial",
    "0002_prediction_logs_request_id",
    "0003_retrain_runs_lease",
    "0004_reader_role",
]


def test_migrations_from_empty_then_reapply_is_a_noop(fresh_dsn: str) -> None:
    assert not set(database.TABLES) & tables(fresh_dsn)
    assert database.pending(fresh_dsn) == MIGRATIONS

    assert database.migrate(fresh_dsn) == MIGRATIONS
    assert set(database.TABLES) <= tables(fresh_dsn)
    assert database.pending(fresh_dsn) == []
    assert database.migrate(fresh_dsn) == []


def test_schema_keys_and_checks(fresh_dsn: str) -> None:
    database.migrate(fresh_dsn)
    now = datetime.now(UTC)
    with psycopg.connect(fresh_dsn) as conn:
        insert = (
            "INSERT INTO reviews (review_id, source, text, rating, ingested_at) "
            "VALUES (%s, 'test', 'bagus', %s, %s) ON CONFLICT (review_id) DO NOTHING"
        )
        conn.execute(insert, ("r1", 5, now))
        conn.execute(insert, ("r1", 5, now))  # a redelivered event: no duplicate
        assert conn.execute("SELECT count(*) FROM reviews").fetchone() == (1,)
        with pytest.raises(psycopg.errors.CheckViolation), conn.transaction():
            conn.execute(insert, ("r2", 6, now))

        log = (
            "INSERT INTO prediction_logs (event_id, review_id, input, label, confidence, "
            "probabilities, model_name, model_version, timestamp) "
            "VALUES (%s, %s, 'bagus', 'positive', 0.9, '{}', 'm', %s, now())"
        )
        conn.execute(log, ("e1", "r1", "1"))
        conn.execute(log, ("e2", "r1", "2"))  # another model version may score it again
        with pytest.raises(psycopg.errors.UniqueViolation), conn.transaction():
            conn.execute(log, ("e3", "r1", "1"))  # the same version twice may not
        with pytest.raises(psycopg.errors.CheckViolation), conn.transaction():
            conn.execute(log, ("e4", None, "1"))  # neither review nor request

        with pytest.raises(psycopg.errors.CheckViolation), conn.transaction():
            conn.execute(
                "INSERT INTO feedback (feedback_id, review_id, label, source, time) "
                "VALUES ('f1', 'r1', 'positive', 'guess', now())"
            )
        metric = (
            "INSERT INTO model_metrics (model_name, model_version, split, metric, value) "
            "VALUES ('m', '1', 'test', 'accuracy', %s) "
            "ON CONFLICT (model_name, model_version, split, metric) "
            "DO UPDATE SET value = EXCLUDED.value"
        )
        conn.execute(metric, (0.8,))
        conn.execute(metric, (0.81,))
        assert conn.execute("SELECT value FROM model_metrics").fetchall() == [(0.81,)]


def test_rollback_removes_every_table(fresh_dsn: str) -> None:

    database.migrate(fresh_dsn)
    backend = get_backend(database.yoyo_uri(fresh_dsn))
    migrations = read_migrations(str(database.MIGRATIONS_DIR))
    with backend.lock():
        backend.rollback_migrations(backend.to_rollback(migrations))
    backend.connection.close()
    assert not set(database.TABLES) & tables(fresh_dsn)
    assert database.pending(fresh_dsn) == MIGRATIONS
