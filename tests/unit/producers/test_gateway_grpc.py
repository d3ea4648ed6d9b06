"""The gRPC face in process (a real grpc.aio server, no Kafka): INVALID_ARGUMENT for every bad
input, auth and rate limits, health checking, reflection, and stubs that match the proto."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from producers.gateway.core import GatewayCore, Prediction
from producers.gateway.grpc_server import SERVICE, build_grpc_server, set_serving
from producers.gateway.protos import GENERATED, PACKAGE, ROOT, generate
from producers.gateway.security import hash_key
from producers.gateway.server import Gateway
from producers.gateway.settings import (
    MAX_VALID_GRPC_BYTES,
    ApiKey,
    GatewayConfig,
    GatewaySettings,
)
from schemas.events import MAX_BATCH_TEXTS, MAX_TEXT_CHARS, SentimentScored
from ulasan.core.grpc_gen import ulasan_pb2 as pb
from ulasan.core.grpc_gen import ulasan_pb2_grpc as pb_grpc

TARGET: dict[str, str] = {}  # where the server of the running scenario listens


def serve(
    tmp_path: Path,
    scenario: Callable[[grpc.aio.Channel], Awaitable[Any]],
    core: type[GatewayCore] = GatewayCore,
    **cfg: Any,
) -> Any:
    settings = GatewaySettings(
        state_dir=tmp_path, gateway=GatewayConfig(audit_log=tmp_path / "a.jsonl", **cfg)
    )
    gw = Gateway.build(settings)
    the_core = core(settings, gw.core.metrics)

    async def main() -> Any:
        server, health, port = build_grpc_server(
            the_core, gw.guard, gw.audit, address="127.0.0.1:0"
        )
        await server.start()
        await set_serving(health, True)
        TARGET["now"] = f"127.0.0.1:{port}"
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
        allow_plaintext_loopback=True,
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


# -- limits -----------------------------------------------------------------------------------


class ScriptedCore(GatewayCore):
    """The real core with its Kafka round trip replaced by an in-process answer that waits
    for ``release`` (the stream's own logic is under test, not the workers)."""

    release: asyncio.Event | None = None
    in_flight = 0
    max_in_flight = 0
    calls = 0

    async def predict(
        self, texts: list[str], *, deadline_s: float | None = None, record: bool = True
    ) -> Prediction:
        cls = type(self)
        cls.calls += 1
        cls.in_flight += 1
        cls.max_in_flight = max(cls.max_in_flight, cls.in_flight)
        try:
            if cls.release is not None:
                await cls.release.wait()
        finally:
            cls.in_flight -= 1
        scored = SentimentScored(
            event_id="e",
            request_id="r",
            label="positive",
            confidence=0.9,
            probabilities={"negative": 0.05, "neutral": 0.05, "positive": 0.9},
            model_name="scripted",
            model_version="1",
        )
        return Prediction("r", [scored] * len(texts), 1.0)


def scripted(release: asyncio.Event | None = None) -> type[ScriptedCore]:
    return type(
        "Scripted",
        (ScriptedCore,),
        {"release": release, "in_flight": 0, "max_in_flight": 0, "calls": 0},
    )


def test_messages_over_the_size_limit_are_refused(tmp_path: Path) -> None:
    async def scenario(channel: grpc.aio.Channel) -> tuple[grpc.StatusCode, str]:
        stub = pb_grpc.GatewayStub(channel)
        return await status_of(stub.Predict(pb.PredictRequest(text="x" * 3000)))

    code, _ = serve(tmp_path, scenario, grpc_max_message_bytes=2048)
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_the_largest_valid_message_fits_the_default_limit() -> None:
    worst = pb.PredictBatchRequest(texts=["\U0001f600" * MAX_TEXT_CHARS] * MAX_BATCH_TEXTS)
    assert worst.ByteSize() <= MAX_VALID_GRPC_BYTES <= GatewayConfig().grpc_max_message_bytes


def test_concurrent_rpcs_over_the_limit_are_refused(tmp_path: Path) -> None:
    async def scenario(channel: grpc.aio.Channel) -> tuple[grpc.StatusCode, str]:
        stub = pb_grpc.GatewayStub(channel)
        held = asyncio.Event()

        async def nothing_yet() -> Any:
            await held.wait()
            yield pb.PredictRequest(text="x")

        stream = stub.PredictStream(nothing_yet())
        await stream.initial_metadata()  # the server holds this RPC now
        second = await status_of(stub.Predict(pb.PredictRequest(text="ok")))
        stream.cancel()
        return second

    code, _ = serve(tmp_path, scenario, grpc_max_concurrent_rpcs=1)
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_each_stream_message_takes_a_rate_limit_token(tmp_path: Path) -> None:
    async def scenario(channel: grpc.aio.Channel) -> tuple[list[str], grpc.StatusCode, str]:
        stub = pb_grpc.GatewayStub(channel)

        async def five() -> Any:
            for i in range(5):
                yield pb.PredictRequest(text=f"teks {i}", id=str(i))

        got: list[str] = []
        try:
            async for answer in stub.PredictStream(five(), metadata=(("x-api-key", "k"),)):
                got.append(answer.id)
        except grpc.aio.AioRpcError as exc:
            return got, exc.code(), exc.details() or ""
        return got, grpc.StatusCode.OK, ""

    got, code, details = serve(
        tmp_path,
        scenario,
        core=scripted(),
        auth_required=True,
        allow_plaintext_loopback=True,
        api_keys=[ApiKey(name="app", sha256=hash_key("k"), rate_per_s=0.001, burst=3)],
    )
    assert sorted(got) == ["0", "1", "2"]  # the three tokens of the burst, one per message
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and details.startswith("message 3:")


def test_a_stream_has_a_bounded_number_of_messages_in_flight(tmp_path: Path) -> None:
    release = asyncio.Event()
    core = scripted(release)

    async def scenario(channel: grpc.aio.Channel) -> list[str]:
        stub = pb_grpc.GatewayStub(channel)

        async def many() -> Any:
            for i in range(40):
                yield pb.PredictRequest(text=f"teks {i}", id=str(i))

        call = stub.PredictStream(many())
        answers: list[str] = []

        async def read() -> None:
            async for answer in call:
                answers.append(answer.id)

        reader = asyncio.create_task(read())
        for _ in range(2000):  # until the bound is reached (every message is on the wire)
            if core.in_flight >= 4:
                break
            await asyncio.sleep(0.005)
        await asyncio.sleep(0.2)  # time for a broken bound to show: more would be in flight
        assert core.in_flight == 4 and core.calls == 4
        release.set()
        await reader
        return answers

    answers = serve(tmp_path, scenario, core=core, stream_max_in_flight=4)
    assert sorted(int(a) for a in answers) == list(range(40))
    assert core.max_in_flight == 4


def test_reflection_is_off_with_auth_unless_enabled(tmp_path: Path) -> None:
    async def scenario(channel: grpc.aio.Channel) -> grpc.StatusCode:
        refl = reflection_pb2_grpc.ServerReflectionStub(channel)

        async def ask() -> Any:
            yield reflection_pb2.ServerReflectionRequest(list_services="")

        try:
            async for _ in refl.ServerReflectionInfo(ask()):
                pass
        except grpc.aio.AioRpcError as exc:
            return exc.code()
        return grpc.StatusCode.OK

    secure: dict[str, Any] = {
        "auth_required": True,
        "allow_plaintext_loopback": True,
        "api_keys": [ApiKey(name="app", sha256=hash_key("k"))],
    }
    assert serve(tmp_path / "a", scenario, **secure) == grpc.StatusCode.UNIMPLEMENTED
    on = serve(tmp_path / "b", scenario, grpc_reflection=True, **secure)
    assert on == grpc.StatusCode.OK


def test_failed_authentication_is_limited_per_address_and_audited(tmp_path: Path) -> None:
    async def scenario(channel: grpc.aio.Channel) -> list[grpc.StatusCode]:
        codes = []
        for key in ("guess-1", "guess-2", "k"):  # new connections share the address bucket
            async with grpc.aio.insecure_channel(TARGET["now"]) as fresh:
                md = (("x-api-key", key),)
                code, _ = await status_of(
                    pb_grpc.GatewayStub(fresh).Predict(pb.PredictRequest(text=""), metadata=md)
                )
                codes.append(code)
        return codes

    codes = serve(
        tmp_path,
        scenario,
        auth_required=True,
        allow_plaintext_loopback=True,
        auth_fail_burst=2,
        api_keys=[ApiKey(name="app", sha256=hash_key("k"))],
    )
    assert codes == [
        grpc.StatusCode.UNAUTHENTICATED,
        grpc.StatusCode.UNAUTHENTICATED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
    ]
    audit = [json.loads(x) for x in (tmp_path / "a.jsonl").read_text().splitlines()]
    assert [(a["client"], a["outcome"], a["protocol"]) for a in audit] == [
        ("127.0.0.1", "invalid_key", "grpc")
    ] * 2
