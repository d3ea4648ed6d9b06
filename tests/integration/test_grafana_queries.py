"""Every dashboard query and alert expression runs on the stack's Prometheus over a real worker."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
from typing import Any

import httpx

from deploy.local import prometheus
from schemas import topics
from tests.helpers import grafana
from tests.helpers.stream_env import StreamEnv, wait_until
from tests.integration.conftest import TopicFactory
from tests.integration.stream_fixtures import stream_env_fixture  # noqa: F401 - fixture
from ulasan.core import scrape
from ulasan.core.settings import Settings

#: scrape the test's worker every second (file_sd target labels override the job's 15 s)
FAST_SCRAPE = {"__scrape_interval__": "1s", "__scrape_timeout__": "1s"}
BATCH = 40
BAD = 3
#: model & drift panels that must show data once reviews were scored (drift, feedback,
#: reloads and shadow scoring need hours of traffic, feedback or a promotion: parsed only)
MODEL_CORE = {
    "Model versions in service",
    "Label share",
    "Confidence distribution",
    "Confidence quantiles and low-confidence share",
}


def api(settings: Settings, path: str, **params: Any) -> Any:
    """``/api/v1/<path>``; fails with Prometheus' own error message when the status is not 200."""
    response = httpx.get(f"{settings.prometheus.url}/api/v1/{path}", params=params, timeout=10)
    body = response.json()
    assert response.status_code == 200 and body["status"] == "success", (params, body)
    return body["data"]


def instant(settings: Settings, expr: str) -> list[dict[str, Any]]:
    data = api(settings, "query", query=expr)
    result = data["result"]
    # scalars come back as [time, value]; dashboards only use vectors
    assert data["resultType"] == "vector", (expr, data["resultType"])
    return list(result)


def values(result: list[dict[str, Any]]) -> list[float]:
    return [float(r["value"][1]) for r in result]


def test_pipeline_alert_rules_pass_their_promtool_unit_tests() -> None:
    binary = shutil.which("promtool")
    assert binary, "promtool is missing: it comes with the Debian package prometheus"
    tests = sorted((prometheus.CONFIG_DIR / "tests").glob("*.test.yml"))
    assert tests
    done = subprocess.run(
        [binary, "test", "rules", *map(str, tests)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_dashboard_query_runs_over_a_scraped_worker(
    settings: Settings, kafka_topics: TopicFactory, stream_env: StreamEnv
) -> None:
    # kafka_topics first: it is torn down last, after stream_env deleted its own topics
    env = stream_env
    kafka_topics.delete_later(env.prefix)  # the drift/feedback topics the worker creates
    kafka_topics.delete_later(env.app_id)  # faust's changelogs
    folder = scrape.targets_dir(settings)
    worker = env.start_worker("w1", ULASAN_PROMETHEUS__TARGETS_DIR=str(folder))
    name = f"worker-{env.app_id}-{worker.metrics_port}"
    try:
        # the worker registers itself like any worker would; the test only shortens the interval
        target = folder / f"{name}.json"
        wait_until(target.exists, 60, "the worker's scrape target file")
        (entry,) = json.loads(target.read_text())
        assert entry["targets"] == [f"127.0.0.1:{worker.metrics_port}"]
        labels = {k: v for k, v in entry["labels"].items() if k != "process"}
        assert labels == {"role": "worker"}
        scrape.register_target(settings, name, worker.metrics_port, labels=labels | FAST_SCRAPE)
        env.wait_assigned(worker)

        def scraped(expr: str, at_least: float) -> bool:
            return sum(values(instant(settings, expr))) >= at_least

        predicted = f'sum(ulasan_predictions_total{{process="{name}"}})'
        # two batches, so that the rates see the counters grow between scrapes
        env.produce_reviews(0, BATCH)
        env.produce([(b"bad-%d" % i, b"{not json") for i in range(BAD)])
        wait_until(lambda: scraped(predicted, BATCH), 60, "the first batch in Prometheus")
        env.produce_reviews(BATCH, 2 * BATCH)
        wait_until(lambda: scraped(predicted, 2 * BATCH), 60, "the second batch in Prometheus")
        wait_until(
            lambda: scraped(
                f'sum(ulasan_sink_rows_total{{process="{name}", table="prediction_logs"}})',
                2 * BATCH,
            ),
            30,
            "the sink's rows in Prometheus",
        )

        # the variable lists this worker
        for dashboard in grafana.load_dashboards().values():
            for var, query in grafana.variables(dashboard).items():
                selector, label = grafana.label_values(query)
                found = api(settings, f"label/{label}/values", **{"match[]": selector})
                if 'role="worker"' in selector:
                    assert name in found, (dashboard["title"], var, found)

        subs = {"process": name, **grafana.BUILTIN_VARIABLES}
        results: dict[tuple[str, str], list[dict[str, Any]]] = {}
        failures = []
        for dashboard in grafana.load_dashboards().values():
            for q in grafana.queries(dashboard):
                expr = grafana.substitute(q.expr, subs)
                try:
                    results.setdefault((q.dashboard, q.panel), []).extend(instant(settings, expr))
                except AssertionError as exc:
                    failures.append(f"{q.where()}: {exc}")
        for alert, expr in grafana.rule_exprs().items():
            try:
                instant(settings, expr)
            except AssertionError as exc:
                failures.append(f"alert {alert}: {exc}")
        assert not failures, "queries Prometheus refused:\n" + "\n".join(failures)

        pipeline = {p for d, p in results if d == "ulasan — pipeline"}
        core = {
            (d, p)
            for d, p in results
            if (d == "ulasan — pipeline" and not p.startswith("annotation")) or p in MODEL_CORE
        }
        assert len(pipeline) >= 15 and {p for _, p in core} >= MODEL_CORE
        empty = sorted(f"{d} / {p}" for d, p in core if not results[(d, p)])
        assert not empty, "core panels without data:\n" + "\n".join(empty)

        by_stage = {
            r["metric"]["stage"]: float(r["value"][1])
            for r in results[("ulasan — pipeline", "Events per second by stage")]
        }
        assert by_stage.get("clean", 0) > 0 and by_stage.get("infer", 0) > 0, by_stage
        assert sum(values(results[("ulasan — pipeline", "Predictions")])) > 0
        latency = values(results[("ulasan — pipeline", "Prediction latency")])
        assert any(math.isfinite(v) and v > 0 for v in latency), latency
        dead = results[("ulasan — pipeline", "Dead letters by topic and reason")]
        assert {r["metric"]["topic"] for r in dead} == {env.topic(topics.REVIEWS_RAW)}, dead
        versions = results[("ulasan — model & drift", "Model versions in service")]
        assert {r["metric"]["model_version"] for r in versions} == {"local"}, versions
    finally:
        code = worker.stop()
    assert code == 0, worker.log()[-3000:]
    assert not (folder / f"{name}.json").exists(), "the worker did not unregister its target"
