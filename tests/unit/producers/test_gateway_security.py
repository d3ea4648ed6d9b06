"""Gateway settings, API keys (hashed, constant-time compare), token buckets and the audit log."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from producers.gateway.errors import Forbidden, RateLimited, Unauthenticated
from producers.gateway.security import AuditLog, Guard, hash_key
from producers.gateway.settings import ApiKey, GatewayConfig, GatewaySettings


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def keys() -> list[ApiKey]:
    return [
        ApiKey(name="app", sha256=hash_key("s3cret-app"), rate_per_s=2, burst=2),
        ApiKey(name="ops", sha256=hash_key("s3cret-ops"), admin=True),
    ]


def test_hash_key_is_sha256_hex() -> None:
    assert hash_key("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def test_settings_refuse_inconsistent_security(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="tls_cert and tls_key"):
        GatewayConfig(tls_cert=tmp_path / "c.pem")
    with pytest.raises(ValidationError, match="no api_keys"):
        GatewayConfig(auth_required=True)
    with pytest.raises(ValidationError, match="64 hex"):
        ApiKey(name="x", sha256="plain-secret")
    with pytest.raises(ValidationError, match="unique"):
        GatewayConfig(api_keys=[keys()[0], keys()[0]])


def test_settings_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:

    digest = hash_key("k")
    monkeypatch.setenv("ULASAN_GATEWAY__AUTH_REQUIRED", "true")
    monkeypatch.setenv("ULASAN_GATEWAY__API_KEYS", json.dumps([{"name": "a", "sha256": digest}]))
    monkeypatch.setenv("ULASAN_GATEWAY__CORS_ORIGINS", '["https://ulasan.example"]')
    cfg = GatewaySettings().gateway
    assert cfg.auth_required and cfg.api_keys[0].sha256 == digest
    assert cfg.cors_origins == ["https://ulasan.example"]


def test_auth_off_lets_everyone_in_as_anonymous() -> None:
    who = Guard(GatewayConfig()).authenticate(None, "10.0.0.1")
    assert who.name == "anonymous" and who.bucket_key == "addr:10.0.0.1"


def test_auth_on_needs_a_known_key() -> None:
    guard = Guard(GatewayConfig(auth_required=True, api_keys=keys()))
    with pytest.raises(Unauthenticated, match="API key is required"):
        guard.authenticate(None)
    with pytest.raises(Unauthenticated, match="not valid"):
        guard.authenticate("guess")
    app = guard.authenticate("s3cret-app")
    assert (app.name, app.admin) == ("app", False)
    with pytest.raises(Forbidden, match="admin"):
        guard.require_admin(app)
    guard.require_admin(guard.authenticate("s3cret-ops"))


def test_rate_limit_per_key_with_retry_after() -> None:
    clock = Clock()
    guard = Guard(
        GatewayConfig(auth_required=True, api_keys=keys(), rate_per_s=1, burst=1), clock=clock
    )
    app, ops = guard.authenticate("s3cret-app"), guard.authenticate("s3cret-ops")
    guard.limit(app)
    guard.limit(app)  # the key's own burst of 2
    with pytest.raises(RateLimited) as info:
        guard.limit(app)
    assert info.value.retry_after_s == pytest.approx(0.5)
    guard.limit(ops)  # another key has its own bucket (the default: 1/s, burst 1)
    with pytest.raises(RateLimited):
        guard.limit(ops)
    clock.now += 0.5
    guard.limit(app)


def test_no_rate_limit_configured_means_none() -> None:
    guard = Guard(GatewayConfig())
    who = guard.authenticate(None, "c")
    for _ in range(1000):
        guard.limit(who)


def test_audit_log_appends_json_lines(tmp_path: Path) -> None:
    audit = AuditLog(tmp_path / "sub" / "audit.jsonl")
    who = Guard(GatewayConfig(auth_required=True, api_keys=keys())).authenticate("s3cret-ops")

    async def main() -> None:
        await audit.record(who, "model.reload", "announced", version="4")
        await audit.record(who, "model.reload", "refused", error="no champion")

    asyncio.run(main())
    lines = [json.loads(x) for x in (tmp_path / "sub" / "audit.jsonl").read_text().splitlines()]
    assert [(x["principal"], x["action"], x["outcome"]) for x in lines] == [
        ("ops", "model.reload", "announced"),
        ("ops", "model.reload", "refused"),
    ]
    assert lines[0]["version"] == "4" and "time" in lines[0]
