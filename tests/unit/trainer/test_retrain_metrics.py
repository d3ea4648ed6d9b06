"""The trainer consumer's metrics: what each handled request adds, read back from the
exposition Prometheus scrapes."""

from __future__ import annotations

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from trainer.retrain.metrics import RetrainMetrics
from trainer.retrain.store import RunRecord


def record(status: str, seconds: float | None = None, **scores: object) -> RunRecord:
    r = RunRecord("run", "req", "key", ["drift"], status, started_at=1000.0, scores=dict(scores))
    r.finished_at = None if seconds is None else 1000.0 + seconds
    return r


def scraped(metrics: RetrainMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the exposition text, by name and labels."""
    text = generate_latest(metrics.registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_runs_count_by_outcome_with_their_seconds() -> None:
    m = RetrainMetrics()
    for status, seconds in (("done", 400.0), ("failed", 20.0), ("failed", 50.0), ("stale", 1.0)):
        m.run_started(record("running"))
        m.observe(record(status, seconds))
    got = scraped(m)
    assert got[("ulasan_retrain_runs_started_total", ())] == 4
    assert got[("ulasan_retrain_runs_finished_total", (("outcome", "failed"),))] == 2
    assert got[("ulasan_retrain_runs_finished_total", (("outcome", "done"),))] == 1
    assert got[("ulasan_retrain_runs_finished_total", (("outcome", "stale"),))] == 1
    assert got[("ulasan_retrain_run_seconds_sum", (("outcome", "failed"),))] == 70.0
    assert got[("ulasan_retrain_run_seconds_bucket", (("le", "30.0"), ("outcome", "failed")))] == 1
    assert got[("ulasan_retrain_run_seconds_count", (("outcome", "done"),))] == 1
    # no gate ran: its decision is not made up
    assert not [k for k in got if k[0].startswith("ulasan_retrain_last_gate_decision")]
    assert got[("ulasan_retrain_last_gate_timestamp_seconds", ())] == 0


def test_requests_that_start_no_run_are_counted_apart() -> None:
    m = RetrainMetrics()
    m.observe(record("duplicate"))
    m.observe(record("busy"))
    m.observe(record("busy"))
    m.undecodable()
    got = scraped(m)
    assert got[("ulasan_retrain_requests_skipped_total", (("reason", "busy"),))] == 2
    assert got[("ulasan_retrain_requests_skipped_total", (("reason", "duplicate"),))] == 1
    assert got[("ulasan_retrain_requests_skipped_total", (("reason", "undecodable"),))] == 1
    assert got[("ulasan_retrain_runs_finished_total", (("outcome", "done"),))] == 0
    assert not any(k[0].startswith("ulasan_retrain_run_seconds_count") for k in got)


def test_the_last_gate_decision_and_its_scores() -> None:
    m = RetrainMetrics()
    promoted = {
        "candidate": {"accuracy": 0.8, "macro_f1": 0.71},
        "champion": {"accuracy": 0.7, "macro_f1": 0.64},
        "promoted": True,
    }
    m.observe(record("done", 300.0, gate=promoted))
    got = scraped(m)
    assert got[("ulasan_retrain_last_gate_decision", (("decision", "promoted"),))] == 1
    assert got[("ulasan_retrain_last_gate_decision", (("decision", "refused"),))] == 0
    assert got[("ulasan_retrain_last_gate_macro_f1", (("model", "candidate"),))] == 0.71
    assert got[("ulasan_retrain_last_gate_macro_f1", (("model", "champion"),))] == 0.64
    assert got[("ulasan_retrain_last_gate_timestamp_seconds", ())] > 0
    refused = {"candidate": {"macro_f1": 0.5}, "champion": None, "promoted": False}
    m.observe(record("done", 300.0, gate=refused))
    got = scraped(m)
    assert got[("ulasan_retrain_last_gate_decision", (("decision", "promoted"),))] == 0
    assert got[("ulasan_retrain_last_gate_decision", (("decision", "refused"),))] == 1
    assert got[("ulasan_retrain_last_gate_macro_f1", (("model", "candidate"),))] == 0.5


def test_each_instance_has_its_own_registry_with_the_process_metrics() -> None:
    a, b = RetrainMetrics(), RetrainMetrics()
    a.run_started(record("running"))
    assert scraped(b)[("ulasan_retrain_runs_started_total", ())] == 0
    assert any(name.startswith("process_") for name, _ in scraped(a))
