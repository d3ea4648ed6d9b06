"""Prometheus of the local stack: valid config and rules, alerts loaded, file_sd targets scraped."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client import CollectorRegistry, Counter, start_http_server

from deploy.local import prometheus
from ulasan.core import scrape
from ulasan.core.settings import Settings


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("promtool")
    assert binary, "promtool is missing: it comes with the Debian package prometheus"
    return subprocess.run([binary, *args], capture_output=True, text=True, check=False)


def api(settings: Settings, path: str) -> Any:
    response = httpx.get(f"{settings.prometheus.url}/api/v1/{path}", timeout=10)
    response.raise_for_status()
    body = response.json()
    assert body["status"] == "success", body
    return body["data"]


def test_rendered_config_and_rules_are_valid(settings: Settings, tmp_path: Path) -> None:
    config = tmp_path / "prometheus.yml"
    config.write_text(yaml.safe_dump(prometheus.render_config(settings)))
    checked = promtool("check", "config", str(config))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    rules = sorted((prometheus.CONFIG_DIR / "rules").glob("*.yml"))
    assert rules
    checked = promtool("check", "rules", *map(str, rules))
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_alert_rules_are_loaded(settings: Settings) -> None:
    groups = api(settings, "rules")["groups"]
    alerts = {rule["name"] for group in groups for rule in group["rules"]}
    assert {"UlasanTargetDown", "PrometheusConfigReloadFailed"} <= alerts


@pytest.fixture
def metrics_server() -> Iterator[int]:
    """A real /metrics endpoint on a free port, with one counter of our own."""
    registry = CollectorRegistry()
    Counter("ulasan_it_probe", "a counter of the integration test", registry=registry).inc(3)
    server, thread = start_http_server(0, addr="127.0.0.1", registry=registry)
    try:
        yield server.server_port
    finally:
        server.shutdown()
        thread.join(5)


def wait_for(check: Callable[[], Any], timeout_s: float, what: str) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s:.0f}s waiting for {what}")
        time.sleep(1)


def test_registered_target_is_scraped_and_unregistered(
    settings: Settings, metrics_server: int, unique_name: Callable[[str], str]
) -> None:
    name = unique_name("it-probe")
    instance = f"127.0.0.1:{metrics_server}"
    path = scrape.register_target(settings, name, metrics_server, labels={"test": "yes"})
    assert path.parent == scrape.targets_dir(settings)

    def ours() -> list[dict[str, Any]]:
        active = api(settings, "targets?state=active")["activeTargets"]
        return [t for t in active if t["labels"].get("process") == name]

    try:
        # file_sd notices the file at once; the first scrape comes within one interval (15 s)
        target = wait_for(lambda: [t for t in ours() if t["health"] == "up"], 60, "a scrape")[0]
        assert target["labels"]["job"] == prometheus.ULASAN_JOB
        assert target["labels"]["instance"] == instance
        assert target["labels"]["test"] == "yes"
        result = api(settings, f'query?query=ulasan_it_probe_total{{process="{name}"}}')
        assert [float(r["value"][1]) for r in result["result"]] == [3.0]
    finally:
        assert scrape.unregister_target(settings, name)
    wait_for(lambda: not ours(), 60, "the target to go")
    assert not scrape.unregister_target(settings, name)
