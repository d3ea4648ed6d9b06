"""``ulasan run`` starts a requests lane beside the review workers (and the gateway checks the
lane's group); ``--once`` keeps one lane for everything. ``ulasan bench burst``'s figures."""

from __future__ import annotations

from pathlib import Path

import pytest

from producers.gateway.hops import HOPS
from stream_processors.settings import WorkerSettings
from ulasan.bench_burst import (
    Sample,
    hop_breakdown,
    oha_phase_summary,
    phase_summary,
    setups,
    verdict,
)
from ulasan.core.settings import Settings
from ulasan.main_job import REVIEWS_NICE, RunOptions, _add_workers
from ulasan.run_services import Ports, ServiceSpec
from ulasan.supervisor import Supervisor


def lane_of(args: list[str]) -> str | None:
    return args[args.index("--lane") + 1] if "--lane" in args else None


def test_run_starts_a_requests_lane_beside_the_review_workers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ULASAN_STATE_DIR", str(tmp_path))
    supervisor = Supervisor(say=lambda _: None)
    options = RunOptions(workers=2, app_id="grp", topic_prefix="t1.")
    group, ports = _add_workers(options, Settings(), "run1", "models:/m@champion", supervisor)
    procs = [e.service for e in supervisor.entries]
    assert [lane_of(p.args) for p in procs] == ["reviews", "reviews", "requests"]
    assert group.workers == procs and len(set(ports)) == len(ports) == 3
    assert all(e.restart and e.essential for e in supervisor.entries)
    lane = procs[-1]
    assert lane.args[lane.args.index("--metrics-port") + 1] == str(ports[-1])
    assert lane.env["ULASAN_WORKER__INTRA_OP_THREADS"] == "1"
    assert lane.env["ULASAN_WORKER__TOPIC_PREFIX"] == "t1."
    assert "ULASAN_WORKER__NICE" not in lane.env
    assert procs[0].env["ULASAN_WORKER__NICE"] == str(REVIEWS_NICE)
    # the review workers' environment and options build valid settings
    for key, value in procs[0].env.items():
        if key.startswith("ULASAN_WORKER__"):
            monkeypatch.setenv(key, value)
    assert WorkerSettings().worker.nice == REVIEWS_NICE


def test_run_once_has_no_gateway_and_one_lane_for_everything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ULASAN_STATE_DIR", str(tmp_path))
    supervisor = Supervisor(say=lambda _: None)
    options = RunOptions(workers=1, once=True)
    group, ports = _add_workers(options, Settings(), "run1", "models:/m@champion", supervisor)
    assert [lane_of(w.args) for w in group.workers] == [None] and len(ports) == 1
    assert "ULASAN_WORKER__NICE" not in group.workers[0].env


def test_the_gateway_checks_the_group_that_scores_its_requests(tmp_path: Path) -> None:
    spec = ServiceSpec(tmp_path, "r", "", "grp", Ports(1, 2, None), requests_group="grp-requests")
    assert spec.gateway_env()["ULASAN_GATEWAY__WORKER_GROUP"] == "grp-requests"
    assert spec.trainer().env["ULASAN_RETRAIN__GROUP_ID"] == "grp-trainer"
    plain = ServiceSpec(tmp_path, "r", "", "grp", Ports(1, 2, None))
    assert plain.gateway_env()["ULASAN_GATEWAY__WORKER_GROUP"] == "grp"


def test_burst_figures_count_failures_and_judge_the_target() -> None:
    assert [s.name for s in setups(10)] == ["all", "lane", "lane_nice"]
    assert [s.name for s in setups(0)] == ["all", "lane"]
    idle = phase_summary([Sample(0.0, float(ms), True, 1.0) for ms in range(1, 101)], [0.5] * 10)
    assert (idle["requests"], idle["errors"], idle["p50_ms"], idle["p99_ms"]) == (100, 0, 50, 99)
    assert idle["worker_queue_p99_ms"] == 1.0 and idle["client_loop_lag_p99_ms"] == 0.5
    fast = phase_summary([Sample(0.0, float(ms), True) for ms in range(1, 101)], [])
    assert verdict(idle, fast) == {"burst_p99_over_idle_p99": 1.0, "target_met": True}
    slow = phase_summary([Sample(0.0, 3.0 * ms, True) for ms in range(1, 101)], [])
    assert verdict(idle, slow)["target_met"] is False
    # a failed request (a 504 after the deadline) fails the target, however fast the rest
    failed = phase_summary(
        [*(Sample(0.0, 1.0, True) for _ in range(99)), Sample(0.0, 2000.0, False)], []
    )
    assert failed["errors"] == 1 and failed["max_ms"] == 1.0
    assert verdict(idle, failed)["target_met"] is False


def test_the_hop_breakdown_shows_where_the_slowest_requests_waited() -> None:
    def record(total: float, produce: float, proto: str = "http") -> dict[str, object]:
        rest = (total - produce) / 4
        return {
            "protocol": proto,
            "parse_auth": rest,
            "produce": produce,
            "worker_wait": rest,
            "inference": rest,
            "reply": rest,
            "response_write": 0.0,
            "total": total,
        }

    # 197 requests of 10 ms; 3 of 90 ms spent 82 ms in the produce hop; the slowest 1 %: 2
    records = [record(10.0, 2.0) for _ in range(197)] + [record(90.0, 82.0)] * 3
    records.append(record(500.0, 1.0, proto="grpc"))  # another protocol: left out
    out = hop_breakdown(records)
    assert out["requests"] == 200 and out["total_p99_ms"] == 90.0
    assert out["hops"]["produce"]["p50_ms"] == 2.0
    assert out["slowest"]["requests"] == 2
    assert out["slowest"]["mean_ms"]["produce"] == 82.0
    assert out["slowest"]["mean_ms"]["total"] == 90.0
    empty = hop_breakdown([])["slowest"]
    assert empty == {"requests": 0, "mean_ms": dict.fromkeys(HOPS)}


def test_an_oha_report_becomes_a_phase_in_the_python_clients_keys() -> None:
    report = {
        "summary": {"total": 10.0, "slowest": 0.25},
        "latencyPercentiles": {"p50": 0.01, "p95": 0.02, "p99": 0.03},
        "statusCodeDistribution": {"200": 198, "504": 1},
        "errorDistribution": {"connection closed": 1},
    }
    phase = oha_phase_summary(report, 20.0, 10.0)
    assert phase == {
        "load_generator": "oha",
        "requests": 200,
        "errors": 2,
        "p50_ms": 10.0,
        "p99_ms": 30.0,
        "max_ms": 250.0,
        "achieved_rps": 19.8,
    }
    assert verdict(phase, phase)["target_met"] is False  # errors fail the target
