"""The typed client's errors: what each gateway answer (and no answer) becomes."""

from __future__ import annotations

import asyncio
import socket

import httpx
import pytest

from ulasan.core import client as gc


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed again when the block ends: nothing listens


def response(status: int, body: object, **headers: str) -> httpx.Response:
    return httpx.Response(status, json=body, headers=headers)


def test_nothing_listening_is_unreachable_with_the_command_to_start() -> None:
    port = closed_port()
    with (
        gc.GatewayClient(f"http://127.0.0.1:{port}", timeout_s=2) as gw,
        pytest.raises(gc.GatewayUnreachable, match="ulasan gateway serve"),
    ):
        gw.predict("halo")
    with (
        gc.GrpcGatewayClient(f"127.0.0.1:{port}", timeout_s=2) as grpc_gw,
        pytest.raises(gc.GatewayUnreachable, match="ulasan gateway serve"),
    ):
        grpc_gw.predict("halo")

    async def run() -> None:
        async with gc.AsyncGatewayClient(f"http://127.0.0.1:{port}", timeout_s=2) as agw:
            await agw.predict("halo")

    with pytest.raises(gc.GatewayUnreachable):
        asyncio.run(run())


def test_error_answers_map_to_their_errors() -> None:
    bad = gc.http_error(
        response(
            422,
            {
                "error": {"code": "invalid_input", "message": "texts[3]: too long"},
                "detail": [{"field": "texts[3]", "msg": "too long"}],
            },
        )
    )
    assert isinstance(bad, gc.InvalidRequest) and bad.fields == {"texts[3]": "too long"}
    assert bad.status == 422 and "texts[3]: too long" in str(bad)
    late = gc.http_error(response(504, {"error": {"code": "deadline_exceeded", "message": "x"}}))
    assert isinstance(late, gc.DeadlineExceeded) and "ulasan worker" in str(late)
    limited = gc.http_error(
        response(
            429, {"error": {"code": "rate_limited", "message": "slow"}}, **{"Retry-After": "3"}
        )
    )
    assert isinstance(limited, gc.RateLimited) and limited.retry_after_s == 3.0
    assert isinstance(gc.http_error(response(401, {})), gc.NotAllowed)
    assert isinstance(gc.http_error(response(503, {})), gc.GatewayUnavailable)
    odd = gc.http_error(httpx.Response(500, text="<html>oops</html>"))
    assert isinstance(odd, gc.GatewayFailed) and "oops" in str(odd)


def test_feedback_needs_exactly_one_subject() -> None:
    with gc.GatewayClient("http://127.0.0.1:1") as gw:
        with pytest.raises(gc.InvalidRequest, match="exactly one"):
            gw.feedback("positive")
        with pytest.raises(gc.InvalidRequest, match="exactly one"):
            gw.feedback("positive", review_id="a", request_id="b")
