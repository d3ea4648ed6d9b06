"""The clean, infer and sink agents through faust's ``test_context()`` (in-memory, no Kafka).

The infer agent scores with a real ``OnnxPredictor`` over a tiny serving folder.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from schemas import topics
from schemas.codec import decode, encode
from schemas.events import (
    MAX_TEXT_CHARS,
    DeadLetter,
    ReviewCleaned,
    ReviewReceived,
    SentimentScored,
)
from stream_processors.app import WorkerApp, build
from stream_processors.cleaning.logic import clean
from stream_processors.inference.batching import PredictorHolder, event_id
from stream_processors.metrics import WorkerMetrics
from stream_processors.settings import WorkerConfig, WorkerSettings
from stream_processors.sink.rows import PREDICTION_LOGS, REVIEWS, TEXT_FEATURES, RowBatch
from stream_processors.wiring import Deps
from tests.helpers.tiny_serving import MODEL_NAME, tiny_serving_folder
from ulasan.core.inference import OnnxPredictor

WAIT_S = 10.0
FP32 = "model_fp32.onnx"


class RecordingSink:
    """Keeps written batches in memory; refuses the review ids in ``refuse`` like PostgreSQL
    refuses a row that breaks a constraint (the real sink is tested on PostgreSQL)."""

    def __init__(self, refuse: frozenset[str] = frozenset()) -> None:
        self.batches: list[RowBatch] = []
        self.refuse = refuse

    async def write(self, batch: RowBatch) -> set[int]:
        bad = {
            src
            for table, rows in batch.rows.items()
            for row, src in zip(rows, batch.sources[table], strict=True)
            if row[0] in self.refuse or (table == PREDICTION_LOGS and row[1] in self.refuse)
        }
        self.batches.append(batch.without(bad))
        return bad

    def rows(self, table: str) -> list[tuple[Any, ...]]:
        return [r for b in self.batches for r in b.rows.get(table, [])]


@pytest.fixture(scope="module")
def predictor() -> OnnxPredictor:
    # the fp32 graph: int8 dynamic quantisation scales activations per batch, so its scores
    # depend (slightly) on the batch composition, which these tests compare across
    return OnnxPredictor.from_folder(tiny_serving_folder(), model_version="7", model_file=FP32)


def make_app(predictor: Any, sink: Any = None, **worker: Any) -> WorkerApp:
    """A worker app over ``predictor``; ``max_batch`` bounds both agents' micro-batches (the
    infer agent's and, unless ``request_max_batch`` is given, the requests agent's). The infer
    agent reads reviews.clean.v1 unless ``clean_and_score=True`` is given (the default of a
    real worker: the clean agent scores its batches, see test_clean_and_score.py)."""
    worker = {"max_batch": 8, "max_wait_ms": 5, "clean_and_score": False, **worker}
    worker.setdefault("request_max_batch", worker["max_batch"])
    settings = WorkerSettings(worker=WorkerConfig(**worker))
    deps = Deps(settings, WorkerMetrics(), PredictorHolder(predictor), sink or RecordingSink())
    return build(settings, deps, memory_outputs=True)


def raw(review_id: str, text: Any = "Aplikasinya bagus sekali!", **extra: Any) -> bytes:
    return json.dumps({"review_id": review_id, "source": "test", "text": text, **extra}).encode()


def run(
    app: WorkerApp, agent: str, scenario: Callable[[Any, dict[str, Any]], Awaitable[None]]
) -> None:
    async def main() -> None:
        subs = {name: ch.__aiter__() for name, ch in app.outputs.channels.items()}
        async with app.agents[agent].test_context() as running:
            await scenario(running, subs)

    asyncio.run(main())


async def take(sub: Any, n: int) -> list[Any]:
    out = []
    for _ in range(n):
        try:
            out.append(await asyncio.wait_for(sub.get(), WAIT_S))
        except TimeoutError:
            raise AssertionError(f"expected {n} records, got {len(out)} within {WAIT_S}s") from None
    return out


def test_clean_agent_cleans_and_dead_letters(predictor: OnnxPredictor) -> None:
    app = make_app(predictor)
    bad_inputs = {
        b"\xff\xfe": "invalid_utf8",
        b"{oops": "invalid_json",
        raw("e", text=""): "empty_text",
        raw("l", text="x" * (MAX_TEXT_CHARS + 1)): "text_too_long",
        raw("w", text=123): "wrong_type",
        raw("s", rating=0): "schema_violation",
    }

    async def scenario(agent: Any, subs: dict[str, Any]) -> None:
        await agent.put(raw("r1", rating=5), key=b"r1")
        for payload in bad_inputs:
            await agent.put(payload, key=b"bad")
        await agent.put(raw("r2", text="Jelek, TIDAK bisa dibuka!!"), key=b"r2")
        good = await take(subs[topics.REVIEWS_CLEAN], 2)
        letters = await take(subs[topics.dlq(topics.REVIEWS_RAW)], len(bad_inputs))
        assert subs[topics.REVIEWS_CLEAN].empty()

        events = [decode(e.value, ReviewCleaned) for e in good]
        assert [e.review_id for e in events] == ["r1", "r2"]
        assert [e.key for e in good] == [b"r1", b"r2"]
        expected = clean(decode(raw("r1", rating=5), ReviewReceived))
        assert events[0].cleaned_text == expected.cleaned_text
        assert events[0].features == expected.features
        assert events[0].rating == 5
        assert events[1].features.exclamation_marks == 2

        dead = [decode(e.value, DeadLetter) for e in letters]
        assert {d.payload: d.error_type for d in dead} == bad_inputs
        assert all(d.source_topic == topics.REVIEWS_RAW and d.stage == "clean" for d in dead)
        assert [d.offset for d in dead] == list(range(1, 1 + len(bad_inputs)))

    run(app, "clean", scenario)
    metrics = app.deps.metrics
    assert metrics.dlq.labels(topics.REVIEWS_RAW, "invalid_json")._value.get() == 1
    assert metrics.stream_errors.labels("clean", "empty_text")._value.get() == 1


def cleaned_bytes(review_id: str, text: str = "Pengirimannya cepat, barang bagus") -> bytes:
    return encode(clean(decode(raw(review_id, text=text), ReviewReceived)))


def test_infer_agent_scores_in_batches(predictor: OnnxPredictor) -> None:
    app = make_app(predictor, max_batch=8)
    n = 20
    texts = [f"ulasan nomor {i} " + "bagus " * (i % 7) for i in range(n)]

    async def scenario(agent: Any, subs: dict[str, Any]) -> None:
        for i, text in enumerate(texts):
            await agent.put(cleaned_bytes(f"r{i}", text), key=f"r{i}".encode())
        await agent.put(b'{"review_id": "x"}', key=b"x")
        out = await take(subs[topics.SENTIMENT], n)
        dead = await take(subs[topics.dlq(topics.REVIEWS_CLEAN)], 1)

        scored = [decode(e.value, SentimentScored) for e in out]
        assert [s.review_id for s in scored] == [f"r{i}" for i in range(n)]
        assert [e.key for e in out] == [f"r{i}".encode() for i in range(n)]
        direct = predictor.predict(texts)
        for s, p, text in zip(scored, direct, texts, strict=True):
            assert (s.model_name, s.model_version) == (MODEL_NAME, "7")
            assert s.event_id == event_id(MODEL_NAME, "7", review_id=s.review_id)
            assert s.label == p.label
            assert s.confidence == pytest.approx(p.confidence, abs=1e-4)
            assert s.text == text
            assert s.timings.total_ms >= s.timings.inference_ms > 0
        letter = decode(dead[0].value, DeadLetter)
        assert (letter.error_type, letter.stage) == ("missing_field", "infer")

    run(app, "infer", scenario)
    metrics = app.deps.metrics
    sizes = metrics.inference_batch_size.collect()[0].samples
    count = next(s.value for s in sizes if s.name.endswith("_count"))
    total = next(s.value for s in sizes if s.name.endswith("_sum"))
    assert total == n and count >= n / 8  # no batch exceeded max_batch
    by_label = sum(
        metrics.predictions.labels(label, "7")._value.get()
        for label in ("negative", "neutral", "positive")
    )
    assert by_label == n


def test_predictor_swap_applies_from_the_next_batch(predictor: OnnxPredictor) -> None:
    app = make_app(predictor, max_batch=4)
    second = OnnxPredictor.from_folder(tiny_serving_folder(), model_version="8", model_file=FP32)

    async def scenario(agent: Any, subs: dict[str, Any]) -> None:
        for i in range(4):
            await agent.put(cleaned_bytes(f"a{i}"), key=b"a")
        first = await take(subs[topics.SENTIMENT], 4)
        old = app.deps.predictor.swap(second)
        assert old is predictor
        for i in range(4):
            await agent.put(cleaned_bytes(f"b{i}"), key=b"b")
        later = await take(subs[topics.SENTIMENT], 4)
        assert {decode(e.value, SentimentScored).model_version for e in first} == {"7"}
        versions = {decode(e.value, SentimentScored).model_version for e in later}
        assert versions == {"8"}
        ids = {decode(e.value, SentimentScored).event_id for e in later}
        assert event_id(MODEL_NAME, "8", review_id="b0") in ids

    run(app, "infer", scenario)


def test_event_ids_are_deterministic_and_distinct() -> None:
    a = event_id("m", "1", review_id="r1")
    assert a == event_id("m", "1", review_id="r1")
    assert len({a, event_id("m", "2", review_id="r1"), event_id("m", "1", review_id="r2")}) == 3
    assert event_id("m", "1", request_id="r1") != a
    assert event_id("m", "1", request_id="q", index=0) != event_id(
        "m", "1", request_id="q", index=1
    )
    with pytest.raises(ValueError, match="exactly one"):
        event_id("m", "1")


def test_infer_agent_stores_each_batch_before_publishing_and_dead_letters_refusals(
    predictor: OnnxPredictor,
) -> None:
    sink = RecordingSink(refuse=frozenset({"bad-row"}))
    app = make_app(predictor, sink=sink, max_batch=3)
    ids = ["r1", "r2", "bad-row", "r3"]

    async def scenario(agent: Any, subs: dict[str, Any]) -> None:
        for rid in ids:
            await agent.put(cleaned_bytes(rid), key=rid.encode())
        await agent.put(cleaned_bytes("r1"), key=b"r1")  # a replay: the same rows again
        await agent.put(b"not json", key=b"x")
        out = await take(subs[topics.SENTIMENT], 4)
        letters = await take(subs[topics.dlq(topics.REVIEWS_CLEAN)], 2)
        reasons = sorted(decode(e.value, DeadLetter).error_type for e in letters)
        assert reasons == ["invalid_json", "sink_rejected"]
        scored = [decode(e.value, SentimentScored) for e in out]
        # the refused review is dead-lettered, not published; the replay is scored again
        assert [s.review_id for s in scored] == ["r1", "r2", "r3", "r1"]
        assert scored[0].event_id == scored[3].event_id  # PostgreSQL drops the replayed row
        assert subs[topics.SENTIMENT].empty()

    run(app, "infer", scenario)
    assert [r[0] for r in sink.rows(REVIEWS)] == ["r1", "r2", "r3", "r1"]
    assert [r[0] for r in sink.rows(TEXT_FEATURES)] == ["r1", "r2", "r3", "r1"]
    assert [r[1] for r in sink.rows(PREDICTION_LOGS)] == ["r1", "r2", "r3", "r1"]
    # one write (one transaction) per batch: reviews, features and scores of the same records
    for batch in sink.batches:
        reviews = [r[0] for r in batch.rows.get(REVIEWS, [])]
        assert reviews == [r[1] for r in batch.rows.get(PREDICTION_LOGS, [])]
        assert len(reviews) <= 3


class FlakySink(RecordingSink):
    """Fails its first write with an error the sink does not classify (a bug, a driver crash)."""

    def __init__(self) -> None:
        super().__init__()
        self.failed = False

    async def write(self, batch: RowBatch) -> set[int]:
        if not self.failed:
            self.failed = True
            raise RuntimeError("driver crashed")
        return await super().write(batch)


def test_infer_agent_retries_a_batch_whose_write_raised_instead_of_acking_it(
    predictor: OnnxPredictor,
) -> None:
    sink = FlakySink()
    app = make_app(predictor, sink=sink, max_batch=4)

    async def scenario(agent: Any, subs: dict[str, Any]) -> None:
        for rid in ("a", "b"):
            await agent.put(cleaned_bytes(rid), key=rid.encode())
        out = await take(subs[topics.SENTIMENT], 2)
        assert sorted(decode(e.value, SentimentScored).review_id for e in out) == ["a", "b"]
        assert subs[topics.dlq(topics.REVIEWS_CLEAN)].empty()

    run(app, "infer", scenario)
    assert sink.failed and sorted(r[0] for r in sink.rows(REVIEWS)) == ["a", "b"]
    errors = app.deps.metrics.stream_errors.labels("infer", "RuntimeError")
    assert errors._value.get() == 1
