"""Gateway settings, API keys (hashed, constant-time compare), token buckets and the audit log."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from producers.gateway.errors import Forbidden, RateLimited, Unauthenticated
from producers.gateway.security import AuditLog, AuthFailed, Guard, hash_key, peer_host
from producers.gateway.settings import ApiKey, GatewayConfig, GatewaySettings


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def secure(**cfg: object) -> GatewayConfig:
    return GatewayConfig(
        auth_required=True,
        allow_plaintext_loopback=True,
        api_keys=keys(),
        **cfg,  # type: ignore[arg-type]
    )


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
        GatewayConfig(auth_required=True, allow_plaintext_loopback=True)
    with pytest.raises(ValidationError, match="64 hex"):
        ApiKey(name="x", sha256="plain-secret")
    with pytest.raises(ValidationError, match="unique"):
        GatewayConfig(api_keys=[keys()[0], keys()[0]])


def test_settings_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:

    digest = hash_key("k")
    monkeypatch.setenv("ULASAN_GATEWAY__AUTH_REQUIRED", "true")
    monkeypatch.setenv("ULASAN_GATEWAY__ALLOW_PLAINTEXT_LOOPBACK", "true")
    monkeypatch.setenv("ULASAN_GATEWAY__API_KEYS", json.dumps([{"name": "a", "sha256": digest}]))
    monkeypatch.setenv("ULASAN_GATEWAY__CORS_ORIGINS", '["https://ulasan.example"]')
    cfg = GatewaySettings().gateway
    assert cfg.auth_required and cfg.api_keys[0].sha256 == digest
    assert cfg.cors_origins == ["https://ulasan.example"]


def test_auth_off_lets_everyone_in_as_anonymous_who_is_never_admin() -> None:
    guard = Guard(GatewayConfig())
    who = guard.authenticate(None, "10.0.0.1")
    assert who.name == "anonymous" and who.bucket_key == "addr:10.0.0.1"
    assert not who.admin
    with pytest.raises(Forbidden, match="AUTH_REQUIRED"):
        guard.require_admin(who)


def test_auth_on_needs_a_known_key() -> None:
    guard = Guard(GatewayConfig(auth_required=True, allow_plaintext_loopback=True, api_keys=keys()))
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
    guard = Guard(secure(rate_per_s=1, burst=1), clock=clock)
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
    who = Guard(
        GatewayConfig(auth_required=True, allow_plaintext_loopback=True, api_keys=keys())
    ).authenticate("s3cret-ops")

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


def test_failed_authentications_lock_the_address_out_for_a_while() -> None:
    clock = Clock()
    guard = Guard(secure(auth_fail_burst=2, auth_fail_rate_per_s=0.2), clock=clock)
    for guess in ("a", "b"):
        with pytest.raises(AuthFailed) as info:
            guard.authenticate(guess, "10.0.0.9")
        assert (info.value.client, info.value.why) == ("10.0.0.9", "invalid_key")
    with pytest.raises(RateLimited, match="failed authentications") as limited:
        guard.authenticate("s3cret-ops", "10.0.0.9")  # even the right key waits
    assert limited.value.retry_after_s == pytest.approx(5.0)
    assert guard.authenticate("s3cret-ops", "10.0.0.10").name == "ops"  # other addresses pass
    clock.now += 5.0
    assert guard.authenticate("s3cret-ops", "10.0.0.9").name == "ops"


def test_rate_limit_buckets_are_bounded_least_recently_used_first() -> None:
    clock = Clock()
    guard = Guard(GatewayConfig(rate_per_s=1, burst=1, max_buckets=2), clock=clock)
    a, b, c = (guard.authenticate(None, addr) for addr in ("a", "b", "c"))
    guard.limit(a)
    guard.limit(b)
    with pytest.raises(RateLimited):
        guard.limit(a)  # a is now the most recently used
    guard.limit(c)  # evicts b, the least recently used
    assert guard.bucket_count() == (2, 0)
    guard.limit(b)  # b starts again with a full bucket (and evicts a)
    guard.limit(a)  # so does a
    assert guard.bucket_count() == (2, 0)


def test_failure_buckets_are_bounded_too() -> None:
    guard = Guard(secure(max_buckets=3))
    for i in range(50):
        with pytest.raises(AuthFailed):
            guard.authenticate("guess", f"10.0.0.{i}")
    assert guard.bucket_count() == (0, 3)


def test_peer_host_drops_the_port() -> None:
    assert peer_host("ipv4:10.0.0.1:5000") == "10.0.0.1"
    assert peer_host("ipv6:[::1]:5000") == "::1"
    assert peer_host("unix:/tmp/s") == "unix:/tmp/s"
