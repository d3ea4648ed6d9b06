"""The HTTP face in process (ASGI, no Kafka): every validation error, auth, rate limits, CORS,
open routes, and 503 when Kafka is not connected. Round trips are in tests/integration."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from producers.gateway.security import hash_key
from producers.gateway.server import Gateway
from producers.gateway.settings import ApiKey, GatewayConfig, GatewaySettings
from ulasan.core.settings import MLflowSettings
from ulasan.procs import free_port


def gateway(tmp_path: Path, **cfg: Any) -> Gateway:
    return Gateway.build(
        GatewaySettings(
            state_dir=tmp_path, gateway=GatewayConfig(audit_log=tmp_path / "audit.jsonl", **cfg)
        )
    )


def call(gw: Gateway, fn: Callable[[httpx.AsyncClient], Any]) -> Any:
    async def main() -> Any:
        transport = httpx.ASGITransport(app=gw.http_app, client=("10.1.2.3", 5000))
        async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
            return await fn(client)

    return asyncio.run(main())


BAD_BODIES = [
    # (route, raw body, field named, words in the message)
    ("/predict", b'{"text": ""}', "text", "at least 1 character"),
    ("/predict", b'{"text": " \\t "}', "text", "blank"),
    ("/predict", json.dumps({"text": "x" * 5001}).encode(), "text", "at most 5000 characters"),
    ("/predict", b'{"text": 42}', "text", "valid string"),
    ("/predict", b'{"text": ["a"]}', "text", "valid string"),
    ("/predict", b"{}", "text", "Field required"),
    ("/predict", b'{"text": "ok", "extra": 1}', "extra", "Extra inputs"),
    ("/predict", b'{"text": "\xff\xfe"}', "body", "not valid UTF-8"),
    ("/predict", b'{"text": "\\ud800"}', "text", "valid string"),
    ("/predict", b"{oops", "body", "not valid JSON"),
    ("/predict/batch", b'{"texts": []}', "texts", "at least 1 item"),
    ("/predict/batch", json.dumps({"texts": ["a"] * 101}).encode(), "texts", "at most 100"),
    ("/predict/batch", b'{"texts": ["ok", ""]}', "texts[1]", "at least 1 character"),
    ("/predict/batch", b'{"texts": ["ok", "  "]}', "texts", "texts[1]: is blank"),
    ("/predict/batch", b'{"texts": "abc"}', "texts", "valid list"),
    ("/predict/batch", json.dumps({"texts": ["a", "y" * 5001]}).encode(), "texts[1]", "5000"),
    ("/feedback", b'{"label": "positive"}', "body", "exactly one of review_id and request_id"),
    ("/feedback", b'{"review_id": "r", "label": "great"}', "label", "'negative'"),
    ("/feedback", b'{"review_id": 7, "label": "positive"}', "review_id", "valid string"),
]


@pytest.mark.parametrize(("route", "body", "field", "words"), BAD_BODIES)
def test_every_validation_error_is_422_naming_the_field(
    tmp_path: Path, route: str, body: bytes, field: str, words: str
) -> None:
    gw = gateway(tmp_path)
    resp = call(
        gw, lambda c: c.post(route, content=body, headers={"content-type": "application/json"})
    )
    assert resp.status_code == 422, resp.text
    data = resp.json()
    assert data["error"]["code"] == "invalid_input"
    assert any(d["field"] == field and words in d["msg"] for d in data["detail"]), data


def test_valid_request_without_kafka_is_503_not_a_hang(tmp_path: Path) -> None:
    gw = gateway(tmp_path)
    resp = call(gw, lambda c: c.post("/predict", json={"text": "bagus"}))
    assert resp.status_code == 503
    assert "not connected to Kafka" in resp.json()["error"]["message"]


def test_open_and_info_routes(tmp_path: Path) -> None:
    gw = gateway(tmp_path)

    async def calls(c: httpx.AsyncClient) -> list[httpx.Response]:
        return [await c.get(p) for p in ("/", "/health", "/metrics", "/stats", "/docs")]

    root, health, metrics, stats, docs = call(gw, calls)
    assert root.json()["limits"] == {
        "max_text_chars": 5000,
        "max_batch_texts": 100,
        "max_body_bytes": 6 * 1024 * 1024,
    }
    assert health.json() == {"status": "ok"}
    assert stats.json()["requests"] == 0
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
    body = call(gw, lambda c: c.get("/metrics")).text
    assert 'ulasan_api_requests_total{code="200",protocol="http",route="/health"} 1.0' in body
    assert "ulasan_api_request_duration_seconds_bucket" in body
    assert "ulasan_api_in_flight_requests" in body


def secured(tmp_path: Path, **extra: Any) -> Gateway:
    return gateway(
        tmp_path,
        auth_required=True,
        allow_plaintext_loopback=True,
        api_keys=[
            ApiKey(name="app", sha256=hash_key("k-app"), rate_per_s=0.5, burst=2),
            ApiKey(name="ops", sha256=hash_key("k-ops"), admin=True),
        ],
        **extra,
    )


def test_auth_when_enabled(tmp_path: Path) -> None:
    gw = secured(tmp_path)

    async def calls(c: httpx.AsyncClient) -> dict[str, httpx.Response]:
        return {
            "none": await c.post("/predict", json={"text": "x"}),
            "wrong": await c.post("/predict", json={"text": "x"}, headers={"x-api-key": "nope"}),
            "bearer": await c.post(
                "/predict", json={"text": ""}, headers={"authorization": "Bearer k-app"}
            ),
            "stats": await c.get("/stats", headers={"x-api-key": "k-ops"}),
            "reload_app": await c.post("/model/reload", headers={"x-api-key": "k-app"}),
            "health": await c.get("/health"),
            "metrics": await c.get("/metrics"),
            "metrics_key": await c.get("/metrics", headers={"x-api-key": "k-ops"}),
        }

    r = call(gw, calls)
    assert r["none"].status_code == 401 and "X-API-Key" in r["none"].json()["error"]["message"]
    assert r["wrong"].status_code == 401
    assert r["bearer"].status_code == 422  # authenticated, then validated
    assert r["stats"].status_code == 200
    assert r["reload_app"].status_code == 403
    assert r["health"].status_code == 200
    # with auth on, /metrics needs a key (or its own port: metrics_port)
    assert r["metrics"].status_code == 401 and r["metrics_key"].status_code == 200
    audit = [json.loads(x) for x in (tmp_path / "audit.jsonl").read_text().splitlines()]
    assert [(a["client"], a["action"], a["outcome"]) for a in audit] == [
        ("10.1.2.3", "authenticate", "missing_key"),
        ("10.1.2.3", "authenticate", "invalid_key"),
        ("key:app", "model.reload", "refused"),
        ("10.1.2.3", "authenticate", "missing_key"),
    ]


def test_rate_limit_is_429_with_retry_after(tmp_path: Path) -> None:
    gw = secured(tmp_path)

    async def calls(c: httpx.AsyncClient) -> list[httpx.Response]:
        h = {"x-api-key": "k-app"}
        return [await c.get("/stats", headers=h) for _ in range(3)] + [
            await c.get("/stats", headers={"x-api-key": "k-ops"})
        ]

    a, b, limited, other = call(gw, calls)
    assert (a.status_code, b.status_code, other.status_code) == (200, 200, 200)
    assert limited.status_code == 429
    assert int(limited.headers["retry-after"]) >= 1
    assert "rate limit" in limited.json()["error"]["message"]


def test_rate_limit_without_auth_is_per_client_address(tmp_path: Path) -> None:
    gw = gateway(tmp_path, rate_per_s=1, burst=1)

    async def calls(c: httpx.AsyncClient) -> list[int]:
        return [(await c.get("/stats")).status_code for _ in range(2)]

    assert call(gw, calls) == [200, 429]


def test_cors_origins(tmp_path: Path) -> None:
    gw = gateway(tmp_path, cors_origins=["https://ulasan.example"])
    headers = {"origin": "https://ulasan.example", "access-control-request-method": "POST"}
    resp = call(gw, lambda c: c.options("/predict", headers=headers))
    assert resp.headers["access-control-allow-origin"] == "https://ulasan.example"
    other = {"origin": "https://evil.example", "access-control-request-method": "POST"}
    resp = call(gw, lambda c: c.options("/predict", headers=other))
    assert "access-control-allow-origin" not in resp.headers


# -- hardening: the gate, limits, docs, metrics, roles and what errors say -------------------


class Body:
    """An ASGI ``receive`` that streams ``total`` bytes in ``chunk``-byte messages (or stalls
    after the first one) and counts what the app pulled."""

    def __init__(self, total: int, chunk: int = 1000, *, stall: bool = False) -> None:
        self.total, self.chunk, self.stall = total, chunk, stall
        self.pulled = 0
        self.calls = 0

    async def __call__(self) -> dict[str, Any]:
        self.calls += 1
        if self.stall and self.pulled:
            await asyncio.Event().wait()  # a client that stops sending
        if self.pulled >= self.total:
            return {"type": "http.disconnect"}
        n = min(self.chunk, self.total - self.pulled)
        self.pulled += n
        more = self.pulled < self.total
        return {"type": "http.request", "body": b"x" * n, "more_body": more}


def asgi_post(
    gw: Gateway, path: str, body: Body, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, Any]]:
    """POST ``body`` to the app over raw ASGI; the status and the JSON answer."""
    sent: list[dict[str, Any]] = []
    raw = [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"content-type", b"application/json"), *raw],
        "client": ("10.9.8.7", 4000),
        "server": ("gw", 80),
    }

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(gw.http_app(scope, body, send))
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    payload = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return status, json.loads(payload)


def test_body_over_the_limit_is_413_before_more_is_read(tmp_path: Path) -> None:
    gw = gateway(tmp_path, max_body_bytes=4096)
    body = Body(total=100 * 1024 * 1024)  # 100 MiB on offer, streamed 1000 bytes at a time
    status, answer = asgi_post(gw, "/predict/batch", body)
    assert status == 413 and answer["error"]["code"] == "payload_too_large"
    assert "4096 bytes" in answer["error"]["message"]
    assert body.pulled <= 4096 + 1000  # stopped within one chunk of the limit


def test_declared_oversize_body_is_413_without_reading(tmp_path: Path) -> None:
    gw = gateway(tmp_path, max_body_bytes=4096)
    body = Body(total=10**9)
    status, answer = asgi_post(gw, "/predict", body, {"content-length": str(10**9)})
    assert status == 413 and "1000000000 bytes" in answer["error"]["message"]
    assert body.calls == 0


def test_unauthenticated_caller_never_gets_its_body_read(tmp_path: Path) -> None:
    gw = secured(tmp_path)
    body = Body(total=10 * 1024 * 1024)
    status, answer = asgi_post(gw, "/predict/batch", body, {"x-api-key": "wrong"})
    assert status == 401 and answer["error"]["code"] == "unauthenticated"
    assert body.calls == 0


def test_a_body_that_stalls_is_408(tmp_path: Path) -> None:
    gw = gateway(tmp_path, body_timeout_s=0.05)
    status, answer = asgi_post(gw, "/predict", Body(total=10_000, stall=True))
    assert status == 408 and answer["error"]["code"] == "request_timeout"


def test_the_largest_valid_body_fits_the_default_limit(tmp_path: Path) -> None:
    # 100 texts of 5000 emoji, ASCII-escaped as surrogate pairs (12 bytes each): the worst case
    worst = json.dumps({"texts": ["\U0001f600" * 5000] * 100}).encode()
    assert len(worst) <= GatewayConfig().max_body_bytes
    gw = gateway(tmp_path)
    headers = {"content-type": "application/json"}
    resp = call(gw, lambda c: c.post("/predict/batch", content=worst, headers=headers))
    assert resp.status_code == 503  # past the gate and validation: only Kafka is missing


def test_failed_authentication_is_rate_limited_per_address_and_audited(tmp_path: Path) -> None:
    gw = secured(tmp_path, auth_fail_burst=3)

    async def calls(c: httpx.AsyncClient) -> list[int]:
        codes = [
            (await c.get("/stats", headers={"x-api-key": f"guess-{i}"})).status_code
            for i in range(3)
        ]
        # the address is locked out: even the right key waits (keys cannot be guessed at speed)
        codes.append((await c.get("/stats", headers={"x-api-key": "k-ops"})).status_code)
        return codes

    assert call(gw, calls) == [401, 401, 401, 429]
    audit = [json.loads(x) for x in (tmp_path / "audit.jsonl").read_text().splitlines()]
    assert [(a["client"], a["outcome"], a["protocol"]) for a in audit] == [
        ("10.1.2.3", "invalid_key", "http")
    ] * 3

    async def other(c: httpx.AsyncClient) -> int:
        return (await c.get("/stats", headers={"x-api-key": "k-ops"})).status_code

    async def main() -> int:  # another address is not locked out
        transport = httpx.ASGITransport(app=gw.http_app, client=("10.7.7.7", 5000))
        async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
            return await other(client)

    assert asyncio.run(main()) == 200


def test_docs_and_openapi_are_off_with_auth_unless_enabled(tmp_path: Path) -> None:
    async def calls(c: httpx.AsyncClient) -> list[int]:
        key = {"x-api-key": "k-ops"}
        return [
            (await c.get("/docs", headers=key)).status_code,
            (await c.get("/openapi.json", headers=key)).status_code,
            (await c.get("/openapi.json")).status_code,
        ]

    assert call(secured(tmp_path / "off"), calls) == [404, 404, 401]
    assert call(secured(tmp_path / "on", docs_enabled=True), calls) == [200, 200, 200]
    assert call(gateway(tmp_path / "open"), calls) == [200, 200, 200]


def test_metrics_on_its_own_port_leave_the_http_app(tmp_path: Path) -> None:
    gw = secured(tmp_path, metrics_port=9999)
    resp = call(gw, lambda c: c.get("/metrics", headers={"x-api-key": "k-ops"}))
    assert resp.status_code == 404


def test_anonymous_callers_are_never_admin(tmp_path: Path) -> None:
    gw = gateway(tmp_path)  # auth off
    resp = call(gw, lambda c: c.post("/model/reload"))
    assert resp.status_code == 403
    assert "AUTH_REQUIRED" in resp.json()["error"]["message"]


def test_errors_name_no_registry_url(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there: the registry is down
    settings = GatewaySettings(
        state_dir=tmp_path,
        mlflow=MLflowSettings(port=port),
        gateway=GatewayConfig(
            audit_log=tmp_path / "a.jsonl",
            auth_required=True,
            allow_plaintext_loopback=True,
            api_keys=[ApiKey(name="ops", sha256=hash_key("k-ops"), admin=True)],
        ),
    )
    gw = Gateway.build(settings)

    async def calls(c: httpx.AsyncClient) -> list[httpx.Response]:
        key = {"x-api-key": "k-ops"}
        return [await c.get("/model/info", headers=key), await c.post("/model/reload", headers=key)]

    info, reload = call(gw, calls)
    assert info.json()["registry"]["error"] == "the model registry does not answer; try again later"
    assert reload.status_code == 503
    for text in (info.text, reload.text):
        assert str(port) not in text and "http://" not in text and "Error" not in text


def test_an_unexpected_error_is_500_without_its_text(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    gw = gateway(tmp_path)
    secret = "postgresql://u:hunter2@db:5432/ulasan"

    async def broken() -> dict[str, Any]:
        raise RuntimeError(f"cannot reach {secret}")

    monkeypatch.setattr(gw.core, "model_info", broken)
    resp = call(gw, lambda c: c.get("/model/info"))
    assert resp.status_code == 500 and resp.json()["error"]["code"] == "internal"
    assert "hunter2" not in resp.text and "hunter2" not in caplog.text
    assert "RuntimeError" in caplog.text  # the log names the type and an id to find it by
