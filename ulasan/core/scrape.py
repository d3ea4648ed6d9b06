"""Prometheus scrape targets (file_sd): how a process that serves /metrics gets scraped.

A ulasan process that serves /metrics calls :func:`register_target` when it starts and
:func:`unregister_target` when it stops; Prometheus picks the file up within seconds. The local
stack's Prometheus watches :func:`targets_dir`.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from ulasan.core.errors import ConfigError
from ulasan.core.settings import Settings

_TARGET_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")


def targets_dir(settings: Settings) -> Path:
    """The file_sd folder that the ``ulasan`` scrape job watches."""
    return settings.prometheus.targets_dir or settings.state_dir / "prometheus" / "targets"


def register_target(
    settings: Settings,
    name: str,
    port: int,
    host: str = "127.0.0.1",
    labels: dict[str, str] | None = None,
) -> Path:
    """Ask Prometheus to scrape ``http://host:port/metrics`` as process ``name``; returns the file.

    Re-registering the same ``name`` replaces its address. The file is written atomically, so
    Prometheus never reads half of it.
    """
    if not _TARGET_NAME.fullmatch(name):
        raise ConfigError(f"scrape target name {name!r} must match {_TARGET_NAME.pattern}")
    if not 0 < port < 65536:
        raise ConfigError(f"scrape target {name!r}: port {port} is not a TCP port")
    folder = targets_dir(settings)
    folder.mkdir(parents=True, exist_ok=True)
    entry = [{"targets": [f"{host}:{port}"], "labels": {"process": name, **(labels or {})}}]
    path = folder / f"{name}.json"
    tmp = folder / f".{name}.json.tmp"
    tmp.write_text(json.dumps(entry, indent=2) + "\n")
    tmp.replace(path)
    return path


def unregister_target(settings: Settings, name: str) -> bool:
    """Stop scraping process ``name``; True when it was registered."""
    path = targets_dir(settings) / f"{name}.json"
    existed = path.exists()
    path.unlink(missing_ok=True)
    return existed
