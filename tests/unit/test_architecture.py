"""The structure the import-linter contracts and the house style promise, checked on the real tree.

import-linter (``make lint``, ``make test``) keeps the layers; these tests add what it does not:
no import cycle between any two modules (function-local imports included) and a top layer that
names every orchestration module, so a new one cannot slip past the layers contract.
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import grimp
import pytest
from importlinter.api import read_configuration

from ulasan.core.settings import PROJECT_ROOT

PACKAGES = ("ulasan", "schemas", "producers", "stream_processors", "trainer", "deploy", "ui")


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    return grimp.build_graph(*PACKAGES, cache_dir=None)


def strongly_connected(edges: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative: the components with more than one module (the cycles)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    counter = 0
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    top = stack.pop()
                    on_stack.discard(top)
                    component.append(top)
                    if top == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_cycle_finder_finds_a_cycle() -> None:
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert strongly_connected(edges) == [["a", "b", "c"]]
    assert strongly_connected({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle_between_modules(graph: grimp.ImportGraph) -> None:
    ours = {m for m in graph.modules if m.split(".")[0] in PACKAGES}
    edges = {m: {i for i in graph.find_modules_directly_imported_by(m) if i in ours} for m in ours}
    # a package's __init__ importing its own children is how packages re-export, not a cycle
    for module, imported in edges.items():
        edges[module] = {i for i in imported if not i.startswith(module + ".")}
    assert strongly_connected(edges) == []


def test_top_layer_names_every_orchestration_module() -> None:
    config = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    layers = next(c for c in config["contracts"] if c["id"] == "layers")["layers"]
    top = {name.strip() for name in layers[0].replace("|", ":").split(":")}
    on_disk = {
        f"ulasan.{p.stem}"
        for p in Path(PROJECT_ROOT / "ulasan").glob("*.py")
        if p.stem != "__init__"
    } | {
        f"ulasan.{p.name}"
        for p in (PROJECT_ROOT / "ulasan").iterdir()
        if (p / "__init__.py").is_file() and p.name != "core"
    }
    assert on_disk - top == set(), "add these to the top layer of the layers contract"


def test_import_linter_contracts_are_kept() -> None:
    """The same check as ``lint-imports`` (``make lint``): every contract in pyproject.toml."""
    ids = {
        c["id"]
        for c in read_configuration(str(PROJECT_ROOT / "pyproject.toml"))["contracts_options"]
    }
    assert {"layers", "no-dev-stack", "schemas-pure", "serving-without-torch"} <= ids
    # in a child process: import-linter configures logging, which would silence other tests
    lint = Path(sys.executable).parent / "lint-imports"
    done = subprocess.run(
        [str(lint), "--no-cache", "--config", str(PROJECT_ROOT / "pyproject.toml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:]
