"""Prometheus for the local stack, and the file_sd registry through which processes get scraped.

``deploy/prometheus/prometheus.yml`` is the one config; the local stack renders a copy into
``state_dir/prometheus/`` with its own listen address and absolute paths (the rules stay in the
repository). Processes register their /metrics address with :mod:`ulasan.core.scrape`; this
Prometheus watches that folder.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import yaml

from deploy.local.errors import ConfigError
from deploy.local.service import Service, http_error, require_program
from ulasan.core.scrape import targets_dir
from ulasan.core.settings import Settings

CONFIG_DIR = Path(__file__).resolve().parent.parent / "prometheus"
CONFIG = CONFIG_DIR / "prometheus.yml"
ULASAN_JOB = "ulasan"
LOCAL_HOSTS = ("127.0.0.1", "localhost")


def render_config(settings: Settings, source: Path = CONFIG) -> dict[str, Any]:
    """The repository config adapted to the local stack: own address, absolute paths."""
    try:
        config: dict[str, Any] = yaml.safe_load(source.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read the Prometheus config {source}: {exc}") from exc
    base = source.parent
    config["rule_files"] = [str(base / pattern) for pattern in config.get("rule_files", [])]
    own = f"{settings.prometheus.host}:{settings.prometheus.port}"
    jobs = {job["job_name"]: job for job in config.get("scrape_configs", [])}
    if "prometheus" not in jobs or ULASAN_JOB not in jobs:
        raise ConfigError(f"{source} must define the scrape jobs 'prometheus' and '{ULASAN_JOB}'")
    jobs["prometheus"]["static_configs"] = [{"targets": [own]}]
    for sd in jobs[ULASAN_JOB].get("file_sd_configs", []):
        sd["files"] = [str(targets_dir(settings) / Path(pattern).name) for pattern in sd["files"]]
    return config


class PrometheusService(Service):
    """The Debian ``prometheus`` binary with storage in ``state_dir/prometheus/data``."""

    name = "prometheus"

    @property
    def config_path(self) -> Path:
        return self.dir / "prometheus.yml"

    def _host(self) -> str:
        host = self.settings.prometheus.host
        if host not in LOCAL_HOSTS:
            raise ConfigError(
                "the local stack runs Prometheus on 127.0.0.1, "
                f"but ULASAN_PROMETHEUS__HOST is {host!r}"
            )
        return "127.0.0.1"

    def address(self) -> str:
        return f"http://{self._host()}:{self.settings.prometheus.port}"

    def check_prerequisites(self) -> None:
        require_program("prometheus", "prometheus", "Prometheus")

    def ports(self) -> list[tuple[str, int, str]]:
        return [(self._host(), self.settings.prometheus.port, "ULASAN_PROMETHEUS__PORT")]

    def prepare(self) -> None:
        (self.dir / "data").mkdir(parents=True, exist_ok=True)
        targets_dir(self.settings).mkdir(parents=True, exist_ok=True)
        rendered = yaml.safe_dump(render_config(self.settings), sort_keys=False)
        self.config_path.write_text(
            f"# rendered from {CONFIG} by `ulasan stack up`; edit that file instead\n{rendered}"
        )

    def command(self) -> list[str]:
        binary = shutil.which("prometheus") or "prometheus"
        return [
            binary,
            f"--config.file={self.config_path}",
            f"--storage.tsdb.path={self.dir / 'data'}",
            "--storage.tsdb.retention.time=7d",
            f"--web.listen-address={self._host()}:{self.settings.prometheus.port}",
            # lets tests and tools reload the config with POST /-/reload
            "--web.enable-lifecycle",
        ]

    def health(self) -> str | None:
        return http_error(f"{self.address()}/-/ready")
