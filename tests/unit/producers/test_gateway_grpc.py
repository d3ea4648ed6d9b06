"""The gRPC face in process (a real grpc.aio server, no Kafka): INVALID_ARGUMENT for every bad
input, auth and rate limits, health checking, reflection, and stubs that match the proto."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from producers.gateway.grpc_server import SERVICE, build_grpc_server, set_serving
from producers.gateway.protos import GENERATED, PACKAGE, ROOT, generate
from producers.gateway.security import hash_key
from producers.gateway.server import Gateway
from producers.gateway.settings import ApiKey, GatewayConfig, GatewaySettings
from ulasan.core.grpc_gen import ulasan_pb2 as pb
from ulasan.core.grpc_gen import ulasan_pb2_grpc as pb_grpc


def serve(
    tmp_path: Path, scenario: Callable[[grpc.aio.Channel], Awaitable[Any]], **cfg: Any
) -> Any:
    gw = Gateway.build(
        GatewaySettings(
            state_dir=tmp_path, gateway=GatewayConfig(audit_log=tmp_path / "a.jsonl", **cfg)
        )
    )

    async def main() -> Any:
        server, health, port = build_grpc_server(gw.core, gw.guard, gw.audit, address="127.0.0.1:0")
        await server.start()
        await set_serving(health, True)
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                return await scenario(channel)
        finally:
            await server.stop(grace=None)

    return asyncio.run(main())


async def status_of(call: Awaitable[Any]) -> tuple[grpc.StatusCode, str]:
    try:
        await call
    except grpc.aio.AioRpcError as exc:
        return exc.code(), exc.details() or ""
    return grpc.StatusCode.OK, ""


def test_every_bad_input_is_invalid_argument(tmp_path: Path) -> None:
    async def scenario(channel: grpc.aio.Channel) -> list[tuple[grpc.StatusCode, str]]:
        stub = pb_grpc.GatewayStub(channel)
        raw = channel.unary_unary(f"/{SERVICE}/Predict")
        return [
            await status_of(stub.Predict(pb.PredictRequest(text=""))),
            await status_of(stub.Predict(pb.PredictRequest(text="  "))),
            await status_of(stub.Predict(pb.PredictRequest(text="x" * 5001))),
            await status_of(stub.PredictBatch(pb.PredictBatchRequest(texts=[]))),
            await status_of(stub.PredictBatch(pb.PredictBatchRequest(texts=["a"] * 101))),
            await status_of(stub.PredictBatch(pb.PredictBatchRequest(texts=["a", ""]))),
            await status_of(raw(b"\x0a\x02\xff\xfe")),  # field 1 (text) with bad UTF-8
            await status_of(raw(b"\x0a\x05ab")),  # truncated: not a PredictRequest
            await status_of(stub.Feedback(pb.FeedbackRequest(label="positive"))),
            await status_of(stub.Feedback(pb.FeedbackRequest(review_id="r", label="great"))),
        ]

    results = serve(tmp_path, scenario)
    assert all(code == grpc.StatusCode.INVALID_ARGUMENT for code, _ in results), results
    details = [d for _, d in results]
    assert details[0].startswith("text: is empty")
    assert "blank" in details[1]
    assert "limit of 5000" in details[2]
    assert details[3].startswith("texts: is empty")
    assert "limit of 100" in details[4]
    assert details[5].startswith("texts[1]:")
    assert "bad UTF-8" in details[6] or "UTF-8" in details[6]
    assert "not a valid PredictRequest" in details[7]
    assert "exactly one of review_id and request_id" in details[8]
    assert details[9].startswith("label:")


def test_stream_reports_the_bad_message(tmp_path: Path) -> None:
    async def scenario(channel: grpc.aio.Channel) -> tuple[grpc.StatusCode, str]:
        stub = pb_grpc.GatewayStub(channel)

        async def requests() -> Any:
            yield pb.PredictRequest(text="", id="a")

        try:
            async for _ in stub.PredictStream(requests()):
                pass
        except grpc.aio.AioRpcError as exc:
            return exc.code(), exc.details() or ""
        return grpc.StatusCode.OK, ""

    code, details = serve(tmp_path, scenario)
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert details.startswith("message 0: text: is empty")


def test_valid_request_without_kafka_is_unavailable(tmp_path: Path) -> None:
    async def scenario(channel: grpc.aio.Channel) -> tuple[grpc.StatusCode, str]:
        return await status_of(pb_grpc.GatewayStub(channel).Predict(pb.PredictRequest(text="ok")))

    code, details = serve(tmp_path, scenario)
    assert code == grpc.StatusCode.UNAVAILABLE and "Kafka" in details


def test_auth_and_rate_limit(tmp_path: Path) -> None:
    async def scenario(channel: grpc.aio.Channel) -> list[tuple[grpc.StatusCode, str]]:
        stub = pb_grpc.GatewayStub(channel)
        bad = pb.PredictRequest(text="")
        key = (("x-api-key", "k-app"),)
        return [
            await status_of(stub.Predict(bad)),
            await status_of(stub.Predict(bad, metadata=(("x-api-key", "nope"),))),
            await status_of(stub.Predict(bad, metadata=key)),  # authenticated: validated
            await status_of(stub.Predict(bad, metadata=key)),  # bucket of 2 now empty
            await status_of(stub.Predict(bad, metadata=(("authorization", "Bearer k-app"),))),
        ]

    results = serve(
        tmp_path,
        scenario,
        auth_required=True,
        api_keys=[ApiKey(name="app", sha256=hash_key("k-app"))],
        rate_per_s=0.5,
        burst=2,
    )
    codes = [c for c, _ in results]
    assert codes == [
        grpc.StatusCode.UNAUTHENTICATED,
        grpc.StatusCode.UNAUTHENTICATED,
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
    ]
    assert "rate limit" in results[4][1]


def test_health_and_reflection(tmp_path: Path) -> None:
    async def scenario(channel: grpc.aio.Channel) -> tuple[Any, list[str]]:
        health = health_pb2_grpc.HealthStub(channel)
        status = await health.Check(health_pb2.HealthCheckRequest(service=SERVICE))
        refl = reflection_pb2_grpc.ServerReflectionStub(channel)

        async def ask() -> Any:
            yield reflection_pb2.ServerReflectionRequest(list_services="")

        names: list[str] = []
        async for resp in refl.ServerReflectionInfo(ask()):
            names += [s.name for s in resp.list_services_response.service]
        return status.status, names

    status, names = serve(tmp_path, scenario)
    assert status == health_pb2.HealthCheckResponse.SERVING
    assert SERVICE in names and "grpc.health.v1.Health" in names


def test_committed_stubs_match_the_proto(tmp_path: Path) -> None:
    fresh = generate(tmp_path)
    for path in fresh:
        committed = ROOT / PACKAGE / path.name
        assert committed.read_text() == path.read_text(), (
            f"{committed} is stale: run `ulasan gateway protos` and commit the result"
        )
    assert sorted(p.name for p in fresh) == sorted(GENERATED)
