"""One worker serves both flows at once: reviews stream from reviews.raw.v1 into PostgreSQL
while the gateway's HTTP and gRPC requests are answered through predict.requests.v1 by the same
worker and model; ad-hoc texts never become review rows (their predictions are stored with their
request id), and a human label given through the gateway arrives on feedback.v1 for that
review."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import httpx
import psycopg
import pytest

from schemas import topics
from schemas.codec import decode
from schemas.events import LabelFeedback
from tests.helpers.gateway_env import GatewayProcess, start_gateway
from tests.helpers.stream_env import BackgroundProducer, StreamEnv, wait_until
from tests.helpers.tiny_serving import copy_serving_folder
from tests.integration.conftest import delete_topics
from ulasan.core.grpc_gen import ulasan_pb2 as pb
from ulasan.core.grpc_gen import ulasan_pb2_grpc as pb_grpc
from ulasan.core.settings import Settings

REVIEWS = 300


@pytest.fixture
def env(tmp_path: Path) -> Iterator[StreamEnv]:
    env = StreamEnv(Settings(), copy_serving_folder(tmp_path / "model"), tmp_path, partitions=3)
    try:
        env.create()
    except Exception as exc:
        raise AssertionError(
            f"the local stack is not usable ({exc}); run `ulasan stack up`"
        ) from exc
    try:
        yield env
    finally:
        env.destroy()
        delete_topics(env.bootstrap, [], prefix=env.prefix)


def test_reviews_and_gateway_requests_share_one_worker(env: StreamEnv) -> None:
    # the gateway starts first: until a worker holds predict.requests it is not ready
    gw: GatewayProcess = start_gateway(env, "e2e")
    try:
        early = httpx.get(gw.url + "/ready", timeout=15)
        assert early.status_code == 503, early.text
        assert "no worker has joined" in early.json()["checks"]["workers"]["error"]
        worker = env.start_worker("w1", ULASAN_DRIFT__ENABLED="false")
        env.wait_assigned(worker)
        gw.wait_ready()
        with BackgroundProducer(env, 0, REVIEWS, seconds=4):

            def http_call(i: int) -> tuple[str, int]:
                resp = httpx.post(
                    gw.url + "/predict/batch",
                    json={"texts": [f"permintaan {i} bagus", f"permintaan {i} jelek"]},
                    timeout=15,
                )
                assert resp.status_code == 200, resp.text
                return resp.json()["request_id"], len(resp.json()["predictions"])

            with ThreadPoolExecutor(4) as pool:
                batches = list(pool.map(http_call, range(20)))
            answered = sum(n for _, n in batches)

            async def grpc_calls() -> list[str]:
                async with grpc.aio.insecure_channel(gw.grpc_target) as channel:
                    stub = pb_grpc.GatewayStub(channel)

                    async def many():  # type: ignore[no-untyped-def]
                        for i in range(20):
                            yield pb.PredictRequest(text=f"stream {i} mantap", id=str(i))

                    return [r.request_id async for r in stub.PredictStream(many(), timeout=30)]

            stream_ids = asyncio.run(grpc_calls())
            streamed = len(stream_ids)
        assert answered == 40 and streamed == 20

        env.wait_rows(REVIEWS, timeout_s=120)
        request_ids = [rid for rid, _ in batches] + stream_ids

        def stored() -> tuple[int, int] | None:
            with psycopg.connect(env.dsn) as conn:
                row = conn.execute(
                    "SELECT count(*), count(DISTINCT request_id) FROM prediction_logs "
                    "WHERE request_id = ANY(%s) AND review_id IS NULL",
                    (request_ids,),
                ).fetchone()
            assert row is not None
            return (row[0], row[1]) if row[0] >= answered + streamed else None

        # every answered text's prediction is stored under its request id (the /ready probe's
        # own request is stored too, so the test counts only the requests it made)
        assert wait_until(stored, 60, "the gateway's predictions in prediction_logs") == (60, 40)
        with psycopg.connect(env.dsn) as conn:
            row = conn.execute("SELECT count(review_id) FROM prediction_logs").fetchone()
        assert row == (REVIEWS,)
        assert env.count("reviews") == env.count("text_features") == REVIEWS
        # each streamed review once in every table (the requests' rows have no review id),
        # committed to the log end, once on sentiment.v1 (ad-hoc texts never go there)
        env.assert_drained(env.review_ids(0, REVIEWS), max_sentiment_duplicates=0)

        fb = httpx.post(
            gw.url + "/feedback", json={"review_id": "rev-000007", "label": "negative"}, timeout=10
        )
        assert fb.status_code == 200, fb.text
        labels = [decode(v, LabelFeedback) for v in env.read_topic(env.topic(topics.FEEDBACK), 1)]
        assert any(f.review_id == "rev-000007" and f.source == "human" for f in labels)

        stats = httpx.get(gw.url + "/stats", timeout=5).json()
        assert stats["outcomes"]["ok"] == 20 + 20 and stats["texts_scored"] == 60
        metrics = env.metrics(worker)
        assert 'ulasan_stream_events_total{stage="requests"}' in metrics
        assert 'ulasan_stream_events_total{stage="infer"}' in metrics
    finally:
        gw.stop()
