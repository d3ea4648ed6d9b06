"""HTTP and gRPC round trips through the real stack: gateway -> predict.requests.v1 -> a live
`ulasan worker` (tiny model) -> predict.replies.v1 -> the gateway that asked. Also: two
instances never see each other's replies, auth and rate limits on a live gateway, the forced
reload announcement, schemathesis against the OpenAPI schema, feedback by request_id joining the
stored prediction (HTTP and gRPC), and deadlines once the worker is stopped (the last test of
this module)."""

from __future__ import annotations

import asyncio
import json
import ssl
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
import httpx
import psycopg
import pytest
import schemathesis
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, given, settings

from producers.gateway.security import hash_key
from schemas import topics
from schemas.codec import decode
from schemas.events import LabelFeedback, ModelPromoted
from tests.helpers.gateway_env import GatewayProcess, start_gateway
from tests.helpers.stream_env import StreamEnv, Worker, wait_until
from tests.helpers.tiny_serving import MODEL_NAME, copy_serving_folder
from tests.helpers.tls import self_signed
from tests.integration.conftest import delete_topics
from ulasan.core.grpc_gen import ulasan_pb2 as pb
from ulasan.core.grpc_gen import ulasan_pb2_grpc as pb_grpc
from ulasan.core.settings import Settings

ADMIN_KEY, APP_KEY = "it-admin-key", "it-app-key"


class Live:
    def __init__(
        self,
        env: StreamEnv,
        worker: Worker,
        open_gw: GatewayProcess,
        secure_gw: GatewayProcess,
        registered: str,
    ) -> None:
        self.env, self.worker, self.open, self.secure = env, worker, open_gw, secure_gw
        self.registered = registered


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    workdir = tmp_path_factory.mktemp("gateway")
    env = StreamEnv(Settings(), copy_serving_folder(workdir / "model"), workdir, partitions=3)
    env.create()
    registered = f"it-gw-{uuid.uuid4().hex[:8]}"
    gateways: list[GatewayProcess] = []
    try:
        # the closed loop is on: its feedback agent joins labels to stored predictions
        worker = env.start_worker("w1")
        env.wait_assigned(worker)
        common = {"ULASAN_MLFLOW__REGISTERED_MODEL": registered}
        gateways.append(start_gateway(env, "open", **common))
        keys = [
            {"name": "ops", "sha256": hash_key(ADMIN_KEY), "admin": True},
            {"name": "app", "sha256": hash_key(APP_KEY), "rate_per_s": 1, "burst": 3},
        ]
        gateways.append(
            start_gateway(
                env,
                "secure",
                ULASAN_GATEWAY__AUTH_REQUIRED="true",
                ULASAN_GATEWAY__ALLOW_PLAINTEXT_LOOPBACK="true",
                ULASAN_GATEWAY__API_KEYS=json.dumps(keys),
                ULASAN_GATEWAY__RATE_PER_S="1000",
                **common,
            )
        )
        gateways[0].wait_ready()
        yield Live(env, worker, gateways[0], gateways[1], registered)
    finally:
        for gw in gateways:
            gw.stop()
        env.destroy()
        delete_topics(env.bootstrap, [], prefix=env.prefix)


def test_http_round_trip(live: Live) -> None:
    url = live.open.url
    one = httpx.post(url + "/predict", json={"text": "Aplikasinya bagus sekali!"}, timeout=10)
    assert one.status_code == 200, one.text
    body = one.json()
    assert body["prediction"]["model_name"] == MODEL_NAME
    assert body["prediction"]["label"] in ("negative", "neutral", "positive")
    assert sum(body["prediction"]["probabilities"].values()) == pytest.approx(1.0, abs=1e-3)

    texts = ["bagus", "jelek sekali, tidak bisa login", "biasa saja", "mantap"]
    batch = httpx.post(url + "/predict/batch", json={"texts": texts}, timeout=10)
    assert batch.status_code == 200, batch.text
    assert [p["index"] for p in batch.json()["predictions"]] == [0, 1, 2, 3]

    stats = httpx.get(url + "/stats", timeout=5).json()
    assert stats["outcomes"]["ok"] >= 2 and stats["texts_scored"] >= 5
    assert sum(stats["labels"].values()) == stats["texts_scored"]
    assert stats["latency_ms"]["p50"] is not None

    info = httpx.get(url + "/model/info", timeout=10).json()
    assert info["serving"]["model_name"] == MODEL_NAME
    assert "has no" in info["registry"]["error"]  # nothing registered under this test's name

    fb = httpx.post(
        url + "/feedback", json={"request_id": body["request_id"], "label": "positive"}, timeout=10
    )
    assert fb.status_code == 200, fb.text
    events = [
        decode(v, LabelFeedback) for v in live.env.read_topic(live.env.topic(topics.FEEDBACK), 1)
    ]
    assert any(
        e.review_id == body["request_id"] and e.source == "human" and e.label == "positive"
        for e in events
    )
    metrics = httpx.get(url + "/metrics", timeout=5).text
    assert 'ulasan_api_requests_total{code="200",protocol="http",route="/predict"}' in metrics
    assert 'ulasan_api_replies_total{outcome="matched"}' in metrics


def test_grpc_round_trip(live: Live) -> None:
    async def main() -> dict[str, Any]:
        async with grpc.aio.insecure_channel(live.open.grpc_target) as channel:
            stub = pb_grpc.GatewayStub(channel)
            one = await stub.Predict(pb.PredictRequest(text="mantap jiwa", id="a"), timeout=10)
            batch = await stub.PredictBatch(pb.PredictBatchRequest(texts=["a", "b", "c"]))

            async def many() -> Any:
                for i in range(12):
                    yield pb.PredictRequest(text=f"ulasan ke-{i} bagus", id=str(i))

            streamed = [r async for r in stub.PredictStream(many(), timeout=20)]
            fb = await stub.Feedback(pb.FeedbackRequest(review_id="rev-9", label="negative"))
            info = await stub.ModelInfo(pb.ModelInfoRequest())
            health = await serving_status(channel, health_pb2.HealthCheckResponse.SERVING)
            return {
                "one": one,
                "batch": batch,
                "stream": streamed,
                "fb": fb,
                "info": info,
                "health": health,
            }

    r = asyncio.run(main())
    assert r["one"].id == "a" and r["one"].prediction.model_name == MODEL_NAME
    assert [p.index for p in r["batch"].predictions] == [0, 1, 2]
    assert sorted(int(x.id) for x in r["stream"]) == list(range(12))
    assert len({x.request_id for x in r["stream"]}) == 12
    assert r["fb"].review_id == "rev-9" and r["fb"].label == "negative"
    assert r["info"].model_name == MODEL_NAME and "has no" in r["info"].registry_error
    assert r["health"] == health_pb2.HealthCheckResponse.SERVING


async def serving_status(channel: grpc.aio.Channel, want: int, timeout_s: float = 30.0) -> int:
    """The health service's status for the gateway once it is ``want`` (it is re-checked every
    second in these tests), or the last one seen after ``timeout_s``."""
    stub = health_pb2_grpc.HealthStub(channel)
    status = -1
    for _ in range(int(timeout_s / 0.25)):
        answer = await stub.Check(health_pb2.HealthCheckRequest(service="ulasan.v1.Gateway"))
        status = answer.status
        if status == want:
            break
        await asyncio.sleep(0.25)
    return status


def actual_labels(live: Live, request_id: str, texts: int, timeout_s: float = 60.0) -> list[str]:
    """The ``actual_label`` of each stored prediction of ``request_id`` once all ``texts`` are
    stored and labelled (the request-logs agent stores them; the feedback agent joins)."""

    def joined() -> list[str] | None:
        with psycopg.connect(live.env.dsn) as conn:
            rows = conn.execute(
                "SELECT actual_label, review_id FROM prediction_logs WHERE request_id = %s "
                "ORDER BY event_id",
                (request_id,),
            ).fetchall()
        if len(rows) != texts or any(r[0] is None for r in rows):
            return None
        assert all(r[1] is None for r in rows)  # a request's prediction, not a review's
        return [str(r[0]) for r in rows]

    return wait_until(joined, timeout_s, f"feedback on {request_id} joined to its predictions")


def test_feedback_by_request_id_joins_the_stored_prediction(live: Live) -> None:
    url = live.open.url
    one = httpx.post(url + "/predict", json={"text": "Pengiriman lambat sekali"}, timeout=10)
    assert one.status_code == 200, one.text
    rid = one.json()["request_id"]
    fb = httpx.post(url + "/feedback", json={"request_id": rid, "label": "negative"}, timeout=10)
    assert fb.status_code == 200, fb.text
    assert actual_labels(live, rid, 1) == ["negative"]

    async def grpc_flow() -> str:
        async with grpc.aio.insecure_channel(live.open.grpc_target) as channel:
            stub = pb_grpc.GatewayStub(channel)
            batch = await stub.PredictBatch(pb.PredictBatchRequest(texts=["bagus", "mantap"]))
            await stub.Feedback(
                pb.FeedbackRequest(request_id=batch.request_id, label="positive"), timeout=10
            )
            return str(batch.request_id)

    batch_id = asyncio.run(grpc_flow())
    # a label given to a request applies to each of its texts
    assert actual_labels(live, batch_id, 2) == ["positive", "positive"]
    # a corrected label replaces the earlier one (the latest human label wins)
    again = httpx.post(url + "/feedback", json={"request_id": rid, "label": "neutral"}, timeout=10)
    assert again.status_code == 200, again.text
    wait_until(lambda: actual_labels(live, rid, 1) == ["neutral"], 60, "the corrected label joined")


def test_two_instances_get_only_their_own_replies(live: Live) -> None:
    def ask(i: int) -> tuple[str, int, str]:
        gw = live.open if i % 2 == 0 else live.secure
        headers = {"x-api-key": ADMIN_KEY}
        resp = httpx.post(
            gw.url + "/predict/batch",
            json={"texts": [f"teks {i} nomor {j}" for j in range(3)]},
            headers=headers,
            timeout=10,
        )
        return gw.url, resp.status_code, resp.text

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(ask, range(24)))
    assert all(code == 200 for _, code, _ in results), [r for r in results if r[1] != 200]
    for gw in (live.open, live.secure):
        stats = httpx.get(gw.url + "/stats", headers={"x-api-key": ADMIN_KEY}, timeout=5).json()
        assert stats["outcomes"].get("deadline", 0) == 0


def test_auth_and_rate_limit_on_a_live_gateway(live: Live) -> None:
    url = live.secure.url
    assert httpx.post(url + "/predict", json={"text": "x"}, timeout=5).status_code == 401
    assert httpx.get(url + "/health", timeout=5).status_code == 200
    # with auth on, /metrics and the docs are not open
    assert httpx.get(url + "/metrics", timeout=5).status_code == 401
    admin = {"x-api-key": ADMIN_KEY}
    assert httpx.get(url + "/metrics", headers=admin, timeout=5).status_code == 200
    assert httpx.get(url + "/openapi.json", headers=admin, timeout=5).status_code == 404
    codes = []
    for _ in range(6):
        resp = httpx.post(
            url + "/predict", json={"text": "bagus"}, headers={"x-api-key": APP_KEY}, timeout=10
        )
        codes.append(resp.status_code)
        if resp.status_code == 429:
            assert int(resp.headers["retry-after"]) >= 1
            break
    assert codes[0] == 200 and codes[-1] == 429, codes

    async def grpc_calls() -> list[grpc.StatusCode]:
        async with grpc.aio.insecure_channel(live.secure.grpc_target) as channel:
            stub = pb_grpc.GatewayStub(channel)
            out = []
            for md in ((), (("x-api-key", ADMIN_KEY),)):
                try:
                    await stub.Predict(pb.PredictRequest(text="bagus"), metadata=md, timeout=10)
                    out.append(grpc.StatusCode.OK)
                except grpc.aio.AioRpcError as exc:
                    out.append(exc.code())
            return out

    assert asyncio.run(grpc_calls()) == [grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.OK]


def _mlflow(settings: Settings, path: str, body: dict[str, Any], method: str = "POST") -> Any:
    resp = httpx.request(
        method, f"{settings.mlflow.uri}/api/2.0/mlflow/{path}", json=body, timeout=30
    )
    assert resp.status_code == 200, resp.text
    return resp.json()


def test_forced_reload_is_admin_only_audited_and_announced(live: Live) -> None:
    url, admin = live.secure.url, {"x-api-key": ADMIN_KEY}
    time.sleep(1.5)  # the app key's bucket (1/s) may be empty after the rate-limit test
    app_call = httpx.post(url + "/model/reload", headers={"x-api-key": APP_KEY}, timeout=10)
    assert app_call.status_code == 403
    missing = httpx.post(url + "/model/reload", headers=admin, timeout=10)
    assert missing.status_code == 503 and "has no" in missing.json()["error"]["message"]

    settings, name = live.env.settings, live.registered
    _mlflow(settings, "registered-models/create", {"name": name})
    try:
        version = _mlflow(
            settings,
            "model-versions/create",
            # a registry entry only: this test's worker serves a folder and ignores the update
            {"name": name, "source": "s3://ulasan-gateway-test/model"},
        )["model_version"]["version"]
        _mlflow(
            settings,
            "registered-models/alias",
            {"name": name, "alias": "champion", "version": version},
        )
        done = httpx.post(url + "/model/reload", headers=admin, timeout=10)
        assert done.status_code == 200, done.text
        assert done.json()["version"] == version and done.json()["alias"] == "champion"
        updates = [
            decode(v, ModelPromoted)
            for v in live.env.read_topic(live.env.topic(topics.MODEL_UPDATES), 1)
        ]
        assert any(u.model_name == name and u.version == version for u in updates)
        info = httpx.get(url + "/model/info", headers=admin, timeout=10).json()
        assert info["registry"]["version"] == version
    finally:
        _mlflow(settings, "registered-models/delete", {"name": name}, method="DELETE")
    audit = [json.loads(x) for x in live.secure.audit_path.read_text().splitlines()]
    assert [(a["principal"], a["outcome"]) for a in audit if a["action"] == "model.reload"] == [
        ("app", "refused"),
        ("ops", "refused"),
        ("ops", "announced"),
    ]
    # the failed authentications of the tests before are audited with the client address
    failed = [a for a in audit if a["action"] == "authenticate"]
    assert failed and all(a["client"] == "127.0.0.1" for a in failed)
    assert {a["protocol"] for a in failed} == {"http", "grpc"}


def test_schemathesis_finds_no_server_error(live: Live) -> None:

    base = live.open.url
    schema = schemathesis.openapi.from_url(base + "/openapi.json")
    checked = []
    for result in schema.get_all_operations():
        op = result.ok()
        if op.path == "/model/reload":
            continue  # its 503 depends on MLflow's state: covered by the test above

        @settings(
            max_examples=12,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=op.as_strategy())
        def check(case: Any) -> None:
            resp = case.call(base_url=base, timeout=10)
            assert resp.status_code < 500, (case.method, case.path, case.body, resp.text[:300])
            if resp.status_code == 422:
                assert resp.json()["error"]["code"] == "invalid_input"

        check()
        checked.append(f"{op.method.upper()} {op.path}")
    assert "POST /predict" in checked and "POST /feedback" in checked


def test_tls_for_http_and_grpc(live: Live) -> None:

    cert, key = self_signed(live.env.workdir / "tls")
    trust = ssl.create_default_context(cafile=str(cert))
    gw = start_gateway(
        live.env,
        "tls",
        ULASAN_GATEWAY__TLS_CERT=str(cert),
        ULASAN_GATEWAY__TLS_KEY=str(key),
        scheme="https",
        verify=trust,
    )
    try:
        url = f"https://127.0.0.1:{gw.http_port}"
        resp = httpx.post(url + "/predict", json={"text": "aman"}, verify=trust, timeout=10)
        assert resp.status_code == 200, resp.text
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"http://127.0.0.1:{gw.http_port}/health", timeout=5)

        async def calls() -> tuple[str, grpc.StatusCode]:
            creds = grpc.ssl_channel_credentials(root_certificates=cert.read_bytes())
            async with grpc.aio.secure_channel(gw.grpc_target, creds) as channel:
                ok = await pb_grpc.GatewayStub(channel).Predict(
                    pb.PredictRequest(text="aman juga"), timeout=10
                )
            async with grpc.aio.insecure_channel(gw.grpc_target) as channel:
                try:
                    await pb_grpc.GatewayStub(channel).Predict(
                        pb.PredictRequest(text="tanpa TLS"), timeout=5
                    )
                    plain = grpc.StatusCode.OK
                except grpc.aio.AioRpcError as exc:
                    plain = exc.code()
            return ok.prediction.model_name, plain

        model, plain = asyncio.run(calls())
        assert model == MODEL_NAME and plain == grpc.StatusCode.UNAVAILABLE
    finally:
        gw.stop()


def test_deadline_when_the_worker_is_stopped(live: Live) -> None:
    """The last test: the worker leaves; the gateway is not ready at once (no worker holds the
    request partitions, though a reply came a moment ago), gRPC health follows, and requests
    end in 504 / DEADLINE_EXCEEDED, never hang."""
    url = live.open.url
    ok = httpx.post(url + "/predict", json={"text": "masih ada?"}, timeout=10)
    assert ok.status_code == 200, ok.text  # a fresh reply: the old /ready took it as proof
    live.worker.stop()
    ready = httpx.get(url + "/ready", timeout=15)
    assert ready.status_code == 503, ready.text
    workers = ready.json()["checks"]["workers"]
    assert workers["ok"] is False and "no worker has joined" in workers["error"]

    async def health() -> int:
        async with grpc.aio.insecure_channel(live.open.grpc_target) as channel:
            return await serving_status(channel, health_pb2.HealthCheckResponse.NOT_SERVING)

    assert asyncio.run(health()) == health_pb2.HealthCheckResponse.NOT_SERVING

    resp = httpx.post(url + "/predict", json={"text": "halo?"}, timeout=15)
    assert resp.status_code == 504, resp.text
    assert (
        "deadline" in resp.json()["error"]["message"]
        and "ulasan worker" in resp.json()["error"]["message"]
    )

    async def grpc_call() -> tuple[grpc.StatusCode, str]:
        async with grpc.aio.insecure_channel(live.open.grpc_target) as channel:
            try:
                await pb_grpc.GatewayStub(channel).Predict(
                    pb.PredictRequest(text="halo?"), timeout=15
                )
            except grpc.aio.AioRpcError as exc:
                return exc.code(), exc.details() or ""
        return grpc.StatusCode.OK, ""

    code, details = asyncio.run(grpc_call())
    assert code == grpc.StatusCode.DEADLINE_EXCEEDED and "deadline" in details
    stats = httpx.get(url + "/stats", timeout=5).json()
    assert stats["outcomes"]["deadline"] >= 1
