"""The clean agent with the infer stage behind it (``worker.clean_and_score``, the default):
one consume per review on its way to a score, the same events and rows as the two hops.

Through faust's ``test_context()`` (in-memory, no Kafka), with a real ``OnnxPredictor`` over a
tiny serving folder; the Kafka path is covered by the integration and e2e tests, which run
workers with their defaults.
"""

from __future__ import annotations

import json
import shutil
from typing import Any

import pytest

from schemas import topics
from schemas.codec import decode
from schemas.events import (
    MAX_TEXT_CHARS,
    DeadLetter,
    ReviewCleaned,
    ReviewReceived,
    SentimentScored,
)
from stream_processors.cleaning.logic import clean
from stream_processors.inference.agent import score_item
from stream_processors.inference.batching import ScoreItem, _run
from stream_processors.records import Decoded, Record
from stream_processors.sink.rows import PREDICTION_LOGS, REVIEWS, TEXT_FEATURES
from tests.helpers.tiny_serving import tiny_serving_folder
from tests.unit.stream_processors.test_agents import RecordingSink, make_app, raw, run, take
from ulasan.core.inference import OnnxPredictor
from ulasan.core.inference.manifest import MANIFEST_FILE
from ulasan.core.text import clean as text_clean

TEXTS = [
    "Aplikasinya bagus sekali!",
    "Jelek, TIDAK bisa dibuka!!",
    "biasa aja sih, lumayan",
    "Pengiriman cepat, barang sesuai 👍",
    "kecewa berat, uang tidak kembali",
]


@pytest.fixture(scope="module")
def predictor() -> OnnxPredictor:
    # fp32: the two paths batch alike here, but int8 scales activations per batch
    return OnnxPredictor.from_folder(
        tiny_serving_folder(), model_version="7", model_file="model_fp32.onnx"
    )


def _scores(out: list[Any]) -> list[SentimentScored]:
    return [decode(e.value, SentimentScored) for e in out]


def _comparable(s: SentimentScored) -> tuple[Any, ...]:
    # everything but the timings and the time of scoring, which differ from run to run
    return (s.event_id, s.review_id, s.label, s.probabilities, s.model_version, s.text)


def test_clean_and_score_publishes_both_topics_and_matches_the_two_hops(
    predictor: OnnxPredictor,
) -> None:
    ids = [f"r{i}" for i in range(len(TEXTS))]
    fused_sink, two_sink = RecordingSink(), RecordingSink()
    fused = make_app(predictor, sink=fused_sink, clean_and_score=True)
    two_hops = make_app(predictor, sink=two_sink)
    assert "infer" not in fused.agents and "infer" in two_hops.agents
    got: dict[str, Any] = {}

    async def one_hop(agent: Any, subs: dict[str, Any]) -> None:
        for rid, text in zip(ids, TEXTS, strict=True):
            await agent.put(raw(rid, text=text, rating=3), key=rid.encode())
        await agent.put(b"{oops", key=b"bad")  # dead-lettered by the clean stage, not scored
        got["clean"] = await take(subs[topics.REVIEWS_CLEAN], len(ids))
        got["scores"] = _scores(await take(subs[topics.SENTIMENT], len(ids)))
        (letter,) = await take(subs[topics.dlq(topics.REVIEWS_RAW)], 1)
        assert decode(letter.value, DeadLetter).stage == "clean"
        assert subs[topics.SENTIMENT].empty() and subs[topics.REVIEWS_CLEAN].empty()

    run(fused, "clean", one_hop)

    # downstream consumers still get every cleaned review on reviews.clean.v1
    cleaned = [decode(e.value, ReviewCleaned) for e in got["clean"]]
    assert [c.review_id for c in cleaned] == ids
    assert [e.key for e in got["clean"]] == [rid.encode() for rid in ids]

    # the two hops: the same cleaned records through the infer agent
    async def second_hop(agent: Any, subs: dict[str, Any]) -> None:
        for record in got["clean"]:
            await agent.put(record.value, key=record.key)
        got["two_hops"] = _scores(await take(subs[topics.SENTIMENT], len(ids)))

    run(two_hops, "infer", second_hop)
    assert [_comparable(s) for s in got["scores"]] == [_comparable(s) for s in got["two_hops"]]
    for table in (REVIEWS, TEXT_FEATURES, PREDICTION_LOGS):
        assert len(fused_sink.rows(table)) == len(ids)
    assert [r[0] for r in fused_sink.rows(REVIEWS)] == [r[0] for r in two_sink.rows(REVIEWS)]
    assert fused_sink.rows(TEXT_FEATURES) == two_sink.rows(TEXT_FEATURES)
    # both stages count the reviews they handled
    events = fused.deps.metrics.events
    assert events.labels("clean")._value.get() == len(ids) + 1
    assert events.labels("infer")._value.get() == len(ids)


def test_clean_and_score_dead_letters_the_raw_record_of_a_refused_row(
    predictor: OnnxPredictor,
) -> None:
    sink = RecordingSink(refuse=frozenset({"bad-row"}))
    app = make_app(predictor, sink=sink, clean_and_score=True, max_batch=3)
    ids = ["r1", "bad-row", "r2", "r3"]

    async def scenario(agent: Any, subs: dict[str, Any]) -> None:
        for rid in ids:
            await agent.put(raw(rid), key=rid.encode())
        scored = _scores(await take(subs[topics.SENTIMENT], 3))
        (out,) = await take(subs[topics.dlq(topics.REVIEWS_RAW)], 1)
        letter = decode(out.value, DeadLetter)
        # the record kept is the one consumed: the raw review, which a replay cleans again
        assert (letter.error_type, letter.stage) == ("sink_rejected", "sink")
        assert letter.source_topic == topics.REVIEWS_RAW
        assert json.loads(letter.payload)["review_id"] == "bad-row"
        assert "cleaned_text" not in json.loads(letter.payload)
        assert [s.review_id for s in scored] == ["r1", "r2", "r3"]
        # the refused review was cleaned and published for downstream consumers all the same
        cleaned = await take(subs[topics.REVIEWS_CLEAN], len(ids))
        assert [decode(c.value, ReviewCleaned).review_id for c in cleaned] == ids

    run(app, "clean", scenario)
    assert [r[0] for r in sink.rows(REVIEWS)] == ["r1", "r2", "r3"]


def test_the_scorer_takes_the_cleaned_text_only_where_this_cleaning_made_it() -> None:
    """``score_item``: the clean stage's text where the feature version is this worker's and
    the text was not cut at MAX_TEXT_CHARS; otherwise None (the predictor cleans the raw)."""
    received = ReviewReceived(review_id="r1", source="test", text="Bagus BANGET!!")
    cleaned = clean(received)

    def item(event: ReviewCleaned) -> Any:
        return score_item(Decoded(Record(b"r1", b"", topics.REVIEWS_RAW, 0, 0, 1.0), event))

    assert item(cleaned).cleaned == cleaned.cleaned_text == text_clean(received.text)
    assert item(cleaned).text == received.text
    assert item(cleaned).source == "test"  # a model with domain tags reads it
    older = cleaned.model_copy(update={"feature_version": "0"})
    assert item(older).cleaned is None
    cut = cleaned.model_copy(update={"cleaned_text": "a" * MAX_TEXT_CHARS})
    assert item(cut).cleaned is None


@pytest.mark.parametrize("cleaned", [True, False])
def test_the_scorer_passes_each_review_source_to_a_model_with_domain_tags(
    cleaned: bool, tmp_path: Any
) -> None:
    """Both of the scorer's paths (the clean stage's text, or the raw one) tag a review from
    a source the model lists exactly as the trainer did (``[source] text``)."""
    folder = shutil.copytree(tiny_serving_folder(), tmp_path / "serving")
    manifest = json.loads((folder / MANIFEST_FILE).read_text())
    (folder / MANIFEST_FILE).write_text(json.dumps({**manifest, "domain_tags": ["shop"]}))
    tagged = OnnxPredictor.from_folder(folder)
    plain = OnnxPredictor.from_folder(tiny_serving_folder())
    sources = ["shop", "api", None, "shop", "shop"]
    items = [
        ScoreItem(text=t, arrived_at=0.0, cleaned=text_clean(t) if cleaned else None, source=s)
        for t, s in zip(TEXTS, sources, strict=True)
    ]
    predictions, counts = _run(tagged, items)
    as_trained = [f"[shop] {t}" if s == "shop" else t for t, s in zip(TEXTS, sources, strict=True)]
    expected = plain.predict(as_trained)
    assert [p.label for p in predictions] == [p.label for p in expected]
    for got, want in zip(predictions, expected, strict=True):
        assert got.probabilities == pytest.approx(want.probabilities, abs=1e-5)
    assert (counts is not None) == cleaned
