"""The gateway's input rules (shared by HTTP and gRPC), its stats and reply matching."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from producers.gateway.core import GatewayCore, Pending, reply_partition
from producers.gateway.errors import InvalidInput
from producers.gateway.metrics import Stats, percentile
from producers.gateway.settings import GatewayConfig, GatewaySettings
from producers.gateway.validation import check_label, check_subject, check_text, check_texts
from schemas.codec import encode
from schemas.events import PredictionRequested, SentimentScored
from stream_processors.requests.agent import expired, reply_route, score_items


@pytest.mark.parametrize(
    ("value", "field", "words"),
    [
        ("", "text", "empty"),
        ("   \n", "text", "blank"),
        ("x" * 5001, "text", "5000"),
        (5, "text", "must be a string"),
        (None, "text", "must be a string"),
        ("a\ud800b", "text", "UTF-8"),
    ],
)
def test_bad_texts_name_the_field_and_the_limit(value: object, field: str, words: str) -> None:
    with pytest.raises(InvalidInput) as info:
        check_text(value)
    assert info.value.field == field
    assert words in str(info.value)


def test_good_texts_pass_unchanged() -> None:
    assert check_text("x" * 5000) == "x" * 5000
    assert check_text(" bagus ") == " bagus "
    assert check_texts(["a", "b"]) == ["a", "b"]


@pytest.mark.parametrize(
    ("values", "field", "words"),
    [
        ([], "texts", "empty"),
        (["a"] * 101, "texts", "limit of 100"),
        ("abc", "texts", "list of strings"),
        (["ok", ""], "texts[1]", "empty"),
        (["ok", "ok", 3], "texts[2]", "must be a string"),
    ],
)
def test_bad_batches_name_the_item(values: object, field: str, words: str) -> None:
    with pytest.raises(InvalidInput) as info:
        check_texts(values)
    assert info.value.field == field
    assert words in str(info.value)


def test_labels_and_subjects() -> None:
    assert check_label("neutral") == "neutral"
    with pytest.raises(InvalidInput, match="negative, neutral, positive"):
        check_label("meh")
    assert check_subject("r1", None) == ("review_id", "r1")
    assert check_subject(None, "q1") == ("request_id", "q1")
    for args in ((None, None), ("r", "q")):
        with pytest.raises(InvalidInput, match="exactly one"):
            check_subject(*args)


def test_percentiles_and_stats() -> None:
    assert percentile([], 50) is None
    values = [float(i) for i in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 99) == 99.0
    stats = Stats()
    stats.record("ok", 10.0, ["positive", "negative"])
    stats.record("ok", 30.0, ["positive"])
    stats.record("deadline", 0.0)
    snap = stats.snapshot()
    assert snap["requests"] == 3
    assert snap["outcomes"] == {"ok": 2, "deadline": 1}
    assert snap["texts_scored"] == 3
    assert snap["labels"] == {"positive": 2, "negative": 1}
    assert snap["latency_ms"]["p50"] == 10.0
    assert snap["latency_ms"]["max"] == 30.0


def test_reply_partition_is_stable_and_in_range() -> None:
    assert reply_partition("gw-a", 6) == reply_partition("gw-a", 6)
    assert {reply_partition(f"gw-{i}", 6) for i in range(60)} == set(range(6))


def scored(request_id: str, index: int, reply_to: str) -> SentimentScored:
    return SentimentScored(
        event_id=f"e{index}",
        request_id=request_id,
        index=index,
        reply_to=reply_to,
        label="positive",
        confidence=0.9,
        probabilities={"negative": 0.05, "neutral": 0.05, "positive": 0.9},
        model_name="m",
        model_version="3",
    )


def test_replies_complete_their_request_in_index_order() -> None:
    async def main() -> None:
        core = GatewayCore(GatewaySettings(gateway=GatewayConfig(instance_id="gw-me")))
        future = asyncio.get_running_loop().create_future()
        core._pending["q1"] = Pending(2, future)
        core.on_reply(encode(scored("q1", 1, "gw-me")))
        assert not future.done()
        core.on_reply(encode(scored("q1", 0, "gw-other")))  # another instance's reply
        core.on_reply(encode(scored("zz", 0, "gw-me")))  # late: nobody waits
        core.on_reply(b"\xff not json")
        assert not future.done()
        core.on_reply(encode(scored("q1", 0, "gw-me")))
        results = await future
        assert [r.index for r in results] == [0, 1]
        assert core.serving is not None and core.serving.model_version == "3"
        counts = {
            s.labels["outcome"]: s.value
            for m in core.metrics.replies.collect()
            for s in m.samples
            if s.name.endswith("_total")
        }
        assert counts == {"matched": 2.0, "foreign": 1.0, "late": 1.0, "undecodable": 1.0}

    asyncio.run(main())


def test_request_items_and_route() -> None:
    request = PredictionRequested(
        request_id="q9",
        texts=["satu", "dua"],
        reply_to="gw-x",
        reply_partition=4,
        deadline=datetime.now(UTC) + timedelta(seconds=2),
    )
    items = score_items(request, 123.0)
    assert [(i.text, i.index, i.request_id, i.reply_to) for i in items] == [
        ("satu", 0, "q9", "gw-x"),
        ("dua", 1, "q9", "gw-x"),
    ]
    assert reply_route(request) == (b"gw-x", 4)
    assert not expired(request)
    assert expired(request, datetime.now(UTC) + timedelta(seconds=3))
