"""The training run's MLflow tracking: one run with params, metrics, tags and artifacts, or
nothing at all when registration is off."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainer.errors import RegistryError

if TYPE_CHECKING:
    from ulasan.core.settings import Settings


def flat_params(prefix: str, data: Any) -> dict[str, Any]:
    """``data`` (nested dicts) as one level of dotted keys under ``prefix``."""
    if isinstance(data, dict):
        out: dict[str, Any] = {}
        for key, value in data.items():
            out.update(flat_params(f"{prefix}.{key}" if prefix else str(key), value))
        return out
    return {prefix: data}


def write_json(path: Path, data: Any) -> Path:
    """Write ``data`` as indented JSON (parents created); the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")
    return path


def report_metrics(prefix: str, report: dict[str, Any]) -> dict[str, float | None]:
    """A classification report's accuracy, macro-F1, ECE and per-class F1 as run metrics."""
    out: dict[str, float | None] = {
        f"{prefix}_accuracy": report["accuracy"],
        f"{prefix}_macro_f1": report["macro_f1"],
        f"{prefix}_ece": report.get("ece"),
    }
    for label, scores in report["per_class"].items():
        out[f"{prefix}_f1_{label}"] = scores["f1"]
    return out


class Tracker:
    """One MLflow run (or nothing, when ``settings`` is None): params, metrics, artifacts."""

    def __init__(self, settings: Settings | None) -> None:
        self.settings = settings
        self.run_id: str | None = None
        self._client: Any = None

    @contextmanager
    def run(self, run_name: str) -> Iterator[Tracker]:
        """Start the run, yield, and end it FINISHED (or FAILED when the body raised)."""
        if self.settings is None:
            yield self
            return
        self.run_id = self._start(self.settings, run_name)
        status = "FAILED"
        try:
            yield self
            status = "FINISHED"
        finally:
            self._client.set_terminated(self.run_id, status=status)

    def _start(self, settings: Settings, run_name: str) -> str:
        from mlflow import MlflowClient
        from mlflow.exceptions import MlflowException

        uri = settings.mlflow.uri
        self._client = MlflowClient(tracking_uri=uri, registry_uri=uri)
        try:
            name = settings.mlflow.experiment
            experiment = self._client.get_experiment_by_name(name)
            experiment_id = (
                experiment.experiment_id
                if experiment is not None
                else self._client.create_experiment(name)
            )
            run = self._client.create_run(experiment_id, run_name=run_name)
        except (MlflowException, OSError) as exc:
            raise RegistryError(
                f"cannot start an MLflow run at {uri}: {exc} (is the stack up? `ulasan stack "
                "up`; or train offline with --no-register)"
            ) from exc
        return str(run.info.run_id)

    def params(self, params: dict[str, Any]) -> None:
        if self.run_id is None:
            return
        from mlflow.entities import Param

        items = [Param(k, str(v)[:6000]) for k, v in params.items()]
        for start in range(0, len(items), 100):
            self._client.log_batch(self.run_id, params=items[start : start + 100])

    def metrics(self, metrics: Mapping[str, float | None], step: int | None = None) -> None:
        if self.run_id is None:
            return
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [
            Metric(k.replace("@", "_"), float(v), now, step or 0)
            for k, v in metrics.items()
            if v is not None
        ]
        if items:
            self._client.log_batch(self.run_id, metrics=items)

    def tags(self, tags: dict[str, str]) -> None:
        if self.run_id is not None:
            for key, value in tags.items():
                self._client.set_tag(self.run_id, key, value)

    def artifact(self, path: Path, artifact_path: str | None = None) -> None:
        if self.run_id is None:
            return
        if path.is_dir():
            self._client.log_artifacts(self.run_id, str(path), artifact_path=artifact_path)
        else:
            self._client.log_artifact(self.run_id, str(path), artifact_path=artifact_path)
