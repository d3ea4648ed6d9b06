"""docker-compose.yml holds the whole system, securely, and agrees with the code it runs.

There is no Docker engine here, so the file is checked statically and every command it runs
is run natively: the Compose specification (check-jsonschema's vendored schema), compose's
variable interpolation (required secrets refuse blanks), the ULASAN_* names against the real
settings classes, each service's command against the real `ulasan` CLI, the published ports,
the scrape, alerting and provisioning files it mounts.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from producers.gateway.errors import Forbidden, Unauthenticated
from producers.gateway.security import Guard, hash_key
from producers.gateway.settings import GatewaySettings
from stream_processors.settings import WorkerSettings
from tests.helpers.deploy_checks import assert_help_names_options, help_texts, settings_env_names
from trainer.retrain.config import TrainerSettings
from ui.settings import UiSettings
from ulasan.core.settings import PROJECT_ROOT, KafkaSettings, PostgresSettings, PrometheusSettings

COMPOSE = PROJECT_ROOT / "docker-compose.yml"
ENV_EXAMPLE = PROJECT_ROOT / ".env.example"
DOCKERFILE = PROJECT_ROOT / "deploy" / "docker" / "Dockerfile"
PORT = re.compile(
    r"^(?:(?P<ip>[\d.]+):)?(?P<host>\d+(?:-\d+)?):(?P<container>\d+)(?:/(?:tcp|udp))?$"
)
CONDITIONS = {"service_started", "service_healthy", "service_completed_successfully"}
#: services that hold or serve data: never published beyond loopback
DATA_SERVICES = ("kafka", "postgres", "mlflow", "prometheus", "alertmanager", "grafana")
#: what a user puts in .env (random here: the tests must not depend on the values)
ADMIN_KEY, APP_KEY = "k-admin-" + os.urandom(8).hex(), "k-app-" + os.urandom(8).hex()
SECRETS = {
    "ULASAN_POSTGRES__PASSWORD": "pw-" + os.urandom(8).hex(),
    "ULASAN_GATEWAY__API_KEYS": json.dumps(
        [
            {"name": "ops", "sha256": hash_key(ADMIN_KEY), "admin": True},
            {"name": "app", "sha256": hash_key(APP_KEY)},
        ]
    ),
    "GRAFANA_ADMIN_PASSWORD": "gf-" + os.urandom(8).hex(),
    "ALERT_WEBHOOK_URL": "https://hooks.example.invalid/ulasan?token=a&b=$c",
    "ULASAN_UI__API_KEY": APP_KEY,
    "GATEWAY_TLS_CERT_FILE": "./.tls/gateway.crt",
    "GATEWAY_TLS_KEY_FILE": "./.tls/gateway.key",
}
_VAR = re.compile(
    r"\$\$|\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}"
    r"|\$(?P<bare>[A-Za-z_][A-Za-z0-9_]*)"
)


class MissingVariable(Exception):
    """A ``${VAR:?message}`` whose variable is unset or empty (compose refuses to start)."""


def interpolate(text: str, env: dict[str, str]) -> str:
    """Compose's variable interpolation: ``${V}``, ``${V:-d}``, ``${V-d}``, ``${V:?e}``,
    ``${V?e}``, ``$V`` and ``$$``."""

    def one(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        name = m["name"] or m["bare"]
        op, arg, value = m["op"], m["arg"], env.get(name)
        if op in (":?", "?") and (value is None or (op == ":?" and value == "")):
            raise MissingVariable(f"{name}: {arg}")
        if op == ":-" and not value:
            return arg
        if op == "-" and value is None:
            return arg
        return value or ""

    return _VAR.sub(one, text)


def interpolated(node: Any, env: dict[str, str]) -> Any:
    """``node`` with every string value interpolated (as compose does, after parsing)."""
    if isinstance(node, dict):
        return {k: interpolated(v, env) for k, v in node.items()}
    if isinstance(node, list):
        return [interpolated(v, env) for v in node]
    return interpolate(node, env) if isinstance(node, str) else node


def load(env: dict[str, str]) -> dict[str, Any]:
    """docker-compose.yml as compose sees it with ``env`` (.env): merged and interpolated."""
    data = interpolated(yaml.safe_load(COMPOSE.read_text()), env)
    assert isinstance(data, dict) and isinstance(data.get("services"), dict)
    return data


@pytest.fixture(scope="module")
def raw() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load(SECRETS)


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


def ulasan_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The services that run one of ulasan's images (ENTRYPOINT ``ulasan``)."""
    return {
        n: s for n, s in services(compose).items() if str(s.get("image", "")).startswith("ulasan")
    }


#: every settings class a process of compose builds
KNOWN_ENV = (
    settings_env_names(WorkerSettings)
    | settings_env_names(GatewaySettings)
    | settings_env_names(TrainerSettings)
    | settings_env_names(UiSettings)
)


def check_jsonschema(*args: str | Path) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).with_name("check-jsonschema")
    assert exe.is_file(), f"{exe} is missing: `uv sync` installs the dev group"
    return subprocess.run(
        [str(exe), "--builtin-schema", "vendor.compose-spec", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
    )


# ---- the Compose specification and interpolation ------------------------------------------


def test_compose_file_validates_against_the_compose_spec(tmp_path: Path) -> None:
    rendered = tmp_path / "rendered.yml"
    rendered.write_text(yaml.safe_dump(load(SECRETS)))
    done = check_jsonschema(COMPOSE, rendered)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_spec_check_fails_on_a_broken_file(tmp_path: Path) -> None:
    broken = load(SECRETS)
    broken["services"]["worker"]["restart_policy"] = "always"  # not a compose key
    broken["services"]["gateway"]["ports"] = 8080  # not a list
    path = tmp_path / "broken.yml"
    path.write_text(yaml.safe_dump(broken))
    done = check_jsonschema(path)
    assert done.returncode != 0
    assert "restart_policy" in done.stdout + done.stderr


def test_interpolation_follows_compose_rules() -> None:
    env = {"SET": "v", "EMPTY": ""}
    assert interpolate("${SET} ${EMPTY:-d} ${EMPTY-d} ${UNSET-d} $$x $SET", env) == "v d  d $x v"
    with pytest.raises(MissingVariable, match="EMPTY: say"):
        interpolate("${EMPTY:?say}", env)
    assert interpolate("${EMPTY?say}", env) == ""
    with pytest.raises(MissingVariable):
        interpolate("${UNSET?say}", env)


# ---- secrets -------------------------------------------------------------------------------


def required_variables() -> set[str]:
    return {m["name"] for m in _VAR.finditer(COMPOSE.read_text()) if m["op"] == ":?"}


def env_example() -> dict[str, str]:
    out = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            out[key.strip()] = value.strip()
    return out


def test_every_secret_is_required_and_listed_blank_in_env_example() -> None:
    required = required_variables()
    assert set(SECRETS) == required, "the secrets compose requires changed: update SECRETS"
    example = env_example()
    assert set(example) == required, "every required variable is in .env.example, nothing else"
    assert all(value == "" for value in example.values()), ".env.example holds no secret value"
    for name in required:  # without it, or with the example's blank, compose refuses
        for env in ({k: v for k, v in SECRETS.items() if k != name}, {**SECRETS, name: ""}):
            with pytest.raises(MissingVariable, match=name):
                load(env)


def test_no_literal_secret_in_the_compose_file(raw: dict[str, Any]) -> None:
    secretive = re.compile(r"PASSWORD|SECRET|TOKEN|API_KEYS?$|WEBHOOK")
    checked = 0
    for name, service in services(raw).items():
        for key, value in env_of(service).items():
            if secretive.search(key):
                assert re.fullmatch(r"\$\{[A-Z0-9_]+:\?[^}]+\}", value), (
                    f"{name}: {key} must be ${{VAR:?...}} from .env, not {value!r}"
                )
                checked += 1
    assert checked >= 4
    text = COMPOSE.read_text()
    for value in ("ulasan:ulasan@", "PASSWORD: ulasan", "PASSWORD: admin"):
        assert value not in text


def test_host_and_compose_agree_on_the_database_password(
    compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """One variable, named as the host setting: exporting .env gives host commands the
    password the compose database was created with."""
    password = SECRETS["ULASAN_POSTGRES__PASSWORD"]
    assert env_of(services(compose)["postgres"])["POSTGRES_PASSWORD"] == password
    for name, service in ulasan_services(compose).items():
        assert env_of(service)["ULASAN_POSTGRES__PASSWORD"] == password, name
    for key in list(os.environ):
        if key.startswith("ULASAN_"):
            monkeypatch.delenv(key)
    assert PostgresSettings().password == "", "the host default has no password"
    for key, value in env_example().items():  # `set -a; . ./.env; set +a`, filled in
        monkeypatch.setenv(key, SECRETS.get(key, value))
    host = WorkerSettings().postgres
    assert host.password == password and host.port == 55432
    published_pg = {int(m["host"]) for m in published(services(compose)["postgres"])}
    assert host.port in published_pg and f":{password}@127.0.0.1:" in host.dsn


def test_the_alert_webhook_reaches_alertmanager_as_a_secret_file(compose: dict[str, Any]) -> None:
    am = services(compose)["alertmanager"]
    (secret,) = am["secrets"]
    assert compose["secrets"][secret] == {"environment": "ALERT_WEBHOOK_URL"}
    config = dict(volume_specs(am))
    (source,) = [s for s, t in config.items() if t == "/etc/alertmanager/alertmanager.yml"]
    am_config = yaml.safe_load((PROJECT_ROOT / source).read_text())
    hooks = [w for r in am_config["receivers"] for w in r.get("webhook_configs", [])]
    assert hooks and all(w["url_file"] == f"/run/secrets/{secret}" for w in hooks)
    assert all("url" not in w for w in hooks), "the URL comes from the environment only"
    assert am_config["route"]["receiver"] in {r["name"] for r in am_config["receivers"]}


# ---- ports ---------------------------------------------------------------------------------


def published(service: dict[str, Any]) -> list[re.Match[str]]:
    out = []
    for entry in service.get("ports", []):
        match = PORT.match(str(entry))
        assert match, f"port {entry!r} is not [IP:]HOST:CONTAINER"
        out.append(match)
    return out


def test_nothing_is_published_beyond_loopback_by_default(compose: dict[str, Any]) -> None:
    for name, service in services(compose).items():
        for match in published(service):
            assert match["ip"] == "127.0.0.1", (
                f"{name} publishes {match.group(0)} on all interfaces"
            )
    assert not services(compose)["mlflow"].get("ports"), "MLflow must not be reachable from outside"


def test_data_ports_stay_on_loopback_whatever_the_environment() -> None:
    opened = load({**SECRETS, "GATEWAY_BIND": "0.0.0.0"})
    gateway_ips = {m["ip"] for m in published(services(opened)["gateway"])}
    assert gateway_ips == {"0.0.0.0"}, "GATEWAY_BIND moves the gateway only"
    for name in DATA_SERVICES:
        for match in published(services(opened)[name]):
            assert match["ip"] == "127.0.0.1", f"{name}: {match.group(0)}"


def test_host_ports_are_unique_and_match_the_local_stack_defaults(
    compose: dict[str, Any],
) -> None:
    seen: dict[str, str] = {}
    for name, service in services(compose).items():
        for match in published(service):
            assert match["host"] not in seen, (
                f"host port {match['host']}: {seen.get(match['host'])}"
            )
            seen[match["host"]] = name
    expected = {
        "kafka": int(KafkaSettings().bootstrap_servers.rsplit(":", 1)[1]),
        "postgres": PostgresSettings().port,
        "prometheus": PrometheusSettings().port,
    }
    for name, port in expected.items():
        hosts = [int(m["host"]) for m in published(services(compose)[name])]
        assert port in hosts, f"{name} publishes {hosts}, the settings default is {port}"


def test_scaled_services_have_no_fixed_name_or_host_port(compose: dict[str, Any]) -> None:
    for name, service in services(compose).items():
        assert "container_name" not in service, f"{name}: container_name breaks --scale"
    assert not services(compose)["worker"].get("ports"), "worker replicas would clash on a port"
    # each replica keeps its own state (faust tables, model cache): no shared named volume
    assert not any(not is_bind(s) for s, _ in volume_specs(services(compose)["worker"]))


# ---- what the services run ---------------------------------------------------------------


def subcommand(command: list[str]) -> tuple[list[str], list[str]]:
    """(the command words, the ``--option`` names) of a service's command."""
    words = [w for w in command if not w.startswith("-")]
    # a positional argument (a path) ends the words of the command
    words = [w for w in words if "/" not in w]
    options = [w.split("=", 1)[0] for w in command if w.startswith("--")]
    return words, options


def test_every_command_exists_in_the_cli(compose: dict[str, Any]) -> None:
    """``ulasan <command> --help`` (the Typer app the ``ulasan`` entry point runs) answers and
    names every option compose passes."""
    commands = {name: subcommand(s["command"]) for name, s in ulasan_services(compose).items()}
    answers = help_texts([words for words, _ in commands.values()] + [["no-such-command"]])
    for name, (words, options) in commands.items():
        what = f"{name}: ulasan {' '.join(words)}"
        assert_help_names_options(what, answers[" ".join(words)], options)
    ran = {tuple(words) for words, _ in commands.values()}
    assert {("bootstrap",), ("worker",), ("trainer", "serve"), ("gateway", "serve")} <= ran
    # and a word that is no command fails, so the check can fail
    assert answers["no-such-command"][0] != 0


def test_services_use_the_image_their_command_needs(compose: dict[str, Any]) -> None:
    targets = set(re.findall(r"^FROM \S+ AS (\S+)$", DOCKERFILE.read_text(), flags=re.M))
    needs_torch = {"bootstrap", "trainer"}
    for name, service in ulasan_services(compose).items():
        build = service["build"]
        assert (PROJECT_ROOT / build["context"] / build["dockerfile"]) == DOCKERFILE
        assert build["target"] in targets, f"{name}: no stage {build['target']}"
        want = "trainer" if name in needs_torch else "serving"
        assert build["target"] == want, f"{name} runs on the {build['target']} image"
    assert {"bootstrap", "trainer", "worker", "gateway", "demo"} <= set(ulasan_services(compose))


def test_demo_replays_a_file_the_image_ships(compose: dict[str, Any]) -> None:
    demo = services(compose)["demo"]
    assert demo["profiles"] == ["demo"], "the demo runs only when asked for"
    (path,) = [w for w in demo["command"] if w.startswith("/app/data/")]
    assert (PROJECT_ROOT / "data" / Path(path).relative_to("/app/data")).is_file()
    assert "COPY data /app/data" in DOCKERFILE.read_text()


def test_workers_wait_for_the_champion_and_the_trainer_for_bootstrap(
    compose: dict[str, Any],
) -> None:
    worker = services(compose)["worker"]
    assert float(env_of(worker)["ULASAN_WORKER__MODEL_WAIT_S"]) > 0
    assert "bootstrap" not in (worker.get("depends_on") or {}), "workers start and wait"
    trainer = services(compose)["trainer"]
    assert trainer["depends_on"]["bootstrap"]["condition"] == "service_completed_successfully"
    assert services(compose)["bootstrap"]["restart"] == "no"


def test_gateway_requests_have_a_lane_of_their_own(
    compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The workers run every agent but the requests; the requests lane only those, in the
    consumer group the gateway's /ready checks."""
    lanes = {}
    for name in ("worker", "requests"):
        words, options = subcommand(services(compose)[name]["command"])
        assert words == ["worker"] and "--lane" in options
        (lane,) = [w.split("=", 1)[1] for w in services(compose)[name]["command"] if "--lane=" in w]
        lanes[name] = lane
    assert lanes == {"worker": "reviews", "requests": "requests"}
    for key in [k for k in os.environ if k.startswith("ULASAN_")]:
        monkeypatch.delenv(key)
    for key, value in env_of(services(compose)["requests"]).items():
        monkeypatch.setenv(key, value)
    lane = WorkerSettings().worker.model_copy(update={"lane": "requests"})
    gateway = env_of(services(compose)["gateway"])
    assert gateway["ULASAN_GATEWAY__WORKER_GROUP"] == lane.group
    assert "requests" in services(compose)["gateway"]["depends_on"]


def test_ulasan_env_names_are_settings_fields(raw: dict[str, Any]) -> None:
    checked = 0
    for name, service in services(raw).items():
        for key in env_of(service):
            if key.startswith("ULASAN_"):
                assert key in KNOWN_ENV, f"{name}: {key} is not a settings field"
                checked += 1
    assert checked, "no service sets any ULASAN_* variable"


def test_each_service_env_builds_its_settings(
    compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    classes = {
        "worker": WorkerSettings,
        "requests": WorkerSettings,
        "gateway": GatewaySettings,
        "trainer": TrainerSettings,
        "ui": UiSettings,
    }
    for name, cls in classes.items():
        with monkeypatch.context() as m:
            for key in list(os.environ):
                if key.startswith("ULASAN_"):
                    m.delenv(key)
            env = env_of(services(compose)[name])
            for key, value in env.items():
                m.setenv(key, value)
            settings = cls()
        assert settings.kafka.bootstrap_servers == "kafka:9092"
        assert settings.postgres.password == SECRETS["ULASAN_POSTGRES__PASSWORD"]
        assert settings.mlflow.uri == "http://mlflow:5000"
        assert settings.prometheus.register_targets is False


def test_gateway_requires_keys_and_admin_routes_an_admin_key(
    compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    for key in list(os.environ):
        if key.startswith("ULASAN_"):
            monkeypatch.delenv(key)
    for key, value in env_of(services(compose)["gateway"]).items():
        monkeypatch.setenv(key, value)
    guard = Guard(GatewaySettings().gateway)
    assert guard.auth_required
    with pytest.raises(Unauthenticated):
        guard.authenticate(None, "10.0.0.9")
    with pytest.raises(Unauthenticated):
        guard.authenticate("a guess", "10.0.0.9")
    with pytest.raises(Forbidden):
        guard.require_admin(guard.authenticate(APP_KEY, "10.0.0.9"))
    guard.require_admin(guard.authenticate(ADMIN_KEY, "10.0.0.9"))


# ---- Prometheus, Alertmanager, Grafana -----------------------------------------------------


def mounted(service: dict[str, Any], target: str) -> Path:
    (source,) = [s for s, t in volume_specs(service) if t == target]
    return PROJECT_ROOT / source


def test_prometheus_discovers_every_worker_and_gateway_replica(compose: dict[str, Any]) -> None:
    prom = services(compose)["prometheus"]
    config = yaml.safe_load(mounted(prom, "/etc/prometheus/prometheus.yml").read_text())
    local = yaml.safe_load((PROJECT_ROOT / "deploy/prometheus/prometheus.yml").read_text())
    assert config["global"] == local["global"] and config["rule_files"] == local["rule_files"]
    (job,) = [j for j in config["scrape_configs"] if j["job_name"] == "ulasan"]
    assert "file_sd_configs" not in job, "a shared file mixes replicas"
    sd = {name: c["port"] for c in job["dns_sd_configs"] for name in c["names"]}
    worker_cmd = services(compose)["worker"]["command"]
    gateway_cmd = services(compose)["gateway"]["command"]
    lane_cmd = services(compose)["requests"]["command"]
    trainer_cmd = services(compose)["trainer"]["command"]
    trainer_port = next(w for w in trainer_cmd if w.startswith("--metrics-port="))
    assert sd == {
        "worker": int(next(w for w in worker_cmd if w.startswith("--metrics-port=")).split("=")[1]),
        "requests": int(next(w for w in lane_cmd if w.startswith("--metrics-port=")).split("=")[1]),
        # with auth on, the gateway serves /metrics on a port of its own (not behind its keys)
        "gateway": int(env_of(services(compose)["gateway"])["ULASAN_GATEWAY__METRICS_PORT"]),
        # the retraining consumer's /metrics (`ulasan trainer serve --metrics-port`)
        "trainer": int(trainer_port.split("=")[1]),
    }
    assert all(not w.startswith("--http-port=9464") for w in gateway_cmd)
    (targets,) = [a["static_configs"][0]["targets"] for a in config["alerting"]["alertmanagers"]]
    host, port = targets[0].split(":")
    assert host in services(compose)
    assert any(m["container"] == port for m in published(services(compose)[host]))


def test_prometheus_config_passes_promtool(compose: dict[str, Any], tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool comes with the prometheus package (make system-deps)"
    prom = services(compose)["prometheus"]
    root = tmp_path / "etc"
    (root / "rules").mkdir(parents=True)
    shutil.copy(mounted(prom, "/etc/prometheus/prometheus.yml"), root / "prometheus.yml")
    for rule in mounted(prom, "/etc/prometheus/rules").glob("*.yml"):
        shutil.copy(rule, root / "rules")
    done = subprocess.run(
        [promtool, "check", "config", str(root / "prometheus.yml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_prometheus_lifecycle_and_admin_apis_are_off(compose: dict[str, Any]) -> None:
    command = services(compose)["prometheus"]["command"]
    assert not any(
        flag.startswith(("--web.enable-lifecycle", "--web.enable-admin-api")) for flag in command
    )


def test_grafana_is_provisioned_and_closed_to_anonymous_users(compose: dict[str, Any]) -> None:
    grafana = services(compose)["grafana"]
    provisioning = mounted(grafana, "/etc/grafana/provisioning")
    assert (provisioning / "datasources" / "prometheus.yml").is_file()
    assert list((provisioning / "dashboards").glob("*.json"))
    assert env_of(grafana)["GF_AUTH_ANONYMOUS_ENABLED"] == "false"


# ---- structure -----------------------------------------------------------------------------


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


def test_long_running_services_have_health_checks_or_are_one_shot(
    compose: dict[str, Any],
) -> None:
    for name, service in services(compose).items():
        if service.get("restart") == "no" or name == "trainer":  # the trainer serves no HTTP
            continue
        check = service.get("healthcheck")
        assert check and check.get("test"), f"{name} has no healthcheck"


def test_base_images_are_pinned(compose: dict[str, Any]) -> None:
    for name, service in services(compose).items():
        image = service.get("image", "")
        if image.startswith("ulasan"):
            continue
        tag = image.rsplit(":", 1)[-1] if ":" in image else ""
        # a release, not a line: 3.9.1, v2.55.1; PostgreSQL's releases have two parts (16.10)
        exact = r"^v?\d+\.\d+\.\d+" if name != "postgres" else r"^\d+\.\d+-"
        assert re.search(exact, tag) or "@sha256:" in image, f"{name}: {image} floats"
