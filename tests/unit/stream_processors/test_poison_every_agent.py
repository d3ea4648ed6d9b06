"""A poison record in each agent that had no batch guard (requests, request logs, shadow sink,
feedback, drift windows): it is dead-lettered (``processing_failed``) and the rest of its
batch is processed, where the body used to raise and the batch was acked and lost."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from typing import Any

import psycopg
import pytest

from schemas import topics
from schemas.codec import decode, encode
from schemas.events import DeadLetter, DriftReport, LabelFeedback, SentimentScored
from stream_processors.app import build
from stream_processors.inference.batching import PredictorHolder
from stream_processors.metrics import WorkerMetrics
from stream_processors.settings import WorkerConfig, WorkerSettings
from stream_processors.sink.rows import PREDICTION_COLUMNS, PREDICTION_LOGS, RowBatch
from stream_processors.wiring import Deps
from tests.helpers.tiny_serving import tiny_serving_folder
from tests.unit.stream_processors import test_agents, test_loop_agents
from tests.unit.stream_processors.test_agents import RecordingSink, take
from tests.unit.stream_processors.test_gateway_requests_agent import reply, request
from tests.unit.stream_processors.test_loop_agents import (
    T0,
    WINDOW_S,
    MemoryLoopStore,
    _tick,
    _window_observations,
    reference_texts,
)
from ulasan.core.inference import OnnxPredictor


@pytest.fixture(scope="module")
def predictor() -> OnnxPredictor:
    return OnnxPredictor.from_folder(
        tiny_serving_folder(), model_version="7", model_file="model_fp32.onnx"
    )


def letter(out: Any) -> DeadLetter:
    return decode(out.value, DeadLetter)


class NulRefusingStore(MemoryLoopStore):
    """Refuses a batch holding a NUL character the way PostgreSQL does (``DataError``)."""

    async def record_feedback(self, events: Sequence[LabelFeedback]) -> list[Any]:
        if any("\x00" in e.review_id for e in events):
            raise psycopg.errors.DataError("invalid byte sequence for encoding UTF8: 0x00")
        return await super().record_feedback(events)


def test_feedback_postgresql_refuses_is_dead_lettered_and_the_rest_stored(
    predictor: OnnxPredictor,
) -> None:
    store = NulRefusingStore({})
    app = test_loop_agents.make_app(predictor, store)

    def fb(i: int, rid: str) -> bytes:
        return encode(
            LabelFeedback(feedback_id=f"f-{i}", review_id=rid, label="positive", source="human")
        )

    async def scenario(agent: Any, subs: dict[str, Any]) -> None:
        for i in range(5):
            await agent.put(fb(i, f"r{i}"), key=b"r")
        await agent.put(fb(5, "r\x00nul"), key=b"nul")
        for i in range(6, 10):
            await agent.put(fb(i, f"r{i}"), key=b"r")
        (out,) = await take(subs[topics.dlq(topics.FEEDBACK)], 1)
        dead = letter(out)
        assert (dead.error_type, dead.stage) == ("processing_failed", "feedback")
        assert "DataError" in dead.reason and b"f-5" in dead.payload

    test_loop_agents.run(app, "feedback", scenario)
    assert sorted(e.feedback_id for e in store.feedback) == [f"f-{i}" for i in range(10) if i != 5]


def test_drift_windows_poison_is_dead_lettered_and_nothing_is_folded_twice(
    predictor: OnnxPredictor,
) -> None:
    app = test_loop_agents.make_app(predictor, MemoryLoopStore({}))
    # in memory the observations channel has no topic name (in a worker it is
    # drift.observations.v1, whose dead letters go to drift.observations.v1.dlq)
    dlq = app.outputs.channels[topics.dlq(topics.DRIFT_OBSERVATIONS)]
    app.outputs.channels["<internal>.dlq"] = dlq
    texts = [t for t, _ in reference_texts()][:120]
    values = _window_observations(texts)
    poison = json.dumps({"kind": "tick", "t": None}).encode()  # float(None): TypeError

    async def scenario(agent: Any, subs: dict[str, Any]) -> None:
        for value in values[:60]:
            await agent.put(value, key=b"drift")
        await agent.put(poison, key=b"drift")
        for value in values[60:]:
            await agent.put(value, key=b"drift")
        await agent.put(_tick(T0 + WINDOW_S + 2.0), key=b"drift")
        (out,) = await take(subs[topics.DRIFT_REPORTS], 1)
        # retried attempts start from a fresh buffer: every observation counted once
        assert decode(out.value, DriftReport).n_events == len(texts)
        (dead,) = await take(subs[topics.dlq(topics.DRIFT_OBSERVATIONS)], 1)
        assert letter(dead).error_type == "processing_failed"
        assert letter(dead).payload == poison

    test_loop_agents.run(app, "drift_windows", scenario)


class PoisonSink(RecordingSink):
    """Raises for a batch holding a row of ``poison`` (a bug or a driver error, not a refusal
    the sink could attribute to a row)."""

    def __init__(self, poison: str) -> None:
        super().__init__()
        self.poison = poison

    async def write(self, batch: RowBatch) -> set[int]:
        if any(self.poison in str(row) for row in batch.rows.get(PREDICTION_LOGS, [])):
            raise RuntimeError("the driver choked")
        return await super().write(batch)


def test_request_logs_poison_is_dead_lettered_and_the_rest_stored(
    predictor: OnnxPredictor,
) -> None:
    sink = PoisonSink("teks q-poison")
    app = test_agents.make_app(predictor, sink=sink)

    async def scenario(agent: Any, subs: dict[str, Any]) -> None:
        for rid in ("q1", "q-poison", "q2"):
            await agent.put(reply(rid), key=b"gw-test")
        (out,) = await take(subs[topics.dlq(topics.PREDICT_REPLIES)], 1)
        assert (letter(out).error_type, letter(out).stage) == ("processing_failed", "request_logs")

    test_agents.run(app, "request_logs", scenario)
    rows = [dict(zip(PREDICTION_COLUMNS, r, strict=True)) for r in sink.rows(PREDICTION_LOGS)]
    assert {r["request_id"] for r in rows} == {"q1", "q2"}


def test_shadow_sink_poison_is_dead_lettered_and_the_rest_stored(
    predictor: OnnxPredictor,
) -> None:
    sink = PoisonSink("poison-review")
    settings = WorkerSettings(worker=WorkerConfig(max_batch=8, max_wait_ms=5))
    deps = Deps(settings, WorkerMetrics(), PredictorHolder(predictor), sink)
    deps.shadow = PredictorHolder(None)  # type: ignore[arg-type]
    app = build(settings, deps, memory_outputs=True)
    scores = [reply(f"s{i}", review_id=f"rev-{i}", request_id=None) for i in range(3)]
    poison = reply("sp", review_id="poison-review", request_id=None)

    async def scenario(agent: Any, subs: dict[str, Any]) -> None:
        for value in (scores[0], poison, scores[1], scores[2]):
            await agent.put(value, key=b"k")
        (out,) = await take(subs[topics.dlq(topics.SENTIMENT_SHADOW)], 1)
        assert (letter(out).error_type, letter(out).stage) == ("processing_failed", "sink_shadow")

    test_agents.run(app, "sink_shadow", scenario)
    review_ids = {row[1] for row in sink.rows(PREDICTION_LOGS)}
    assert {"rev-0", "rev-1", "rev-2"} <= review_ids and "poison-review" not in review_ids


class FailingReplies:
    """The replies channel; the broker refuses the replies of one request after the producer
    queued them (the send returns, its delivery future fails later)."""

    def __init__(self, channel: Any, poison: bytes) -> None:
        self.channel, self.poison = channel, poison

    def __aiter__(self) -> Any:
        return self.channel.__aiter__()

    async def send(
        self, *, key: Any, value: bytes, partition: Any = None, headers: Any = None
    ) -> Any:
        if self.poison in value:
            refused: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            refused.set_exception(RuntimeError("MessageSizeTooLargeError"))
            return refused
        return await self.channel.send(key=key, value=value, partition=partition, headers=headers)


def test_requests_poison_is_dead_lettered_and_the_rest_answered(
    predictor: OnnxPredictor,
) -> None:
    app = test_agents.make_app(predictor)
    replies = app.outputs.channels[topics.PREDICT_REPLIES]
    app.outputs.channels[topics.PREDICT_REPLIES] = FailingReplies(replies, b'"q-poison"')  # type: ignore[assignment]

    async def scenario(agent: Any, subs: dict[str, Any]) -> None:
        for rid in ("q1", "q-poison", "q2"):
            await agent.put(request(rid, [f"teks {rid}"]), key=rid.encode())
        (out,) = await take(subs[topics.dlq(topics.PREDICT_REQUESTS)], 1)
        dead = letter(out)
        assert (dead.error_type, dead.stage) == ("processing_failed", "requests")
        assert "DeliveryFailed" in dead.reason and b"q-poison" in dead.payload
        answered: set[str | None] = set()
        while answered != {"q1", "q2"}:  # a retried batch may answer q1 more than once
            (r,) = await take(subs[topics.PREDICT_REPLIES], 1)
            answered.add(decode(r.value, SentimentScored).request_id)

    test_agents.run(app, "requests", scenario)
