"""The worker's predict-requests agent through faust's ``test_context()`` with a real predictor:
one reply per text (index, reply_to, key, partition), the shared scorer, deadlines, dead letters."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from schemas import topics
from schemas.codec import decode, encode
from schemas.events import DeadLetter, PredictionRequested, SentimentScored
from stream_processors.inference import OnnxPredictor
from tests.helpers.tiny_serving import MODEL_NAME, tiny_serving_folder
from tests.unit.test_agents import make_app, run, take


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
    errors = app.ulasan_deps.metrics.stream_errors.labels("requests", "deadline_passed")
    assert errors._value.get() == 1


def test_requests_and_reviews_share_one_scorer(predictor: OnnxPredictor) -> None:
    app = make_app(predictor)
    deps = app.ulasan_deps
    # one BatchScorer (one thread, one predictor holder) behind both agents
    assert deps.scorer.holder is deps.predictor
    assert set(app.ulasan_agents) >= {"infer", "requests"}
    assert deps.topics.predict_requests in deps.topics.all()
    assert deps.topics.predict_replies in deps.topics.outputs()
