"""``ulasan bench gateway``: the closed and open load loops (result shape, error counting, the
open loop's schedule and its honesty when the server cannot keep up), the engine figure and the
CLI's argument checks (no timing thresholds: timing belongs to the benchmark itself)."""

from __future__ import annotations

import asyncio
import random

import pytest
from typer.testing import CliRunner

from tests.helpers.tiny_serving import tiny_serving_folder
from ulasan.bench_gateway import SHORT_REVIEWS, _load, engine_batch1_ms, open_loop
from ulasan.cli import app
from ulasan.errors import BenchError


def test_load_reports_rps_percentiles_and_errors() -> None:
    seen: list[str] = []

    async def call(text: str) -> None:
        seen.append(text)
        if len(seen) % 5 == 0:
            raise TimeoutError("slow")
        await asyncio.sleep(0)

    result = asyncio.run(_load([call] * 3, duration_s=0.2))
    assert set(result) == {"mode", "requests", "errors", "rps", "p50_ms", "p95_ms", "p99_ms"}
    assert result["mode"] == "closed"
    assert result["requests"] + result["errors"]["TimeoutError"] == len(seen)
    assert result["p50_ms"] <= result["p95_ms"] <= result["p99_ms"]
    assert set(seen) <= set(SHORT_REVIEWS)


def test_open_loop_sends_on_schedule_whatever_is_in_flight() -> None:
    clients, rate, duration = 4, 80.0, 0.5
    period = clients / rate
    rng = random.Random(0)  # the loop's own seed: the same phases, so the same schedule
    expected = sum(
        sum(1 for n in range(100) if phase + n * period < duration)
        for phase in (rng.uniform(0.0, period) for _ in range(clients))
    )
    seen: list[str] = []
    failed = 0

    async def call(text: str) -> None:
        nonlocal failed
        seen.append(text)
        await asyncio.sleep(0.05)  # slower than the client's period: requests overlap
        if len(seen) % 7 == 0:
            failed += 1
            raise ConnectionError("refused")

    result = asyncio.run(open_loop([call] * clients, rate, duration))
    assert result["mode"] == "open"
    assert result["sent"] == expected == len(seen)
    assert result["requests"] + result["errors"]["ConnectionError"] == result["sent"]
    assert result["errors"]["ConnectionError"] == failed
    assert result["offered_rps"] == round(expected / duration, 1)
    assert result["p50_ms"] <= result["p95_ms"] <= result["p99_ms"]


def test_open_loop_shows_a_server_that_cannot_keep_up() -> None:
    server = asyncio.Lock()

    async def call(text: str) -> None:  # one request at a time, 20 ms each: 50 req/s at most
        async with server:
            await asyncio.sleep(0.02)

    result = asyncio.run(open_loop([call] * 2, rate=200.0, duration_s=0.3))
    # every request was answered, but later than offered: achieved < offered, and the queue
    # shows in the latency measured from the scheduled send time
    assert result["requests"] == result["sent"]
    assert result["rps"] < result["offered_rps"]
    assert result["p99_ms"] > result["p50_ms"]


def test_open_loop_refuses_a_rate_of_zero() -> None:
    async def call(text: str) -> None:
        return None

    with pytest.raises(BenchError, match="--rate must be > 0"):
        asyncio.run(open_loop([call], 0.0, 1.0))


def test_engine_batch1_is_measured_on_the_serving_folder() -> None:
    assert engine_batch1_ms(tiny_serving_folder(), threads=1, n=20) > 0


def test_cli_refuses_model_and_shape_together() -> None:
    result = CliRunner().invoke(
        app, ["bench", "gateway", "--model", "x", "--shape", "indobert-base"]
    )
    assert result.exit_code == 2
    assert "at most one of --model and --shape" in result.output
