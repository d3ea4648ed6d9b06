"""A private corner of the local stack for one run: its own database and topics, removed after.

Used by the benchmarks and the scenario (and the tests), which each run on fresh topics and a
fresh database so their figures and rows are their own.
"""

from __future__ import annotations

import psycopg

from deploy.local.database import migrate
from ulasan.core.kafka_admin import admin_client


def create_database(admin_dsn: str, dbname: str, dsn: str | None = None) -> None:
    """Create ``dbname`` through ``admin_dsn``; with ``dsn`` (the new database's), migrate it."""
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{dbname}"')
    if dsn is not None:
        migrate(dsn)


def drop_database(admin_dsn: str, dbname: str) -> None:
    """Drop ``dbname`` if it exists, closing the sessions still on it."""
    with psycopg.connect(admin_dsn, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')


def delete_topics(bootstrap: str, prefixes: tuple[str, ...]) -> list[str]:
    """Delete every topic whose name starts with one of ``prefixes`` (the run's own topics and
    its consumer group's internal ones); the names deleted."""
    admin = admin_client(bootstrap)
    doomed = [t for t in admin.list_topics(timeout=10).topics if t.startswith(prefixes)]
    if doomed:
        for fut in admin.delete_topics(doomed, operation_timeout=30).values():
            fut.result()
    return doomed
