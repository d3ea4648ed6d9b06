"""The processes ``ulasan run`` serves besides the workers: gateway, trainer consumer and UI,
their ports, readiness, and the table of addresses printed once they are up."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

from ulasan.core.settings import Settings
from ulasan.procs import ULASAN_BIN, Service, child_env, free_port

#: Preferred ports (a free one is taken when these are busy).
GATEWAY_HTTP_PORT = 8080
GATEWAY_GRPC_PORT = 50051
UI_PORT = 8501
#: the trainer consumer's /metrics (RetrainConfig.metrics_port's default)
TRAINER_METRICS_PORT = 9463


@dataclass(frozen=True)
class Ports:
    """Where the gateway and the UI listen (UI None: ``ulasan ui`` is not available), and
    the trainer consumer's /metrics (None: its configured port)."""

    http: int
    grpc: int
    ui: int | None
    trainer_metrics: int | None = None

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.http}"


def ui_available() -> bool:
    """Whether this installation has ``ulasan ui``: read off the command line's app when this
    process runs it (no second start-up), else asked of ``ulasan ui --help``."""
    cli = sys.modules.get("ulasan.cli")  # not imported here: the command line imports us
    app = getattr(cli, "app", None)
    if app is not None:
        names = {c.name for c in app.registered_commands}
        return "ui" in names | {g.name for g in app.registered_groups}
    return ui_command_answers()


def ui_command_answers() -> bool:
    """Whether ``ulasan ui --help`` succeeds (a start-up of the command line: seconds)."""
    try:
        done = subprocess.run(
            [str(ULASAN_BIN), "ui", "--help"],
            capture_output=True,
            timeout=120,
            check=False,
            env=child_env(),
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def pick_ports(*, with_ui: bool) -> Ports:
    return Ports(
        http=free_port(GATEWAY_HTTP_PORT),
        grpc=free_port(GATEWAY_GRPC_PORT),
        ui=free_port(UI_PORT) if with_ui else None,
        trainer_metrics=free_port(TRAINER_METRICS_PORT),
    )


@dataclass(frozen=True)
class ServiceSpec:
    """What the supporting services share: where they log, the topics, the consumer groups."""

    log_dir: Path
    stem: str
    prefix: str
    app_id: str
    ports: Ports
    train_config: Path | None = None
    #: the consumer group that scores the gateway's requests (None: ``app_id``'s workers)
    requests_group: str | None = None

    def _log(self, name: str) -> Path:
        return self.log_dir / f"{self.stem}-{name}.log"

    def gateway_env(self) -> dict[str, str]:
        """What the gateway and the UI read to find the gateway and the topics."""
        return {
            "ULASAN_GATEWAY__TOPIC_PREFIX": self.prefix,
            "ULASAN_GATEWAY__HTTP_PORT": str(self.ports.http),
            "ULASAN_GATEWAY__GRPC_PORT": str(self.ports.grpc),
            # /ready checks that this group holds the request partitions
            "ULASAN_GATEWAY__WORKER_GROUP": self.requests_group or self.app_id,
            "ULASAN_WORKER__TOPIC_PREFIX": self.prefix,
        }

    def gateway(self) -> Service:
        args = ["gateway", "serve", "--http-port", str(self.ports.http)]
        args += ["--grpc-port", str(self.ports.grpc)]
        if self.prefix:  # isolated topics (tests): not a target of the shared Prometheus
            args.append("--no-register")
        return Service("gateway", args, child_env(self.gateway_env()), self._log("gateway"))

    def trainer(self) -> Service:
        overrides = {
            "ULASAN_RETRAIN__TOPIC_PREFIX": self.prefix,
            "ULASAN_RETRAIN__GROUP_ID": f"{self.app_id}-trainer",
        }
        if self.train_config is not None:
            overrides["ULASAN_RETRAIN__CONFIG"] = str(self.train_config)
        if self.ports.trainer_metrics is not None:
            overrides["ULASAN_RETRAIN__METRICS_PORT"] = str(self.ports.trainer_metrics)
        args = ["trainer", "serve"]
        if self.prefix:  # isolated topics (tests): not a target of the shared Prometheus
            args.append("--no-register")
        return Service("trainer", args, child_env(overrides), self._log("trainer"))

    def ui(self) -> Service | None:
        if self.ports.ui is None:
            return None
        args = ["ui", "--port", str(self.ports.ui)]
        return Service("ui", args, child_env(self.gateway_env()), self._log("ui"))


def wait_gateway(
    ports: Ports, gateway: Service, check: Callable[[], None], timeout_s: float = 180.0
) -> bool:
    """Until the gateway answers ``/ready`` (True) or ``timeout_s`` passed (False); ``check``
    (the supervisor's) runs between tries, so a death is reported and restarted meanwhile."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        check()
        if gateway.alive():
            try:
                if httpx.get(ports.gateway_url + "/ready", timeout=5).status_code == 200:
                    return True
            except httpx.HTTPError:
                pass
        time.sleep(1.0)
    return False


def address_lines(
    settings: Settings, ports: Ports | None, metrics_ports: list[int], logs: Path
) -> list[str]:
    """``name  address`` lines: what a person opens or types, one line each."""
    pg = settings.postgres
    lines = []
    if ports is not None:
        ui = (
            f"http://127.0.0.1:{ports.ui}"
            if ports.ui is not None
            else "not started: this installation has no `ulasan ui`"
        )
        lines += [
            f"ui  {ui}",
            f"http docs  {ports.gateway_url}/docs  (POST /predict, /predict/batch, /feedback)",
            f"grpc  127.0.0.1:{ports.grpc}  (service ulasan.v1.Gateway: Predict, PredictStream)",
        ]
    lines += [
        f"mlflow  {settings.mlflow.uri}  (model {settings.mlflow.registered_model})",
        f"prometheus  {settings.prometheus.url}",
        f"postgresql  psql postgresql://{pg.user}@{pg.host}:{pg.port}/{pg.dbname}",
        f"kafka  {settings.kafka.bootstrap_servers}",
        "metrics  " + _metrics_addresses(metrics_ports, ports),
        f"logs  {logs}",
    ]
    return lines


def _metrics_addresses(worker_ports: list[int], ports: Ports | None) -> str:
    """The workers' /metrics addresses, then the trainer's when the job chose its port."""
    text = ", ".join(f"http://127.0.0.1:{p}/metrics" for p in worker_ports)
    if ports is not None and ports.trainer_metrics is not None:
        text += f" (workers), http://127.0.0.1:{ports.trainer_metrics}/metrics (trainer)"
    return text
