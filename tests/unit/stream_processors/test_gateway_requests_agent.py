"""The worker's predict-requests agents through faust's ``test_context()`` with a real predictor:
one reply per text (index, reply_to, key, partition), the shared scorer, deadlines, dead letters,
batches of what is ready (no window wait), and the request-logs agent that stores replies in
prediction_logs (so feedback by request_id has a prediction to join)."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from schemas import topics
from schemas.codec import decode, encode
from schemas.events import (
    REPLY_CONSUMED_AT_HEADER,
    DeadLetter,
    PredictionRequested,
    SentimentScored,
)
from stream_processors.inference.batching import event_id
from stream_processors.records import Record
from stream_processors.requests.agent import consumed_headers
from stream_processors.sink.rows import PREDICTION_COLUMNS, PREDICTION_LOGS
from tests.helpers.tiny_serving import MODEL_NAME, tiny_serving_folder
from tests.unit.stream_processors.test_agents import RecordingSink, make_app, run, take
from ulasan.core.inference import OnnxPredictor
from ulasan.core.inference.predictor import Prediction


@pytest.fixture(scope="module")
def predictor() -> OnnxPredictor:
    return OnnxPredictor.from_folder(
        tiny_serving_folder(), model_version="7", model_file="model_fp32.onnx"
    )


def request(rid: str, texts: list[str], *, partition: int | None = 2, ttl_s: float = 5) -> bytes:
    return encode(
        PredictionRequested(
            request_id=rid,
            texts=texts,
            reply_to="gw-test",
            reply_partition=partition,
            deadline=datetime.now(UTC) + timedelta(seconds=ttl_s),
        )
    )


def test_requests_are_answered_text_by_text(predictor: OnnxPredictor) -> None:
    app = make_app(predictor, max_batch=8)
    texts = ["aplikasi bagus sekali", "jelek, tidak bisa dibuka", "biasa saja"]
    bad = {
        b"\xff": "invalid_utf8",
        json.dumps(
            {"request_id": "q", "texts": [], "reply_to": "g", "deadline": "2030-01-01T00:00:00Z"}
        ).encode(): "empty_text",
        json.dumps(
            {"request_id": "q", "texts": [""], "reply_to": "g", "deadline": "2030-01-01T00:00:00Z"}
        ).encode(): "empty_text",
    }

    async def scenario(agent: Any, subs: dict[str, Any]) -> None:
        await agent.put(request("q1", texts), key=b"q1")
        await agent.put(request("q-late", ["terlambat"], ttl_s=-1), key=b"q-late")
        for payload in bad:
            await agent.put(payload, key=b"bad")
        await agent.put(request("q2", ["satu lagi"], partition=None), key=b"q2")
        replies = await take(subs[topics.PREDICT_REPLIES], len(texts) + 1)
        letters = await take(subs[topics.dlq(topics.PREDICT_REQUESTS)], len(bad))
        assert subs[topics.PREDICT_REPLIES].empty()  # the expired request got no reply

        events = [decode(r.value, SentimentScored) for r in replies]
        assert [(e.request_id, e.index) for e in events] == [
            ("q1", 0),
            ("q1", 1),
            ("q1", 2),
            ("q2", 0),
        ]
        assert {e.reply_to for e in events} == {"gw-test"}
        assert {r.key for r in replies} == {b"gw-test"}
        direct = predictor.predict([*texts, "satu lagi"])
        for e, p in zip(events, direct, strict=True):
            assert (e.model_name, e.model_version, e.label) == (MODEL_NAME, "7", p.label)
            assert e.confidence == pytest.approx(p.confidence, abs=1e-4)
            assert e.review_id is None
        reasons = sorted(decode(x.value, DeadLetter).error_type for x in letters)
        assert reasons == sorted(bad.values())
        assert {decode(x.value, DeadLetter).stage for x in letters} == {"requests"}

    run(app, "requests", scenario)
    errors = app.deps.metrics.stream_errors.labels("requests", "deadline_passed")
    assert errors._value.get() == 1


def test_requests_and_reviews_share_one_scorer(predictor: OnnxPredictor) -> None:
    app = make_app(predictor)
    deps = app.deps
    # one BatchScorer (one thread, one predictor holder) behind both agents
    assert deps.scorer.holder is deps.predictor
    assert set(app.agents) >= {"infer", "requests"}
    assert deps.topics.predict_requests in deps.topics.all()
    assert deps.topics.predict_replies in deps.topics.outputs()


class GatedPredictor:
    """The real predictor, recording each batch's size; the first batch waits for ``gate``."""

    def __init__(self, inner: OnnxPredictor) -> None:
        self.inner = inner
        self.model_name, self.model_version = inner.model_name, inner.model_version
        self.sizes: list[int] = []
        self.started, self.gate = threading.Event(), threading.Event()

    def predict(
        self, texts: Sequence[str], *, sources: Sequence[str | None] | None = None
    ) -> list[Prediction]:
        self.sizes.append(len(texts))
        self.started.set()
        if len(self.sizes) == 1 and not self.gate.wait(10):
            raise AssertionError("the test never opened the gate")
        return self.inner.predict(texts, sources=sources)


def test_a_lone_request_is_scored_alone_and_arrivals_meanwhile_form_the_next_batch(
    predictor: OnnxPredictor,
) -> None:
    gated = GatedPredictor(predictor)
    app = make_app(gated, max_batch=8)  # request_max_wait_ms 0: no batch window
    assert app.deps.settings.worker.request_max_wait_ms == 0

    async def scenario(agent: Any, subs: dict[str, Any]) -> None:
        await agent.put(request("first", ["pertama"]), key=b"first")
        # the first request is being scored (alone) before any other arrives
        assert await asyncio.to_thread(gated.started.wait, 10)
        for i in range(3):
            await agent.put(request(f"q{i}", [f"teks {i}"]), key=b"q")
        gated.gate.set()
        replies = [decode(r.value, SentimentScored) for r in await take(subs[REPLIES], 4)]
        assert [e.request_id for e in replies] == ["first", "q0", "q1", "q2"]

    run(app, "requests", scenario)
    assert gated.sizes == [1, 3]


def test_requests_batch_by_their_own_bound_not_the_review_batch(predictor: OnnxPredictor) -> None:
    gated = GatedPredictor(predictor)
    app = make_app(gated, max_batch=512, request_max_batch=2)

    async def scenario(agent: Any, subs: dict[str, Any]) -> None:
        await agent.put(request("first", ["pertama"]), key=b"first")
        assert await asyncio.to_thread(gated.started.wait, 10)

        async def five() -> None:  # a full buffer holds put() back until a batch is taken
            for i in range(5):
                await agent.put(request(f"q{i}", [f"teks {i}"]), key=b"q")

        putting = asyncio.create_task(five())
        await asyncio.sleep(0.5)  # let them queue up behind the gated first batch
        gated.gate.set()
        await putting
        assert len(await take(subs[REPLIES], 6)) == 6

    run(app, "requests", scenario)
    # five requests were ready at once: without its own bound the agent took them in one batch
    assert sum(gated.sizes) == 6 and max(gated.sizes) == 2, gated.sizes


REPLIES = topics.PREDICT_REPLIES


def reply(rid: str, index: int = 0, **extra: Any) -> bytes:
    scored = {
        "event_id": event_id(MODEL_NAME, "7", request_id=rid, index=index),
        "request_id": rid,
        "index": index,
        "reply_to": "gw-test",
        "label": "positive",
        "confidence": 0.9,
        "probabilities": {"negative": 0.05, "neutral": 0.05, "positive": 0.9},
        "model_name": MODEL_NAME,
        "model_version": "7",
        "text": f"teks {rid} {index}",
        **extra,
    }
    return encode(SentimentScored.model_validate(scored))


def test_request_logs_agent_stores_replies_and_dead_letters_the_rest(
    predictor: OnnxPredictor,
) -> None:
    refused = event_id(MODEL_NAME, "7", request_id="q-refused", index=0)
    sink = RecordingSink(refuse=frozenset({refused}))
    app = make_app(predictor, sink=sink)
    review_score = reply("x", review_id="rev-1", request_id=None)

    async def scenario(agent: Any, subs: dict[str, Any]) -> None:
        for payload in (reply("q1", 0), reply("q1", 1), reply("q-refused"), reply("q2")):
            await agent.put(payload, key=b"gw-test")
        await agent.put(b"not json", key=b"gw-test")
        await agent.put(review_score, key=b"gw-test")
        letters = await take(subs[topics.dlq(REPLIES)], 3)
        reasons = sorted(decode(x.value, DeadLetter).error_type for x in letters)
        assert reasons == ["invalid_json", "schema_violation", "sink_rejected"]
        assert {decode(x.value, DeadLetter).stage for x in letters} == {"request_logs"}

    run(app, "request_logs", scenario)
    rows = [dict(zip(PREDICTION_COLUMNS, r, strict=True)) for r in sink.rows(PREDICTION_LOGS)]
    assert [(r["request_id"], r["review_id"]) for r in rows] == [
        ("q1", None),
        ("q1", None),
        ("q2", None),
    ]
    assert [r["event_id"] for r in rows] == [
        event_id(MODEL_NAME, "7", request_id="q1", index=0),
        event_id(MODEL_NAME, "7", request_id="q1", index=1),
        event_id(MODEL_NAME, "7", request_id="q2", index=0),
    ]
    assert {r["input"] for r in rows} == {"teks q1 0", "teks q1 1", "teks q2 0"}


def test_each_reply_says_when_the_worker_received_its_request(predictor: OnnxPredictor) -> None:
    """The header the gateway's per-hop timings read (producers/gateway/hops.py): epoch ms,
    between the put and the reply, the same for every text of one request."""
    app = make_app(predictor, max_batch=8)

    async def scenario(agent: Any, subs: dict[str, Any]) -> None:
        before = time.time() * 1000.0
        await agent.put(request("q1", ["bagus sekali", "jelek"]), key=b"q1")
        replies = await take(subs[topics.PREDICT_REPLIES], 2)
        after = time.time() * 1000.0
        stamps = {float(dict(r.headers)[REPLY_CONSUMED_AT_HEADER].decode("ascii")) for r in replies}
        assert len(stamps) == 1
        assert before <= stamps.pop() <= after

    run(app, "requests", scenario)


def test_the_receive_time_is_fausts_monotonic_time_in_put_on_the_wall_clock() -> None:
    record = Record(key=None, value=b"{}", topic="t", partition=0, offset=0, time_in=100.0)
    [(name, value)] = consumed_headers(record, wall_offset=1_800_000_000.0, now=0.0)
    assert name == REPLY_CONSUMED_AT_HEADER
    assert float(value.decode("ascii")) == 1_800_000_100_000.0
