"""``ulasan bootstrap`` fails clearly when the database is down, and never shows its password."""

from __future__ import annotations

import os
import socket

from typer.testing import CliRunner

from ulasan.cli import app


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_an_unreachable_database_fails_with_exit_1_and_no_password(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    for key in list(os.environ):
        if key.startswith("ULASAN_"):
            monkeypatch.delenv(key)
    secret = "s3cret-" + os.urandom(6).hex()
    monkeypatch.setenv("ULASAN_POSTGRES__PORT", str(closed_port()))
    monkeypatch.setenv("ULASAN_POSTGRES__PASSWORD", secret)
    monkeypatch.setenv("COLUMNS", "300")
    result = CliRunner().invoke(app, ["bootstrap", "--no-train"])
    assert result.exit_code == 1, result.output
    flat = " ".join(result.output.split())  # rich wraps long lines
    assert "bootstrap failed" in flat and "cannot connect" in flat
    assert secret not in result.output.replace("\n", "") and "***" in flat
