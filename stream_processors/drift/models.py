"""Per serving model version, loaded once: the drift reference (its profile and the registry's
baseline accuracy) and the tokenizer's unknown-token counter."""

from __future__ import annotations

import asyncio
import logging

from stream_processors.drift.errors import DriftError
from stream_processors.drift.reference import Reference
from stream_processors.inference.batching import PredictorHolder
from stream_processors.settings import WorkerSettings
from stream_processors.wiring import LoopDeps, TokenCounter
from ulasan.core.inference.tokens import UnknownTokens
from ulasan.core.registry import TAG_EVAL_ACCURACY
from ulasan.core.registry import client as registry_client

log = logging.getLogger(__name__)

_BASELINES: dict[tuple[str, str], float | None] = {}


class ModelCaches:
    """What the drift agents need of the serving model, cached by version in ``loop``."""

    def __init__(self, settings: WorkerSettings, holder: PredictorHolder, loop: LoopDeps) -> None:
        self.settings = settings
        self.holder = holder
        self.loop = loop

    def token_counter(self) -> TokenCounter | None:
        """The current version's unknown-token counter; None when it has no serving folder."""
        predictor = self.holder.current
        version = predictor.model_version
        if version not in self.loop.tokens:
            folder = getattr(predictor, "folder", None)
            self.loop.tokens[version] = UnknownTokens(folder) if folder is not None else None
        return self.loop.tokens[version]

    async def reference(self) -> Reference | None:
        """The current version's drift reference; None (logged once) when it has none."""
        predictor = self.holder.current
        version = predictor.model_version
        if version not in self.loop.references:
            folder = getattr(predictor, "folder", None)
            try:
                if folder is None:
                    raise DriftError(f"model version {version} has no serving folder")
                baseline = await asyncio.get_running_loop().run_in_executor(
                    None, baseline_accuracy, self.settings, predictor.model_name, version
                )
                self.loop.references[version] = Reference.from_folder(
                    folder, model_version=version, baseline_accuracy=baseline
                )
            except DriftError as exc:
                log.error("no drift reference for version %s: %s", version, exc)
                self.loop.references[version] = None
        return self.loop.references[version]


def baseline_accuracy(settings: WorkerSettings, model_name: str, version: str) -> float | None:
    """The version's recorded accuracy on the fixed evaluation set (MLflow tag), None when
    the model is a local folder or the registry does not know it."""
    if not version.isdigit():
        return None
    key = (model_name, version)
    if key not in _BASELINES:
        from mlflow.exceptions import MlflowException

        try:
            mv = registry_client(settings).get_model_version(model_name, version)
            value = mv.tags.get(TAG_EVAL_ACCURACY)
            _BASELINES[key] = float(value) if value is not None else None
        except (MlflowException, OSError, ValueError) as exc:
            log.warning("no baseline accuracy for %s/%s: %s", model_name, version, exc)
            return None
    return _BASELINES[key]
