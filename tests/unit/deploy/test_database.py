"""Migration errors say which database failed without printing its password."""

from __future__ import annotations

import pytest

from deploy.local import database
from deploy.local.errors import MigrationError
from ulasan.core.settings import PostgresSettings
from ulasan.procs import free_port

SECRET = "hunter2-not-for-logs"


def test_a_failed_connection_names_the_database_not_the_password() -> None:
    port = free_port()  # nothing listens there
    dsn = PostgresSettings(password=SECRET, port=port).dsn
    with pytest.raises(MigrationError) as info:
        database.migrate(dsn)
    message = str(info.value)
    assert SECRET not in message
    assert f"postgresql://ulasan:***@127.0.0.1:{port}/ulasan" in message


def test_a_dsn_of_the_wrong_kind_is_not_echoed_with_its_password() -> None:
    with pytest.raises(MigrationError) as info:
        database.yoyo_uri(f"mysql://root:{SECRET}@db/x")
    assert SECRET not in str(info.value) and "mysql://root:***@db/x" in str(info.value)
