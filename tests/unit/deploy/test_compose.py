"""docker-compose.yml is consistent: images, volumes, ports, health checks and ULASAN_* names."""

from __future__ import annotations

import re
import types
import typing
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

from ulasan.core.settings import (
    PROJECT_ROOT,
    KafkaSettings,
    MLflowSettings,
    PostgresSettings,
    PrometheusSettings,
    Settings,
)

COMPOSE = PROJECT_ROOT / "docker-compose.yml"
PORT = re.compile(r"^(?:(?P<ip>[\d.]+):)?(?P<host>\d+):(?P<container>\d+)(?:/(?:tcp|udp))?$")
CONDITIONS = {"service_started", "service_healthy", "service_completed_successfully"}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(data, dict) and isinstance(data.get("services"), dict)
    return data


def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


def env_of(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        return dict(item.split("=", 1) for item in env)
    return {str(k): str(v) for k, v in env.items()}


def volume_specs(service: dict[str, Any]) -> list[tuple[str, str]]:
    """(source, target) of every volume entry, short or long syntax."""
    specs = []
    for entry in service.get("volumes", []):
        if isinstance(entry, dict):
            specs.append((entry["source"], entry["target"]))
        else:
            source, target = entry.split(":")[:2]
            specs.append((source, target))
    return specs


def is_bind(source: str) -> bool:
    return source.startswith((".", "/", "~"))


def nested_model(annotation: Any) -> type[BaseModel] | None:
    """The BaseModel in ``annotation`` (also inside ``X | None``), else None."""
    candidates = [annotation]
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        candidates = list(typing.get_args(annotation))
    for c in candidates:
        if isinstance(c, type) and issubclass(c, BaseModel):
            return c
    return None


def settings_env_names(model: type[BaseModel] = Settings, prefix: str = "ULASAN_") -> set[str]:
    """Every environment name pydantic-settings reads for ``model`` (nested with ``__``)."""
    names = set()
    for name, field in model.model_fields.items():
        sub = nested_model(field.annotation)
        if sub is not None:
            names |= settings_env_names(sub, f"{prefix}{name.upper()}__")
        else:
            names.add(f"{prefix}{name.upper()}")
    return names


def test_settings_env_names_walk_nested_models() -> None:
    names = settings_env_names()
    assert "ULASAN_KAFKA__BOOTSTRAP_SERVERS" in names
    assert "ULASAN_STATE_DIR" in names
    assert "ULASAN_KAFKA" not in names  # a nested model is not one variable


def test_every_service_has_an_image_or_a_build(compose: dict[str, Any]) -> None:
    for name, service in services(compose).items():
        assert "image" in service or "build" in service, name
        build = service.get("build")
        if build is not None:
            context = PROJECT_ROOT / (build if isinstance(build, str) else build["context"])
            assert context.is_dir(), f"{name}: build context {context} is missing"
            if isinstance(build, dict) and "dockerfile" in build:
                assert (context / build["dockerfile"]).is_file(), f"{name}: no Dockerfile"


def test_named_volumes_are_declared_and_used(compose: dict[str, Any]) -> None:
    declared = set(compose.get("volumes") or {})
    used = set()
    for name, service in services(compose).items():
        for source, _ in volume_specs(service):
            if not is_bind(source):
                assert source in declared, f"{name}: volume {source!r} is not declared"
                used.add(source)
    assert declared == used, f"declared but unused volumes: {declared - used}"


def test_bind_mounts_stay_in_the_repository_and_mounted_files_exist(
    compose: dict[str, Any],
) -> None:
    for name, service in services(compose).items():
        for source, target in volume_specs(service):
            if not is_bind(source):
                continue
            assert source.startswith("./"), f"{name}: bind source {source} must be ./relative"
            path = (PROJECT_ROOT / source).resolve()
            assert path.is_relative_to(PROJECT_ROOT), f"{name}: {source} leaves the repository"
            # a missing file would be created as an empty directory by docker: a classic bug
            if Path(target).suffix:
                assert path.is_file(), f"{name}: mounted file {source} does not exist"


def test_ports_are_well_formed_and_host_ports_unique(compose: dict[str, Any]) -> None:
    seen: dict[int, str] = {}
    for name, service in services(compose).items():
        for entry in service.get("ports", []):
            match = PORT.match(str(entry))
            assert match, f"{name}: port {entry!r} is not HOST:CONTAINER"
            host, container = int(match["host"]), int(match["container"])
            assert 0 < host < 65536 and 0 < container < 65536, f"{name}: {entry}"
            assert host not in seen, f"host port {host} used by {seen.get(host)} and {name}"
            seen[host] = name


def test_host_ports_match_the_local_stack_defaults(compose: dict[str, Any]) -> None:
    """A `ulasan` command on the host reaches compose with the default settings."""
    # the nested models' own defaults: the environment (ULASAN_*) must not change what is checked
    expected = {
        "kafka": int(KafkaSettings().bootstrap_servers.rsplit(":", 1)[1]),
        "postgres": PostgresSettings().port,
        "mlflow": MLflowSettings().port,
        "prometheus": PrometheusSettings().port,
    }
    for name, port in expected.items():
        hosts = [int(PORT.match(str(p))["host"]) for p in services(compose)[name]["ports"]]
        assert port in hosts, f"{name} publishes {hosts}, the settings default is {port}"


def test_ulasan_env_names_are_settings_fields(compose: dict[str, Any]) -> None:
    known = settings_env_names()
    checked = 0
    for name, service in services(compose).items():
        for key in env_of(service):
            if key.startswith("ULASAN_"):
                assert key in known, f"{name}: {key} is not a Settings field"
                checked += 1
    assert checked, "no service sets any ULASAN_* variable"


def test_ulasan_env_values_are_valid_settings(
    compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    for service in services(compose).values():
        env = {k: v for k, v in env_of(service).items() if k.startswith("ULASAN_")}
        if not env:
            continue
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        settings = Settings()
        assert settings.kafka.bootstrap_servers == env["ULASAN_KAFKA__BOOTSTRAP_SERVERS"]
        assert settings.postgres.host == env["ULASAN_POSTGRES__HOST"]


def test_depends_on_targets_exist(compose: dict[str, Any]) -> None:
    names = set(services(compose))
    for name, service in services(compose).items():
        deps = service.get("depends_on") or {}
        items = deps.items() if isinstance(deps, dict) else ((d, {}) for d in deps)
        for target, spec in items:
            assert target in names, f"{name} depends on unknown service {target}"
            condition = (spec or {}).get("condition", "service_started")
            assert condition in CONDITIONS, f"{name} -> {target}: {condition}"
            if condition == "service_healthy":
                assert "healthcheck" in services(compose)[target], f"{target} has no healthcheck"


def test_stateful_services_have_health_checks(compose: dict[str, Any]) -> None:
    for name, service in services(compose).items():
        stateful = any(not is_bind(src) for src, _ in volume_specs(service))
        one_shot = service.get("restart") == "no"
        if stateful and not one_shot:
            check = service.get("healthcheck")
            assert check and check.get("test"), f"{name} keeps state but has no healthcheck"
