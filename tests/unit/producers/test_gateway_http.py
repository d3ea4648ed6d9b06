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
    assert root.json()["limits"] == {"max_text_chars": 5000, "max_batch_texts": 100}
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
        }

    r = call(gw, calls)
    assert r["none"].status_code == 401 and "X-API-Key" in r["none"].json()["error"]["message"]
    assert r["wrong"].status_code == 401
    assert r["bearer"].status_code == 422  # authenticated, then validated
    assert r["stats"].status_code == 200
    assert r["reload_app"].status_code == 403
    assert r["health"].status_code == 200 and r["metrics"].status_code == 200
    audit = [json.loads(x) for x in (tmp_path / "audit.jsonl").read_text().splitlines()]
    assert [(a["principal"], a["action"], a["outcome"]) for a in audit] == [
        ("app", "model.reload", "refused")
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
