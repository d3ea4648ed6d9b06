"""The Grafana provisioning is consistent: datasource uid, panel layout, variables, metric names."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

from producers.gateway.metrics import GatewayMetrics
from stream_processors.metrics import LoopMetrics, WorkerMetrics
from tests.helpers import grafana
from tests.helpers.grafana import (
    BUILTIN_VARIABLES,
    PROMETHEUS_SERIES,
    MetricDef,
    code_metrics,
    metric_names,
    metrics_in_source,
)
from trainer.retrain.metrics import RetrainMetrics
from ulasan.core.settings import PROJECT_ROOT

DASHBOARDS = grafana.load_dashboards()
TITLES = {
    "ulasan-pipeline.json": "ulasan — pipeline",
    "ulasan-model-drift.json": "ulasan — model & drift",
    "ulasan-gateway.json": "ulasan — gateway",
}
PANEL_TYPES = {"row", "timeseries", "stat", "table", "heatmap", "bargauge", "gauge"}
by_file = pytest.mark.parametrize("name", sorted(DASHBOARDS))


@pytest.fixture(scope="module")
def defined() -> list[MetricDef]:
    return code_metrics()


@pytest.fixture(scope="module")
def series(defined: list[MetricDef]) -> set[str]:
    return set().union(*(m.series() for m in defined)) | PROMETHEUS_SERIES


def test_the_three_dashboards_are_there_with_unique_uids() -> None:
    assert {name: d["title"] for name, d in DASHBOARDS.items()} == TITLES
    uids = [d["uid"] for d in DASHBOARDS.values()]
    assert len(set(uids)) == len(uids), uids
    for d in DASHBOARDS.values():
        assert "ulasan" in d["tags"]
        assert d["editable"] is False  # provisioned: edit the JSON, not the UI


def test_datasource_matches_prometheus_config_and_compose() -> None:
    (ds,) = yaml.safe_load((grafana.DATASOURCES / "prometheus.yml").read_text())["datasources"]
    assert ds["type"] == "prometheus" and ds["uid"] == grafana.datasource_uid()
    assert ds["url"] == "http://prometheus:9090"  # the compose service
    scrape = yaml.safe_load((PROJECT_ROOT / "deploy/prometheus/prometheus.yml").read_text())
    # $__rate_interval is derived from this; it must be the real scrape interval
    assert ds["jsonData"]["timeInterval"] == scrape["global"]["scrape_interval"]


def test_provider_path_is_where_compose_mounts_the_dashboards() -> None:
    compose = yaml.safe_load((PROJECT_ROOT / "docker-compose.yml").read_text())
    mounts = [v.split(":") for v in compose["services"]["grafana"]["volumes"]]
    (target,) = [m[1] for m in mounts if m[0] == "./deploy/grafana"]
    (provider,) = yaml.safe_load((grafana.DASHBOARDS / "provider.yml").read_text())["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"] == f"{target}/dashboards"


@by_file
def test_panel_ids_are_unique_and_the_grid_has_no_overlaps(name: str) -> None:
    d = DASHBOARDS[name]
    panels = list(grafana.panels(d))
    ids = [p["id"] for p in panels]
    assert len(set(ids)) == len(ids), f"duplicate panel ids in {name}: {ids}"
    cells: dict[tuple[int, int], str] = {}
    for p in panels:
        assert p["type"] in PANEL_TYPES, (p["title"], p["type"])
        assert p["title"].strip(), p
        g = p["gridPos"]
        assert g["w"] > 0 and g["h"] > 0 and g["x"] >= 0 and g["x"] + g["w"] <= 24, p["title"]
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in cells, f"{p['title']!r} overlaps {cells[(x, y)]!r}"
                cells[(x, y)] = p["title"]


@by_file
def test_every_query_uses_the_provisioned_datasource(name: str) -> None:
    uid = grafana.datasource_uid()
    d = DASHBOARDS[name]
    for p in grafana.panels(d):
        if p["type"] == "row":
            assert not p.get("targets"), p["title"]
            continue
        assert p["datasource"] == {"type": "prometheus", "uid": uid}, p["title"]
        assert p["targets"], f"panel {p['title']!r} has no query"
        refs = [t["refId"] for t in p["targets"]]
        assert len(set(refs)) == len(refs), (p["title"], refs)
        for t in p["targets"]:
            assert t["datasource"] == {"type": "prometheus", "uid": uid}, (p["title"], t)
            assert t["expr"].strip(), (p["title"], t)
    for var in d["templating"]["list"]:
        assert var["datasource"]["uid"] == uid, var["name"]
    for a in d["annotations"]["list"]:
        if "expr" in a:
            assert a["datasource"]["uid"] == uid, a["name"]


@by_file
def test_variables_are_defined_and_label_values_queries(name: str) -> None:
    d = DASHBOARDS[name]
    variables = grafana.variables(d)
    for var, query in variables.items():
        selector, _label = grafana.label_values(query)
        assert metric_names(selector) <= PROMETHEUS_SERIES | {
            n for m in code_metrics() for n in m.series()
        }, (var, selector)
    known = set(variables) | set(BUILTIN_VARIABLES)
    for q in grafana.queries(d):
        assert grafana.variables_used(q.expr) <= known, q.where()


def test_every_metric_a_dashboard_or_alert_uses_exists_in_the_code(series: set[str]) -> None:
    unknown = [
        f"{q.where()}: {sorted(metric_names(q.expr) - series)}"
        for d in DASHBOARDS.values()
        for q in grafana.queries(d)
        if metric_names(q.expr) - series
    ]
    unknown += [
        f"alert {alert}: {sorted(metric_names(expr) - series)}"
        for alert, expr in grafana.rule_exprs().items()
        if metric_names(expr) - series
    ]
    assert not unknown, "metrics no code defines:\n" + "\n".join(unknown)


def test_every_ulasan_metric_of_the_code_has_a_panel(defined: list[MetricDef]) -> None:
    used = {
        n for d in DASHBOARDS.values() for q in grafana.queries(d) for n in metric_names(q.expr)
    }
    missing = [
        f"{m.family} ({m.kind}, {m.where})"
        for m in defined
        if m.family.startswith("ulasan_") and not m.series() & used
    ]
    assert not missing, "add a panel in deploy/grafana/dashboards for:\n" + "\n".join(missing)


def test_the_source_parser_agrees_with_the_real_registries() -> None:

    worker = WorkerMetrics()
    LoopMetrics(worker.registry)
    gateway = GatewayMetrics(CollectorRegistry())
    trainer = RetrainMetrics()
    families = {
        (f.name, f.type)
        for registry in (worker.registry, gateway.registry, trainer.registry)
        for f in registry.collect()
        # prometheus_client's own collectors (ulasan.core.process_metrics), not in the source
        if not f.name.startswith(("process_", "python_"))
    }
    parsed = {
        (m.family, m.kind.lower())
        for path in (
            "stream_processors/metrics.py",
            "producers/gateway/metrics.py",
            "trainer/retrain/metrics.py",
        )
        for m in metrics_in_source(PROJECT_ROOT / path)
    }
    assert parsed == families


def test_the_parser_resolves_constants_and_ignores_collections_counter(tmp_path: Path) -> None:
    source = tmp_path / "m.py"
    source.write_text(
        "from collections import Counter as Tally\n"
        "from prometheus_client import Counter, Histogram\n"
        "import prometheus_client as pc\n"
        'NAME = "ulasan_x"\n'
        "Tally([1, 2])\n"
        'Counter(NAME, "x")\n'
        'Histogram(name="ulasan_h_seconds", documentation="h")\n'
        'pc.Gauge("ulasan_g", "g")\n'
    )
    found = metrics_in_source(source)
    assert {(m.name, m.kind) for m in found} == {
        ("ulasan_x", "Counter"),
        ("ulasan_h_seconds", "Histogram"),
        ("ulasan_g", "Gauge"),
    }
    (counter,) = [m for m in found if m.kind == "Counter"]
    assert counter.series() == {"ulasan_x_total", "ulasan_x_created"}
    source.write_text('from prometheus_client import Gauge\nGauge(f"ulasan_{1}", "g")\n')
    with pytest.raises(grafana.MetricParseError, match="not a string literal"):
        metrics_in_source(source)


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        (
            'sum by (stage) (rate(ulasan_stream_events_total{process=~"$process"}[5m]))',
            {"ulasan_stream_events_total"},
        ),
        (
            'histogram_quantile(0.99, sum by (le) (rate(a_bucket{le="0.5"}[$__rate_interval])))',
            {"a_bucket"},
        ),
        (
            "sum by (label) (rate(a_total[1m]))"
            " / ignoring (label) group_left sum(rate(a_total[1m]))",
            {"a_total"},
        ),
        ("(sum(rate(x[5m])) > 0) unless on () (sum(y) > 1e-9)", {"x", "y"}),
        ('max(g and on (instance) (w{outcome="reported, by (x)"} > 0)) > 0.3', {"g", "w"}),
        ("sum(rate(a[5m])) by (job) / count(b) without (instance)", {"a", "b"}),
        ('up{job="ulasan", role="worker"}', {"up"}),
    ],
)
def test_metric_names_of_promql(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names


def test_substitute_replaces_every_variable_or_names_the_missing_one() -> None:
    values = {"process": ".*", **BUILTIN_VARIABLES}
    assert grafana.substitute('a{p=~"$process"}[$__rate_interval]', values) == 'a{p=~".*"}[1m]'
    assert grafana.substitute("a[${__range}]", values) == "a[1h]"
    with pytest.raises(KeyError, match="model"):
        grafana.substitute('a{m="$model"}', values)


def test_panels_of_the_pipeline_cover_the_brief() -> None:
    used: dict[str, Any] = {}
    for q in grafana.queries(DASHBOARDS["ulasan-pipeline.json"]):
        for n in metric_names(q.expr):
            used.setdefault(n, []).append(q.panel)
    for needed in (
        "ulasan_stream_events_total",
        "ulasan_predictions_total",
        "ulasan_prediction_latency_seconds_bucket",
        "ulasan_inference_batch_size_bucket",
        "ulasan_consumer_lag",
        "ulasan_dlq_total",
        "ulasan_stream_errors_total",
        "ulasan_sink_write_seconds_bucket",
        "ulasan_sink_rows_total",
    ):
        assert needed in used, needed
