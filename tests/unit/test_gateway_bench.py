"""``ulasan bench gateway``: the load loop's result shape, error counting, the engine figure and
the CLI's argument checks (no timing asserts: timing belongs to the benchmark itself)."""

from __future__ import annotations

import asyncio

from typer.testing import CliRunner

from tests.helpers.tiny_serving import tiny_serving_folder
from ulasan.bench_gateway import SHORT_REVIEWS, _load, engine_batch1_ms
from ulasan.cli import app


def test_load_reports_rps_percentiles_and_errors() -> None:
    seen: list[str] = []

    async def call(text: str) -> None:
        seen.append(text)
        if len(seen) % 5 == 0:
            raise TimeoutError("slow")
        await asyncio.sleep(0)

    result = asyncio.run(_load(call, concurrency=3, duration_s=0.2))
    assert set(result) == {"requests", "errors", "rps", "p50_ms", "p95_ms", "p99_ms"}
    assert result["requests"] + result["errors"]["TimeoutError"] == len(seen)
    assert result["p50_ms"] <= result["p95_ms"] <= result["p99_ms"]
    assert set(seen) <= set(SHORT_REVIEWS)


def test_engine_batch1_is_measured_on_the_serving_folder() -> None:
    assert engine_batch1_ms(tiny_serving_folder(), threads=1, n=20) > 0


def test_cli_refuses_model_and_shape_together() -> None:
    result = CliRunner().invoke(
        app, ["bench", "gateway", "--model", "x", "--shape", "indobert-base"]
    )
    assert result.exit_code == 2
    assert "at most one of --model and --shape" in result.output
