"""The /metrics endpoint of a process: served, registered for Prometheus, unregistered on exit."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ulasan.core.scrape import targets_dir
from ulasan.core.serving import MetricsEndpoint, MetricsServeError
from ulasan.core.settings import Settings


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(state_dir=tmp_path)


def test_a_target_is_registered_while_the_block_runs_and_removed_after(settings):
    served: list[int] = []
    with MetricsEndpoint(settings, host="10.0.0.5", role="worker") as endpoint:
        name = endpoint.announce("worker-a-9100", 9100, serve=served.append)
        path = targets_dir(settings) / "worker-a-9100.json"
        entry = json.loads(path.read_text())
    assert served == [9100]
    assert name == "worker-a-9100"
    assert entry == [
        {"targets": ["10.0.0.5:9100"], "labels": {"process": "worker-a-9100", "role": "worker"}}
    ]
    assert not path.exists()


def test_the_target_is_removed_when_the_run_fails(settings):
    with pytest.raises(RuntimeError), MetricsEndpoint(settings, host="h", role="g") as endpoint:
        endpoint.announce("gateway-8080", 8080)
        raise RuntimeError("the run failed")
    assert list(targets_dir(settings).glob("*.json")) == []


def test_a_port_that_cannot_be_served_is_an_error_and_nothing_is_registered(settings):
    def taken(port: int) -> None:
        raise OSError(98, "Address already in use")

    with MetricsEndpoint(settings, host="h", role="worker") as endpoint:
        with pytest.raises(MetricsServeError, match="port 9100"):
            endpoint.announce("worker-a-9100", 9100, serve=taken)
        assert endpoint.targets == []


def test_no_register_serves_without_a_target(settings):
    served: list[int] = []
    with MetricsEndpoint(settings, host="h", role="gateway", register=False) as endpoint:
        assert endpoint.announce("gateway-8080", 8080, serve=served.append) is None
    assert served == [8080]
    assert not targets_dir(settings).exists()


def test_a_target_that_cannot_be_registered_is_logged_and_the_process_runs(settings, caplog):
    with MetricsEndpoint(settings, host="h", role="worker") as endpoint:
        assert endpoint.announce("no spaces allowed", 9100) is None
    assert "Prometheus will not scrape worker no spaces allowed" in caplog.text
