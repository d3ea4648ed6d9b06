"""The provisioned Grafana dashboards as data: their queries, variables and the metrics they name.

Used by the unit test (structure, metric names against the code) and the integration test
(every query through the stack's Prometheus). Metric definitions are found by parsing the
source (``Counter("ulasan_x", ...)`` and friends from prometheus_client), so a module that
defines metrics counts even when nothing instantiates it.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ulasan.core.settings import PROJECT_ROOT

GRAFANA = PROJECT_ROOT / "deploy" / "grafana"
DASHBOARDS = GRAFANA / "dashboards"
DATASOURCES = GRAFANA / "datasources"
RULES = PROJECT_ROOT / "deploy" / "prometheus" / "rules"
PIPELINE_RULES = RULES / "ulasan-pipeline.yml"
#: packages whose prometheus_client metrics the dashboards may use
METRIC_PACKAGES = ("stream_processors", "producers", "trainer", "ulasan", "deploy")
#: series Prometheus makes itself (not defined in our code)
PROMETHEUS_SERIES = frozenset({"up"})
#: Grafana's own variables and what the tests put in their place (Grafana computes
#: $__rate_interval as max(4 x the datasource's scrape interval, $__interval + scrape interval))
BUILTIN_VARIABLES = {"__rate_interval": "1m", "__interval": "15s", "__range": "1h"}

_METRIC_KINDS = ("Counter", "Gauge", "Histogram", "Summary", "Info", "Enum")
_VARIABLE = re.compile(r"\$(?:\{(\w+)(?::\w+)?\}|(\w+))")
_LABEL_VALUES = re.compile(r"^label_values\((?P<selector>.+),\s*(?P<label>\w+)\)$")


@dataclass(frozen=True)
class Query:
    """One PromQL expression of a dashboard: a panel target or an annotation."""

    dashboard: str
    panel: str
    ref: str
    expr: str
    instant: bool

    def where(self) -> str:
        return f"{self.dashboard} / {self.panel} / {self.ref}"


def load_dashboards() -> dict[str, dict[str, Any]]:
    """Every ``dashboards/*.json`` by file name."""
    return {p.name: json.loads(p.read_text()) for p in sorted(DASHBOARDS.glob("*.json"))}


def datasource_uid() -> str:
    """The uid of the one provisioned Prometheus datasource."""
    (source,) = [
        d
        for f in sorted(DATASOURCES.glob("*.yml"))
        for d in yaml.safe_load(f.read_text())["datasources"]
        if d["type"] == "prometheus"
    ]
    return str(source["uid"])


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, rows and the panels inside collapsed rows included."""
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def queries(dashboard: dict[str, Any]) -> list[Query]:
    """The PromQL of every panel target and every Prometheus annotation."""
    title = dashboard["title"]
    out = [
        Query(title, p["title"], t["refId"], t["expr"], bool(t.get("instant")))
        for p in panels(dashboard)
        for t in p.get("targets", [])
    ]
    out += [
        Query(title, f"annotation {a['name']}", "annotation", a["expr"], False)
        for a in dashboard.get("annotations", {}).get("list", [])
        if "expr" in a
    ]
    return out


def variables(dashboard: dict[str, Any]) -> dict[str, str]:
    """Template variable name -> its query (``label_values(selector, label)``)."""
    out = {}
    for var in dashboard.get("templating", {}).get("list", []):
        query = var.get("query")
        out[var["name"]] = query["query"] if isinstance(query, dict) else str(query)
    return out


def label_values(query: str) -> tuple[str, str]:
    """``label_values(selector, label)`` -> ``(selector, label)``; ValueError for anything else."""
    m = _LABEL_VALUES.match(query.strip())
    if not m:
        raise ValueError(f"not a label_values(selector, label) query: {query!r}")
    return m["selector"].strip(), m["label"]


def variables_used(expr: str) -> set[str]:
    return {a or b for a, b in _VARIABLE.findall(expr)}


def substitute(expr: str, values: dict[str, str]) -> str:
    """``expr`` with every ``$var`` / ``${var}`` replaced; KeyError names a variable not given."""

    def one(m: re.Match[str]) -> str:
        return values[m.group(1) or m.group(2)]

    return _VARIABLE.sub(one, expr)


# -- metric names used by PromQL ------------------------------------------------------------------
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_BRACES = re.compile(r"\{[^{}]*\}")
_BRACKETS = re.compile(r"\[[^\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_TOKEN = re.compile(r"\d+(?:\.\d+)?(?:[eE][+-]?\d+)?|[A-Za-z_:][A-Za-z0-9_:]*")
_KEYWORDS = frozenset(
    {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring"}
    | {"group_left", "group_right", "inf", "nan", "atan2"}
)


def metric_names(expr: str) -> set[str]:
    """Metric names a PromQL expression selects (functions, labels and keywords left out)."""
    text = _STRING.sub('""', expr)
    text = _VARIABLE.sub("", text)
    text = _BRACES.sub("", text)
    text = _BRACKETS.sub("", text)
    text = _GROUPING.sub("", text)
    names = set()
    for m in _TOKEN.finditer(text):
        token = m.group(0)
        if token[0].isdigit() or token.lower() in _KEYWORDS:
            continue
        if text[m.end() :].lstrip().startswith("("):  # a function or an aggregation
            continue
        names.add(token)
    return names


def rule_exprs(path: Path = PIPELINE_RULES) -> dict[str, str]:
    """Alert (or record) name -> expression of a rules file."""
    groups = yaml.safe_load(path.read_text())["groups"]
    return {r.get("alert") or r["record"]: r["expr"] for g in groups for r in g["rules"]}


# -- metric names defined in the code --------------------------------------------------------------
@dataclass(frozen=True)
class MetricDef:
    """A prometheus_client metric constructed in the source."""

    name: str  # as given (a counter without _total)
    kind: str  # Counter, Gauge, ...
    where: str  # path:line

    @property
    def family(self) -> str:
        return self.name.removesuffix("_total") if self.kind == "Counter" else self.name

    def series(self) -> set[str]:
        """The sample names Prometheus stores for this metric."""
        f = self.family
        return {
            "Counter": {f"{f}_total", f"{f}_created"},
            "Gauge": {f},
            "Histogram": {f"{f}_bucket", f"{f}_sum", f"{f}_count", f"{f}_created"},
            "Summary": {f, f"{f}_sum", f"{f}_count", f"{f}_created"},
            "Info": {f"{f}_info"},
            "Enum": {f},
        }[self.kind]


class MetricParseError(Exception):
    """A metric constructor whose name is not a string the parser can resolve."""


def _module_strings(tree: ast.Module) -> dict[str, str]:
    out = {}
    for node in tree.body:
        if (
            isinstance(node, ast.Assign)
            and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str)
        ):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    out[target.id] = node.value.value
    return out


def _prometheus_imports(tree: ast.Module) -> tuple[dict[str, str], set[str]]:
    """(local name -> metric kind for ``from prometheus_client import X``, module aliases)."""
    kinds: dict[str, str] = {}
    modules: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "prometheus_client":
            for alias in node.names:
                if alias.name in _METRIC_KINDS:
                    kinds[alias.asname or alias.name] = alias.name
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == "prometheus_client":
                    modules.add(alias.asname or alias.name)
    return kinds, modules


def metrics_in_source(path: Path) -> list[MetricDef]:
    """Every prometheus_client metric constructed in one Python file."""
    source = path.read_text()
    if "prometheus_client" not in source:
        return []
    tree = ast.parse(source, filename=str(path))
    kinds, modules = _prometheus_imports(tree)
    strings = _module_strings(tree)
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        kind = None
        if isinstance(func, ast.Name):
            kind = kinds.get(func.id)
        elif (
            isinstance(func, ast.Attribute)
            and isinstance(func.value, ast.Name)
            and func.value.id in modules
            and func.attr in _METRIC_KINDS
        ):
            kind = func.attr
        if kind is None:
            continue
        arg = (
            node.args[0]
            if node.args
            else next((k.value for k in node.keywords if k.arg == "name"), None)
        )
        shown = path.relative_to(PROJECT_ROOT) if path.is_relative_to(PROJECT_ROOT) else path
        where = f"{shown}:{node.lineno}"
        if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
            name = arg.value
        elif isinstance(arg, ast.Name) and arg.id in strings:
            name = strings[arg.id]
        else:
            raise MetricParseError(
                f"{where}: the name of this {kind} is not a string literal or a module constant"
            )
        found.append(MetricDef(name, kind, where))
    return found


def code_metrics(packages: tuple[str, ...] = METRIC_PACKAGES) -> list[MetricDef]:
    """Every metric defined in ``packages`` (their .py files, recursively)."""
    out = []
    for package in packages:
        for path in sorted((PROJECT_ROOT / package).rglob("*.py")):
            out.extend(metrics_in_source(path))
    return out
