"""The compiled load generators: their command lines (open and closed loop), the reports of
real oha and ghz runs parsed into the bench's figures (fixtures captured from
``ulasan bench gateway`` runs), the cache, and the errors when a toolchain is missing or a
build fails. Nothing here builds or runs oha or ghz."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from ulasan import loadgen
from ulasan.errors import BenchError, LoadGenMissing
from ulasan.loadgen import (
    GHZ_VERSION,
    OHA_VERSION,
    ensure_ghz,
    ensure_oha,
    ghz_binary,
    ghz_command,
    oha_binary,
    oha_command,
    parse_ghz,
    parse_oha,
)

DATA = Path(__file__).parent / "data"


def _after(args: list[str], flag: str) -> str:
    return args[args.index(flag) + 1]


def test_oha_open_loop_is_a_fixed_rate_with_latency_correction() -> None:
    args = oha_command(
        Path("/t/oha"),
        "http://h/predict",
        Path("/b.jsonl"),
        duration_s=30,
        concurrency=10,
        rate=100,
    )
    assert args[0] == "/t/oha" and args[-1] == "http://h/predict"
    assert _after(args, "-q") == "100" and "--latency-correction" in args
    assert _after(args, "-z") == "30s" and _after(args, "-c") == "10"
    assert _after(args, "--output-format") == "json" and "--no-tui" in args
    assert "-w" in args  # requests in flight at the end are waited for, not dropped
    assert _after(args, "-m") == "POST" and _after(args, "-Z") == "/b.jsonl"


def test_oha_closed_loop_has_no_rate() -> None:
    args = oha_command(Path("oha"), "u", Path("b"), duration_s=5, concurrency=2, rate=None)
    assert "-q" not in args and "--latency-correction" not in args


def test_ghz_open_loop_sends_at_the_rate_without_waiting() -> None:
    messages = [{"text": "a"}, {"text": "b"}]
    args = ghz_command(
        Path("/t/ghz"), "127.0.0.1:5", Path("/p/ulasan.proto"), messages,
        duration_s=20, concurrency=10, rate=100.0,
    )  # fmt: skip
    assert args[0] == "/t/ghz" and args[-1] == "127.0.0.1:5"
    assert _after(args, "--rps") == "100" and "--async" in args
    assert _after(args, "--call") == "ulasan.v1.Gateway.Predict"
    assert _after(args, "--proto") == "/p/ulasan.proto"
    assert _after(args, "--import-paths") == "/p"
    assert json.loads(_after(args, "-d")) == messages
    assert _after(args, "--duration-stop") == "wait" and _after(args, "--format") == "json"
    assert "--insecure" in args


def test_ghz_closed_loop_has_no_rate() -> None:
    args = ghz_command(
        Path("g"), "t", Path("p.proto"), [{"text": "a"}], duration_s=1, concurrency=1, rate=None
    )
    assert "--rps" not in args and "--async" not in args


def test_a_cached_tool_is_used_without_building(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for binary in (oha_binary(tmp_path), ghz_binary(tmp_path)):
        binary.parent.mkdir(parents=True)
        binary.write_text("#!/bin/sh\n")

    def no_build(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("nothing should be built")

    monkeypatch.setattr(subprocess, "run", no_build)
    assert ensure_oha(tmp_path).describe() == {"name": "oha", "version": OHA_VERSION}
    assert ensure_ghz(tmp_path).binary == ghz_binary(tmp_path)


def test_a_missing_toolchain_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(loadgen, "find_cargo", lambda: None)
    monkeypatch.setattr(loadgen, "find_go", lambda: None)
    with pytest.raises(LoadGenMissing, match="cargo.*--client python"):
        ensure_oha(tmp_path)
    with pytest.raises(LoadGenMissing, match=f"ghz {GHZ_VERSION}.*Go.*--client python"):
        ensure_ghz(tmp_path)


def test_a_failed_build_says_so_with_its_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a "cargo" that fails like a build does: the error carries the log's tail
    fake = tmp_path / "cargo"
    fake.write_text("#!/bin/sh\necho 'error: could not compile oha' >&2\nexit 101\n")
    fake.chmod(0o755)
    monkeypatch.setattr(loadgen, "find_cargo", lambda: str(fake))
    with pytest.raises(BenchError, match="(?s)exit 101.*could not compile oha"):
        ensure_oha(tmp_path / "tools")
    assert not oha_binary(tmp_path / "tools").exists()


def _report(name: str) -> dict[str, Any]:
    return dict(json.loads((DATA / name).read_text()))


def test_a_real_ghz_report_becomes_the_bench_figures() -> None:
    # ghz v0.121.0, 3 s at 20 calls/s, --async, 4 workers, tiny model (all OK)
    report = _report("ghz-report.json")
    got = parse_ghz(report, rate=20.0, duration_s=3.0)
    assert got["mode"] == "open" and got["offered_rps"] == 20.0
    assert got["requests"] == report["count"] == 59 and got["errors"] == {}
    assert got["sent"] == 59 and got["error_count"] == 0
    assert got["achieved_rps"] == got["rps"] == round(59 / (report["total"] / 1e9), 1)
    by_pct = {d["percentage"]: d["latency"] / 1e6 for d in report["latencyDistribution"]}
    assert (got["p50_ms"], got["p95_ms"], got["p99_ms"]) == tuple(
        round(by_pct[q], 2) for q in (50, 95, 99)
    )


def test_a_real_oha_report_becomes_the_bench_figures() -> None:
    # oha 1.16.0, 3 s at 20 req/s with latency correction, 4 connections, tiny model
    report = _report("oha-report.json")
    got = parse_oha(report, rate=20.0, duration_s=3.0)
    assert got["mode"] == "open" and got["offered_rps"] == 20.0
    assert got["requests"] == 60 and got["errors"] == {} and got["sent"] == 60
    assert got["achieved_rps"] == round(60 / report["summary"]["total"], 1)
    pct = report["latencyPercentiles"]
    assert got["p50_ms"] == round(pct["p50"] * 1000, 2)
    assert got["p99_ms"] == round(pct["p99"] * 1000, 2)


def test_oha_statuses_other_than_200_and_client_errors_are_errors() -> None:
    refused = parse_oha(_report("oha-422.json"), rate=10.0, duration_s=2.0)  # an empty text
    assert refused["requests"] == 0 and refused["errors"] == {"HTTP 422": 20}
    assert refused["achieved_rps"] == 0.0 and refused["sent"] == 20
    timed_out = parse_oha(_report("oha-timeout.json"), rate=10.0, duration_s=2.0)  # -t 2ms
    assert timed_out["errors"] == {"timeout": 20} and timed_out["requests"] == 0
    assert timed_out["p50_ms"] == timed_out["p99_ms"] == 0.0  # no answer, no latency


def test_ghz_statuses_other_than_ok_are_errors() -> None:
    got = parse_ghz(_report("ghz-timeout.json"), rate=10.0, duration_s=2.0)  # -t 2ms
    assert got["requests"] == 0 and got["errors"] == {"DeadlineExceeded": 19}
    assert got["error_count"] == got["sent"] == 19 and got["p99_ms"] == 0.0
