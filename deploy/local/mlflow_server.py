"""The MLflow tracking server of the local stack: SQLite backend, artifacts served by the server.

The backend store is ``state_dir/mlflow/mlflow.db`` (SQLite starts reliably and needs no extra
driver); artifacts go to ``state_dir/mlflow/artifacts`` through the server (``--serve-artifacts``),
so a client anywhere logs with nothing but the tracking URI.
"""

from __future__ import annotations

import os
import sys

from deploy.local.errors import ConfigError
from deploy.local.service import Service, http_error

LOCAL_HOSTS = ("127.0.0.1", "localhost")


class MLflowService(Service):
    """``mlflow server`` with one worker on 127.0.0.1."""

    name = "mlflow"

    def _host(self) -> str:
        host = self.settings.mlflow.host
        if host not in LOCAL_HOSTS:
            raise ConfigError(
                f"the local stack runs MLflow on 127.0.0.1, but ULASAN_MLFLOW__HOST is {host!r}"
            )
        return "127.0.0.1"

    def address(self) -> str:
        return f"http://{self._host()}:{self.settings.mlflow.port}"

    def check_prerequisites(self) -> None:
        # mlflow is a Python dependency of ulasan: it is in this interpreter's environment
        self._host()

    def ports(self) -> list[tuple[str, int, str]]:
        return [(self._host(), self.settings.mlflow.port, "ULASAN_MLFLOW__PORT")]

    def prepare(self) -> None:
        (self.dir / "artifacts").mkdir(parents=True, exist_ok=True)

    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--host",
            self._host(),
            "--port",
            str(self.settings.mlflow.port),
            "--workers",
            "1",
            "--backend-store-uri",
            f"sqlite:///{self.dir / 'mlflow.db'}",
            "--serve-artifacts",
            "--artifacts-destination",
            str(self.dir / "artifacts"),
        ]

    def env(self) -> dict[str, str]:
        # background job execution would start extra worker processes this stack does not need
        return {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}

    def health(self) -> str | None:
        return http_error(f"{self.address()}/health")
