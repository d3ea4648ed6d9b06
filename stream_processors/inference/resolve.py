"""Find a serving folder from a model reference: a local folder or an MLflow registry URI.

``models:/ulasan-sentiment@champion`` and ``models:/ulasan-sentiment/3`` are resolved to a version
through the registry, and that version's serving-folder artifact is downloaded once into
``<state_dir>/models/<name>/<version>/`` (versions are immutable, so the cache never goes stale).
"""

from __future__ import annotations

import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from stream_processors.inference.errors import ModelFolderError, ModelResolutionError
from stream_processors.inference.manifest import MANIFEST_FILE, ModelManifest

if TYPE_CHECKING:
    from ulasan.settings import Settings

_MODELS_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/@]+)|/(?P<version>\d+))$")


@dataclass(frozen=True)
class ModelRef:
    """A parsed ``models:/`` URI: exactly one of ``alias`` and ``version`` is set."""

    name: str
    alias: str | None = None
    version: str | None = None


def parse_models_uri(ref: str) -> ModelRef | None:
    """``ModelRef`` for a ``models:/name@alias`` or ``models:/name/N`` URI, None for anything else.

    Raises :class:`ModelResolutionError` for a ``models:/`` URI of another shape.
    """
    if not ref.startswith("models:/"):
        return None
    m = _MODELS_URI.match(ref)
    if m is None:
        raise ModelResolutionError(
            f"{ref!r} is not a model URI ulasan understands: use models:/NAME@ALIAS or "
            "models:/NAME/VERSION"
        )
    return ModelRef(m["name"], alias=m["alias"], version=m["version"])


def resolve_model(ref: str | Path, settings: Settings) -> tuple[Path, str, str]:
    """``(serving folder, model name, model version)`` for ``ref``.

    A local folder gives its manifest's model name and version ``"local"``; a registry URI gives
    the registered name and the version number (aliases resolved now). Raises
    :class:`ModelResolutionError` when the registry cannot be reached or has no such model,
    :class:`ModelFolderError` when the folder is not a serving folder.
    """
    parsed = parse_models_uri(str(ref))
    if parsed is None:
        folder = Path(ref).expanduser()
        if not folder.is_dir():
            raise ModelResolutionError(
                f"{folder} is not a folder and not a models:/ URI (e.g. models:/"
                f"{settings.mlflow.registered_model}@champion)"
            )
        manifest = ModelManifest.read(folder)
        return folder, manifest.model_name, "local"
    return _download_version(parsed, settings)


def _download_version(ref: ModelRef, settings: Settings) -> tuple[Path, str, str]:
    import mlflow
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    uri = settings.mlflow.uri
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    try:
        if ref.alias is not None:
            mv = client.get_model_version_by_alias(ref.name, ref.alias)
        else:
            mv = client.get_model_version(ref.name, str(ref.version))
    except MlflowException as exc:
        raise ModelResolutionError(
            f"cannot resolve {_uri(ref)} at {uri}: {exc.message}. Is MLflow up "
            "(ulasan stack status) and does the model/alias exist?"
        ) from exc
    version = str(mv.version)
    target = Path(settings.state_dir) / "models" / ref.name / version
    if (target / MANIFEST_FILE).is_file():
        return target, ref.name, version
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{version}-", dir=target.parent))
    try:
        try:
            local = Path(
                mlflow.artifacts.download_artifacts(
                    artifact_uri=mv.source, dst_path=str(tmp), tracking_uri=uri
                )
            )
        except (MlflowException, OSError) as exc:
            raise ModelResolutionError(
                f"cannot download {ref.name} version {version} from {mv.source}: {exc}"
            ) from exc
        if not (local / MANIFEST_FILE).is_file():
            raise ModelFolderError(
                f"{ref.name} version {version} ({mv.source}) is not a ulasan serving folder: "
                f"no {MANIFEST_FILE}"
            )
        ModelManifest.read(local)
        try:
            local.rename(target)
        except OSError:
            # another process finished the same download first; its copy is identical
            if not (target / MANIFEST_FILE).is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target, ref.name, version


def _uri(ref: ModelRef) -> str:
    return f"models:/{ref.name}@{ref.alias}" if ref.alias else f"models:/{ref.name}/{ref.version}"
