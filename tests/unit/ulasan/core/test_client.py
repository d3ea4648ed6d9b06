"""The typed client's errors: what each gateway answer (and no answer) becomes."""

from __future__ import annotations

import asyncio
import socket

import httpx
import pytest

from ulasan.core import client as gc
from ulasan.core.grpc_gen import ulasan_pb2 as pb


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


SCORED = {
    "index": 0,
    "label": "positive",
    "confidence": 0.9,
    "probabilities": {"negative": 0.05, "neutral": 0.05, "positive": 0.9},
    "model_name": "ulasan-sentiment",
    "model_version": "3",
    "inference_ms": 1.5,
    "queue_ms": 0.5,
}


def fake_gateway(request: httpx.Request) -> httpx.Response:
    """The gateway's HTTP answers, by path (what ``MockTransport`` serves both clients)."""
    if request.url.path == "/predict":
        return httpx.Response(
            200, json={"request_id": "r1", "latency_ms": 3.0, "prediction": SCORED}
        )
    if request.url.path == "/model/info":
        return httpx.Response(200, json={"serving": None, "registry": {"name": "m", "version": 4}})
    if request.url.path == "/predict/batch":
        return httpx.Response(200, text="<html>proxy error</html>")
    return httpx.Response(503, json={"error": {"code": "unavailable", "message": "no kafka"}})


def test_the_sync_and_async_clients_give_the_same_results_and_errors() -> None:
    with gc.GatewayClient(transport=httpx.MockTransport(fake_gateway)) as gw:
        sync = (gw.predict("bagus"), gw.model_info())
        with pytest.raises(gc.GatewayFailed, match="/predict/batch answered something"):
            gw.predict_batch(["a"])
        with pytest.raises(gc.GatewayUnavailable, match="no kafka"):
            gw.feedback("positive", review_id="x")

    async def run() -> tuple[gc.PredictResult, gc.ModelInfo]:
        async with gc.AsyncGatewayClient(transport=httpx.MockTransport(fake_gateway)) as agw:
            with pytest.raises(gc.GatewayFailed, match="/predict/batch answered something"):
                await agw.predict_batch(["a"])
            with pytest.raises(gc.GatewayUnavailable, match="no kafka"):
                await agw.feedback("positive", review_id="x")
            return await agw.predict("bagus"), await agw.model_info()

    assert asyncio.run(run()) == sync
    predicted, info = sync
    assert predicted.prediction.label == "positive" and predicted.prediction.model_version == "3"
    assert info.registry_version == "4" and info.serving is None


def test_an_http_call_builds_its_request_and_reads_its_answer() -> None:
    call = gc.feedback_call("negative", None, "req-1")
    assert (call.method, call.path, call.body) == (
        "POST",
        "/feedback",
        {"label": "negative", "request_id": "req-1"},
    )
    answered = call.answer(
        httpx.Response(200, json={"feedback_id": "f", "review_id": "rv", "label": "negative"})
    )
    assert answered == gc.FeedbackResult(feedback_id="f", review_id="rv", label="negative")
    with pytest.raises(gc.GatewayFailed, match="not a FeedbackResult"):
        call.answer(httpx.Response(200, json={"feedback_id": "f"}))
    assert gc.health_call().answer(httpx.Response(200, json={"status": "ok"})) is True
    assert gc.stats_call().answer(httpx.Response(200, json={"texts_scored": 2})) == {
        "texts_scored": 2
    }


def test_a_grpc_call_builds_its_message_and_reads_the_reply() -> None:
    call = gc.grpc_predict_batch_call(["a", "b"])
    assert call.method == "PredictBatch" and list(call.request.texts) == ["a", "b"]
    reply = pb.PredictBatchResponse(request_id="r", latency_ms=2.0, predictions=[SCORED])
    assert call.read(reply) == gc.BatchResult(
        request_id="r", latency_ms=2.0, predictions=[gc.Scored(**SCORED)]
    )
    info = gc.grpc_model_info_call().read(pb.ModelInfoResponse(registry_name="m"))
    assert info.serving is None and info.registry_name == "m" and info.registry_version is None
    with pytest.raises(gc.InvalidRequest, match="exactly one"):
        gc.grpc_feedback_call("positive", "a", "b")
