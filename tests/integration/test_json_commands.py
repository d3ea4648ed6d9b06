"""Every ``--json`` command prints exactly one JSON document on stdout (``| jq`` works); its
progress and the libraries' chatter go to stderr. Small inputs, the tiny model, the real stack.

(``ulasan bench text --json`` and ``ulasan scenario domain-shift --json`` are covered in
tests/unit/ulasan/test_json_output.py.)
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.tiny_serving import copy_serving_folder
from ulasan.loadgen import DEFAULT_TOOLS_DIR, ghz_binary, oha_binary
from ulasan.procs import ULASAN_BIN, child_env


def _json_of(args: list[str], timeout_s: float = 300, env: dict[str, str] | None = None) -> Any:
    done = subprocess.run(
        [str(ULASAN_BIN), *args],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        env=child_env(env),
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(done.stdout)  # one document and nothing else, or this raises


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_serving_folder(tmp_path_factory.mktemp("json") / "model")


def test_trainer_runs_json() -> None:
    rows = _json_of(["trainer", "runs", "--limit", "3", "--json"])
    assert isinstance(rows, list) and len(rows) <= 3
    assert all({"run_id", "status", "reasons"} <= set(r) for r in rows)


def test_bench_engine_json(model: Path) -> None:
    args = ["bench", "engine", "--model", str(model), "--texts", "8", "--batch", "2"]
    result = _json_of([*args, "--threads", "1", "--json"])
    assert result["n_texts"] == 8 and result["runs"]


def test_bench_pipeline_json_with_a_profile(model: Path, tmp_path: Path) -> None:
    args = ["bench", "pipeline", "--model", str(model), "--events", "100", "--workers", "1"]
    args += ["--profile", str(tmp_path / "profile")]
    # the workers' batch sizes as the environment sets them; the engine baseline runs the same
    sizes = {"ULASAN_WORKER__MAX_BATCH": "16", "ULASAN_WORKER__INFERENCE_BATCH": "4"}
    result = _json_of([*args, "--threads", "1", "--json"], timeout_s=600, env=sizes)
    assert result["events"] == 100 and result["events_per_s"] > 0
    assert result["engine_batch"] in {16, 4}
    # py-spy recorded the worker; every sample is in exactly one stage
    profile = result["profile"]
    assert profile["samples"] > 0
    assert sum(s["samples"] for s in profile["stages"]) == profile["samples"]
    assert profile["files"] and all(Path(f).stat().st_size > 0 for f in profile["files"])
    # the engine baseline's every run, and where the CPU went while the reviews flowed
    assert len(result["engine_runs_texts_per_s"]) == 6  # 3 runs at each of the 2 sizes
    assert max(result["engine_runs_texts_per_s"]) == result["engine_texts_per_s"]
    cpu = result["cpu"]
    assert 0 < cpu["machine_busy_share"] <= 1 and cpu["processes_cpu_s"]["worker-0"] > 0


def test_bench_gateway_json(model: Path) -> None:
    args = ["bench", "gateway", "--model", str(model), "--duration", "1", "--concurrency", "1"]
    args += ["--client", "python", "--workers", "1", "--threads", "1", "--json"]
    result = _json_of(args, timeout_s=600)
    for proto in ("http", "grpc"):
        figures = result[proto]
        assert figures["rps"] > 0 and figures["load_generator"]["name"] == "ulasan-python"
        # the gateway's ring holds exactly the measured requests, every hop of each of them
        # (produce and worker_wait need the worker's reply header)
        hops = figures["hops"]
        assert {h["n"] for h in hops.values()} == {figures["requests"]}, hops
        assert all(h["p50_ms"] <= h["p99_ms"] for h in hops.values())
    # peak RSS of the live serving processes, read before they stopped; neither loaded torch
    assert set(result["cpu"]["processes_cpu_s"]) == {"worker-0", "gateway", "bench"}
    memory = result["memory"]
    assert set(memory) == {"worker-0", "gateway"}
    for name, proc in memory.items():
        assert proc["peak_rss_mib"] >= proc["rss_mib"] > 0, name
        assert proc["torch_loaded"] is False, f"{name} (pid {proc['pid']}) has libtorch mapped"


def test_bench_gateway_with_oha_and_ghz(model: Path) -> None:
    """The compiled load generators end to end, when they are already built (building them
    takes minutes: `ulasan bench gateway` does it on its first run)."""
    missing = [t.name for t in (oha_binary(), ghz_binary()) if not t.is_file()]
    if missing:
        pytest.skip(
            f"{' and '.join(missing)} not built in {DEFAULT_TOOLS_DIR}: run `ulasan bench "
            "gateway` once (it builds them with cargo and Go, minutes) to include this test"
        )
    args = ["bench", "gateway", "--model", str(model), "--duration", "2", "--concurrency", "2"]
    args += ["--rate", "20", "--client", "compiled", "--workers", "1", "--threads", "1"]
    result = _json_of([*args, "--json"], timeout_s=600)
    for proto, tool in (("http", "oha"), ("grpc", "ghz")):
        figures = result[proto]
        assert figures["load_generator"]["name"] == tool
        assert figures["offered_rps"] == 20.0 and figures["requests"] > 0
        assert figures["sent"] == figures["requests"] + figures["error_count"]
        assert figures["hops"]["total"]["n"] == figures["requests"], figures
        # the load generator is the bench's child: its CPU is counted apart from the gateway's
        cpu = figures["cpu"]
        assert cpu["children_cpu_s"] > 0 and cpu["processes_cpu_s"]["gateway"] > 0, cpu


def test_bench_burst_json(model: Path) -> None:
    args = ["bench", "burst", "--model", str(model), "--reviews", "1500", "--idle", "1"]
    result = _json_of([*args, "--nice", "0", "--threads", "1", "--json"], timeout_s=600)
    assert set(result["setups"]) == {"all", "lane"}
    for setup in result["setups"].values():
        assert setup["idle"]["requests"] > 0 and setup["burst"]["requests"] > 0
        assert setup["drain_reviews_per_s"] > 0
        # the gateway's hops of each phase's requests (the idle phase's warm-up included)
        for phase in ("idle", "burst"):
            hops = setup[phase]["hop_breakdown"]
            assert hops["requests"] >= setup[phase]["requests"] - setup[phase]["errors"]
            assert hops["hops"]["inference"]["n"] == hops["requests"] > 0
            assert hops["slowest"]["mean_ms"]["total"] >= hops["hops"]["total"]["p50_ms"]
