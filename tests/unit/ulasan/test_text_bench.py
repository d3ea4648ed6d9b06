"""`ulasan bench text`: runs end to end on a few texts and reports every run (no timing asserts)."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from ulasan.bench import app


def test_bench_text_json() -> None:
    result = CliRunner().invoke(app, ["text", "--n", "200", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["n_texts"] == 200
    assert [r["run"] for r in report["runs"]] == [
        "clean",
        "process, warm cache",
        "process, cold cache",
        "process, no stem cache",
    ]
    assert all(r["texts_per_s"] > 0 for r in report["runs"])
    assert report["token_cache"]["currsize"] > 0
    assert set(report["process_latency_us"]) == {"p50", "p99", "max"}


def test_bench_text_table() -> None:
    result = CliRunner().invoke(app, ["text", "--n", "100"])
    assert result.exit_code == 0, result.output
    assert "process, no stem cache" in result.output and "target" in result.output
