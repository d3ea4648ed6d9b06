"""ulasan run: loop profiles (one home with the scenario's), its services and its addresses."""

from __future__ import annotations

from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from stream_processors.drift.config import DriftConfig
from stream_processors.settings import WorkerSettings
from stream_processors.triggers.logic import TriggerConfig
from ulasan.cli import app
from ulasan.core.settings import Settings
from ulasan.profiles import PROFILES, profile
from ulasan.run_services import (
    Ports,
    ServiceSpec,
    address_lines,
    ui_available,
    ui_command_answers,
)
from ulasan.scenario import ScenarioConfig, _Scenario, _worker_env


def test_production_keeps_every_default_and_demo_shortens_the_loop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert profile("production").worker_env() == {}
    demo = profile("demo").worker_env()
    for key, value in demo.items():
        monkeypatch.setenv(key, value)
    settings = WorkerSettings()  # the workers read exactly these values
    assert settings.drift.window_s == 20.0 < DriftConfig().window_s
    assert settings.drift.min_events == 100 and settings.drift.grace_s == 2.0
    assert settings.triggers.cooldown_s == 1800.0 < TriggerConfig().cooldown_s
    with pytest.raises(ValueError, match="known: production, demo"):
        profile("fast")


def test_the_demo_profile_is_the_scenario_loop() -> None:
    scn = _Scenario(Settings(), ScenarioConfig(), Console())
    env = _worker_env(scn)
    demo = PROFILES["demo"].worker_env()
    same = {"ULASAN_DRIFT__WINDOW_S", "ULASAN_DRIFT__GRACE_S", "ULASAN_DRIFT__MIN_EVENTS"}
    same |= {"ULASAN_DRIFT__FEEDBACK_RECONCILE_S", "ULASAN_TRIGGERS__FEEDBACK_MIN"}
    assert {k: env[k] for k in same} == {k: demo[k] for k in same}


def test_the_run_prints_the_profile_values_beside_production() -> None:
    line = profile("demo").describe()
    assert line.startswith("profile demo: drift window 20s (production 3600s)")
    assert "trigger cool-down 1800s (production 3600s)" in line
    assert profile("production").describe() == (
        "profile production: drift window 3600s, grace 5s, min events 200, "
        "feedback reconcile 5s, feedback min 100, trigger cool-down 3600s"
    )


def test_an_unknown_profile_is_a_usage_error() -> None:
    result = CliRunner().invoke(app, ["run", "--profile", "fast", "--no-stack"])
    assert result.exit_code == 2
    assert "unknown profile 'fast'" in " ".join(result.output.split())


def test_addresses_name_every_service_with_the_ui_line() -> None:
    settings = Settings()
    lines = address_lines(settings, Ports(8080, 50051, 8501), [9464, 9465], Path("/tmp/logs"))
    assert lines[0] == "ui  http://127.0.0.1:8501"
    names = [line.split("  ", 1)[0] for line in lines]
    assert names == [
        "ui",
        "http docs",
        "grpc",
        "mlflow",
        "prometheus",
        "postgresql",
        "kafka",
        "metrics",
        "logs",
    ]
    assert "http docs  http://127.0.0.1:8080/docs" in lines[1]
    assert lines[-2] == "metrics  http://127.0.0.1:9464/metrics, http://127.0.0.1:9465/metrics"
    no_ui = address_lines(settings, Ports(8080, 50051, None), [9464], Path("/tmp/logs"))
    assert no_ui[0] == "ui  not started: this installation has no `ulasan ui`"
    once = address_lines(settings, None, [9464], Path("/tmp/logs"))
    assert [line.split("  ", 1)[0] for line in once][0] == "mlflow"


def test_services_share_the_run_topics_and_ports(tmp_path: Path) -> None:
    spec = ServiceSpec(
        log_dir=tmp_path,
        stem="run1",
        prefix="t1.",
        app_id="grp",
        ports=Ports(18080, 15051, 18501),
        train_config=Path("configs/tiny.yaml"),
    )
    gateway = spec.gateway()
    assert gateway.args[:2] == ["gateway", "serve"] and "--no-register" in gateway.args
    assert gateway.env["ULASAN_GATEWAY__TOPIC_PREFIX"] == "t1."
    assert gateway.log_path == tmp_path / "run1-gateway.log"
    trainer = spec.trainer()
    assert trainer.env["ULASAN_RETRAIN__TOPIC_PREFIX"] == "t1."
    assert trainer.env["ULASAN_RETRAIN__GROUP_ID"] == "grp-trainer"
    assert trainer.env["ULASAN_RETRAIN__CONFIG"] == "configs/tiny.yaml"
    ui = spec.ui()
    assert ui is not None and ui.args == ["ui", "--port", "18501"]
    assert ui.env["ULASAN_GATEWAY__HTTP_PORT"] == "18080"  # the UI finds the gateway
    no_ui = ServiceSpec(tmp_path, "r", "", "g", Ports(1, 2, None))
    assert no_ui.ui() is None and "--no-register" not in no_ui.gateway().args


def test_the_trainer_serves_metrics_on_the_port_the_job_chose(tmp_path: Path) -> None:
    ports = Ports(18080, 15051, None, trainer_metrics=19463)
    trainer = ServiceSpec(tmp_path, "r", "t1.", "grp", ports).trainer()
    assert trainer.env["ULASAN_RETRAIN__METRICS_PORT"] == "19463"
    assert trainer.args == ["trainer", "serve", "--no-register"]  # isolated topics: unscraped
    shared = ServiceSpec(tmp_path, "r", "", "grp", ports).trainer()
    assert shared.args == ["trainer", "serve"]
    lines = address_lines(Settings(), ports, [9464], Path("/tmp/logs"))
    assert lines[-2] == (
        "metrics  http://127.0.0.1:9464/metrics (workers), http://127.0.0.1:19463/metrics (trainer)"
    )


def test_ui_is_started_exactly_when_the_command_exists() -> None:
    names = {c.name for c in app.registered_commands} | {g.name for g in app.registered_groups}
    assert ui_available() == ("ui" in names)  # read off the loaded command line
    assert ui_command_answers() == ("ui" in names)  # asked of a fresh `ulasan ui --help`
