"""The HTTP server's own limits on a real socket (uvicorn, no Kafka): header size, connections
at once, idle keep-alive, an oversize body refused from its Content-Length; and the settings
that refuse auth without TLS."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from pydantic import ValidationError

from producers.gateway.security import hash_key
from producers.gateway.server import Gateway
from producers.gateway.settings import ApiKey, GatewayConfig, GatewaySettings
from ulasan.procs import free_port

HEALTH = b"GET /health HTTP/1.1\r\nHost: gw\r\n\r\n"


@contextlib.asynccontextmanager
async def serving(tmp_path: Path, **cfg: Any) -> AsyncIterator[int]:
    gw = Gateway.build(
        GatewaySettings(
            state_dir=tmp_path, gateway=GatewayConfig(audit_log=tmp_path / "a.jsonl", **cfg)
        )
    )
    port = free_port()
    server = uvicorn.Server(gw.http_config(port))
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.01)
        yield port
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 30)


async def exchange(port: int, request: bytes) -> tuple[bytes, asyncio.StreamWriter, Any]:
    """Send ``request`` on a new connection; the status line of the answer and the stream."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
    return head.split(b"\r\n", 1)[0], writer, reader


def run(tmp_path: Path, scenario: Callable[[int], Awaitable[Any]], **cfg: Any) -> Any:
    async def main() -> Any:
        async with serving(tmp_path, **cfg) as port:
            return await scenario(port)

    return asyncio.run(main())


def test_headers_over_the_limit_are_refused(tmp_path: Path) -> None:
    async def scenario(port: int) -> tuple[bytes, bytes]:
        # headers that keep coming past the limit (no blank line yet): refused before the end
        big = b"GET /health HTTP/1.1\r\nHost: gw\r\nX-Pad: " + b"a" * 4096
        refused, w1, _ = await exchange(port, big)
        fine, w2, _ = await exchange(port, HEALTH)
        w1.close()
        w2.close()
        return refused, fine

    refused, fine = run(tmp_path, scenario, http_max_header_bytes=2048)
    assert refused.startswith(b"HTTP/1.1 400") and fine.startswith(b"HTTP/1.1 200")


def test_connections_over_the_limit_are_503(tmp_path: Path) -> None:
    async def scenario(port: int) -> list[bytes]:
        first, w1, _ = await exchange(port, HEALTH)  # stays open (keep-alive)
        second, w2, _ = await exchange(port, HEALTH)
        w1.close()
        w2.close()
        return [first, second]

    first, second = run(tmp_path, scenario, http_limit_concurrency=2)
    assert first.startswith(b"HTTP/1.1 200") and second.startswith(b"HTTP/1.1 503")


def test_idle_keep_alive_connections_are_closed(tmp_path: Path) -> None:
    async def scenario(port: int) -> bytes:
        _, writer, reader = await exchange(port, HEALTH)
        await reader.readexactly(15)  # the body, {"status":"ok"}
        rest = await asyncio.wait_for(reader.read(), 30)  # b"" once the server closes
        writer.close()
        return rest

    assert run(tmp_path, scenario, http_keep_alive_s=1) == b""


def test_declared_oversize_body_is_413_on_the_wire(tmp_path: Path) -> None:
    async def scenario(port: int) -> bytes:
        head = (
            b"POST /predict HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\n"
            b"Content-Length: 1000000000\r\n\r\n"
        )
        status, writer, _ = await exchange(port, head)  # no body sent at all
        writer.close()
        return status

    assert run(tmp_path, scenario, max_body_bytes=4096).startswith(b"HTTP/1.1 413")


def test_auth_needs_tls_unless_loopback_is_allowed(tmp_path: Path) -> None:
    keys = [ApiKey(name="a", sha256=hash_key("k"))]
    with pytest.raises(ValidationError, match="without TLS"):
        GatewayConfig(auth_required=True, api_keys=keys)
    with pytest.raises(ValidationError, match="loopback host only"):
        GatewayConfig(
            auth_required=True, api_keys=keys, allow_plaintext_loopback=True, host="0.0.0.0"
        )  # noqa: S104 - the case under test
    for host in ("127.0.0.1", "::1", "localhost", "127.0.0.5"):
        GatewayConfig(auth_required=True, api_keys=keys, allow_plaintext_loopback=True, host=host)
    cert, key = tmp_path / "c.pem", tmp_path / "k.pem"
    GatewayConfig(auth_required=True, api_keys=keys, tls_cert=cert, tls_key=key, host="0.0.0.0")  # noqa: S104
