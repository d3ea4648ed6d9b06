"""The gateway's per-hop timings: the hops cut from a request's timestamps, the reply header
that carries the worker's consume time, the ring behind GET /debug/hops (order, wrap-around,
completeness), the histogram, and the HTTP middleware that records an answered /predict."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from producers.gateway.core import GatewayCore, Pending, Prediction
from producers.gateway.hops import (
    HOPS,
    HopRecorder,
    ReplyTrace,
    consumed_at,
    hop_ms,
    nearest_rank,
    summarize,
)
from producers.gateway.metrics import GatewayMetrics
from producers.gateway.server import Gateway
from producers.gateway.settings import GatewayConfig, GatewaySettings
from schemas.codec import encode
from schemas.events import REPLY_CONSUMED_AT_HEADER, SentimentScored, Timings

T0 = 1_800_000_000.0  # epoch seconds


def scored(
    end_s: float, inference_ms: float, request_id: str = "q", index: int = 0
) -> SentimentScored:
    return SentimentScored(
        event_id=f"e{index}",
        request_id=request_id,
        index=index,
        reply_to="gw-me",
        label="positive",
        confidence=0.9,
        probabilities={"negative": 0.05, "neutral": 0.05, "positive": 0.9},
        model_name="m",
        model_version="1",
        timings=Timings(queue_ms=1.0, inference_ms=inference_ms, total_ms=1.0 + inference_ms),
        scored_at=datetime.fromtimestamp(end_s, UTC),
    )


def test_hops_are_cut_from_the_timestamps_and_add_up_to_the_total() -> None:
    # in 0.000, sent 0.002, consumed 0.005, scoring 0.006-0.016, got 0.019, out 0.020
    trace = ReplyTrace(T0 + 0.002, T0 + 0.019, T0 + 0.005, scored(T0 + 0.016, 10.0))
    hops = hop_ms(T0, trace, T0 + 0.020)
    expected = {
        "parse_auth": 2.0,
        "produce": 3.0,
        "worker_wait": 1.0,
        "inference": 10.0,
        "reply": 3.0,
        "response_write": 1.0,
        "total": 20.0,
    }
    assert list(hops) == list(HOPS)
    for hop, ms in expected.items():
        assert hops[hop] == pytest.approx(ms, abs=1e-3), hop
    parts = sum(v for k, v in hops.items() if k != "total" and v is not None)
    assert parts == pytest.approx(hops["total"], abs=1e-3)


def test_without_the_workers_header_the_two_middle_hops_are_unknown() -> None:
    trace = ReplyTrace(T0 + 0.002, T0 + 0.019, None, scored(T0 + 0.016, 10.0))
    hops = hop_ms(T0, trace, T0 + 0.020)
    assert hops["produce"] is None and hops["worker_wait"] is None
    assert hops["inference"] == 10.0 and hops["total"] == pytest.approx(20.0)


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ([(REPLY_CONSUMED_AT_HEADER, b"1800000000005.250")], T0 + 0.00525),
        ([("other", b"1"), (REPLY_CONSUMED_AT_HEADER, b"1800000000000")], T0),
        ([], None),
        (None, None),
        ([(REPLY_CONSUMED_AT_HEADER, b"soon")], None),
        ([(REPLY_CONSUMED_AT_HEADER, b"\xff")], None),
        ([(REPLY_CONSUMED_AT_HEADER, b"nan")], None),
    ],
)
def test_the_consume_time_header(headers: Any, expected: float | None) -> None:
    got = consumed_at(headers)
    assert got == (pytest.approx(expected) if expected is not None else None)


def _recorder(capacity: int) -> tuple[HopRecorder, GatewayMetrics]:
    metrics = GatewayMetrics()
    return HopRecorder(metrics.hops, capacity), metrics


def _trace(total_ms: float) -> ReplyTrace:
    return ReplyTrace(T0 + 0.001, T0 + total_ms / 1000.0, T0 + 0.002, scored(T0 + 0.004, 1.0))


def test_the_ring_serves_records_after_a_sequence_number_in_order() -> None:
    hops, metrics = _recorder(10)
    for i in range(4):
        hops.record("http" if i % 2 == 0 else "grpc", T0, _trace(10 + i), T0 + (10 + i) / 1000.0)
    hops.record("http", T0, None, T0 + 1)  # an unanswered request: nothing to record
    got = hops.since(2)
    assert got["seq"] == 4 and got["complete"] is True
    assert [(r["seq"], r["protocol"]) for r in got["records"]] == [(3, "http"), (4, "grpc")]
    assert got["records"][1]["total"] == pytest.approx(13.0)
    count = {
        s.labels["protocol"]: s.value
        for m in metrics.hops.collect()
        for s in m.samples
        if s.name.endswith("_count") and s.labels["hop"] == "total"
    }
    assert count == {"http": 2.0, "grpc": 2.0}


def test_a_full_ring_drops_the_oldest_and_says_so() -> None:
    hops, _ = _recorder(3)
    for i in range(5):
        hops.record("http", T0, _trace(10 + i), T0 + (10 + i) / 1000.0)
    assert [r["seq"] for r in hops.since(0)["records"]] == [3, 4, 5]
    assert hops.since(0)["complete"] is False  # 1 and 2 are gone
    assert hops.since(2)["complete"] is True
    assert hops.since(5) == {"seq": 5, "capacity": 3, "complete": True, "records": []}


def test_a_ring_of_size_zero_keeps_only_the_histogram() -> None:
    hops, _ = _recorder(0)
    hops.record("http", T0, _trace(10), T0 + 0.01)
    assert hops.since(0)["records"] == [] and hops.since(0)["complete"] is False


def test_summaries_are_nearest_rank_per_protocol() -> None:
    assert nearest_rank([5.0, 1.0, 3.0], 50) == 3.0
    assert nearest_rank(list(map(float, range(1, 101))), 99) == 99.0
    assert nearest_rank([], 50) is None
    records = [
        {"protocol": "http", **{h: float(i) for h in HOPS}, "produce": None} for i in range(1, 101)
    ] + [{"protocol": "grpc", **{h: 1000.0 for h in HOPS}}]
    http = summarize(records, "http")
    assert http["total"] == {"n": 100, "p50_ms": 50.0, "p99_ms": 99.0}
    assert http["produce"] == {"n": 0, "p50_ms": None, "p99_ms": None}
    assert summarize(records, "grpc")["inference"]["p50_ms"] == 1000.0


def test_a_reply_with_the_header_completes_its_request_with_a_trace() -> None:
    async def main() -> None:
        core = GatewayCore(GatewaySettings(gateway=GatewayConfig(instance_id="gw-me")))
        future = asyncio.get_running_loop().create_future()
        core._pending["q"] = Pending(2, future, sent_at=T0)
        core.on_reply(encode(scored(T0 + 0.01, 2.0, "q", 1)), [], T0 + 0.02)
        assert core._pending["q"].last is None  # one of two texts
        header = [(REPLY_CONSUMED_AT_HEADER, b"1800000000003.000")]
        core.on_reply(encode(scored(T0 + 0.012, 2.0, "q", 0)), header, T0 + 0.03)
        await future
        last = core._pending["q"].last
        assert last is not None and last.scored.index == 0  # the reply that completed it
        assert (last.sent_at, last.got_at) == (T0, T0 + 0.03)
        assert last.consumed_at == pytest.approx(T0 + 0.003)

    asyncio.run(main())


def test_an_answered_http_prediction_is_recorded_with_its_hops(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gw = Gateway.build(
        GatewaySettings(
            state_dir=tmp_path, gateway=GatewayConfig(audit_log=tmp_path / "audit.jsonl")
        )
    )

    async def predict(texts: list[str], **_: Any) -> Prediction:
        # a reply 20 ms after the send: consumed 4 ms after it, scored until 3 ms before it
        sent = time.time()
        await asyncio.sleep(0.02)
        got = time.time()
        event = scored(got - 0.003, 1.0)
        return Prediction("r1", [event], 20.0, ReplyTrace(sent, got, sent + 0.004, event))

    monkeypatch.setattr(gw.core, "predict", predict)

    async def main() -> tuple[httpx.Response, httpx.Response, httpx.Response]:
        transport = httpx.ASGITransport(app=gw.http_app, client=("10.1.2.3", 5000))
        async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
            one = await client.post("/predict", json={"text": "bagus"})
            bad = await client.post("/predict", json={"text": ""})  # 422: never recorded
            return one, bad, await client.get("/debug/hops")

    one, bad, hops = asyncio.run(main())
    assert one.status_code == 200 and bad.status_code == 422
    records = hops.json()["records"]
    assert len(records) == 1 and records[0]["protocol"] == "http"
    row = records[0]
    assert all(row[h] is not None and row[h] >= 0.0 for h in HOPS), row
    assert row["produce"] == pytest.approx(4.0, abs=0.01)
    assert row["reply"] == pytest.approx(3.0, abs=0.01)
    assert row["inference"] == 1.0
    parts = sum(row[h] for h in HOPS if h != "total")
    assert parts == pytest.approx(row["total"], abs=0.01)
