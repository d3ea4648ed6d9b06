"""The model registry's read side: names every process agrees on, and finding a serving folder.

The aliases, tag names and artifact folders are defined here once; the trainer writes them
(``trainer.registry``), workers and the drift agent read them.

A serving folder comes from a model reference: a local folder or an MLflow registry URI.

``models:/ulasan-sentiment@champion`` and ``models:/ulasan-sentiment/3`` are resolved to a version
through the registry, and that version's serving-folder artifact is downloaded once into
``<state_dir>/models/<name>/<version>/`` (versions are immutable, so the cache never goes stale).
The fp32 graph, which serving never loads, is fetched only when asked for.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ulasan.core.inference.errors import ModelFolderError, ModelResolutionError
from ulasan.core.inference.manifest import MANIFEST_FILE, ModelManifest

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from ulasan.core.settings import Settings

#: The run's serving folder artifact (ONNX, tokenizer, manifest): what :func:`resolve_model` gets.
SERVING_ARTIFACT = "serving"
#: The run's PyTorch checkpoint folder (Hugging Face ``save_pretrained`` + tokenizer).
CHECKPOINT_ARTIFACT = "checkpoint"
#: What a checkpoint was trained as: model name, labels, max_length, feature/lexicon versions.
CHECKPOINT_META_FILE = "ulasan_checkpoint.json"
#: The run tag holding the local run folder (``<run_dir>/checkpoint`` is the local copy).
TAG_RUN_DIR = "ulasan.run_dir"
CANDIDATE = "candidate"
CHAMPION = "champion"

TAG_DATASET_HASH = "ulasan.dataset_hash"
TAG_GIT_COMMIT = "ulasan.git_commit"
TAG_FEATURE_VERSION = "ulasan.feature_version"
TAG_LEXICON_VERSION = "ulasan.lexicon_version"
TAG_MODEL_NAME = "ulasan.model_name"
TAG_EVAL_NAME = "ulasan.eval.name"
TAG_EVAL_HASH = "ulasan.eval.dataset_hash"
TAG_EVAL_N = "ulasan.eval.n"
TAG_EVAL_ACCURACY = "ulasan.eval.accuracy"
TAG_EVAL_MACRO_F1 = "ulasan.eval.macro_f1"


def client(settings: Settings) -> MlflowClient:
    """An MLflow client for the configured tracking server (no global MLflow state is touched)."""
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=settings.mlflow.uri, registry_uri=settings.mlflow.uri)


def champion_uri(settings: Settings) -> str:
    """``models:/<registered model>@champion``: what serves, derived from the one setting."""
    return f"models:/{settings.mlflow.registered_model}@{CHAMPION}"


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


def resolve_model(
    ref: str | Path, settings: Settings, *, include_fp32: bool = False
) -> tuple[Path, str, str]:
    """``(serving folder, model name, model version)`` for ``ref``.

    ``include_fp32`` also downloads the unquantized graph (benchmarks, parity checks).

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
    return _download_version(parsed, settings, include_fp32=include_fp32)


def _download_version(
    ref: ModelRef, settings: Settings, *, include_fp32: bool
) -> tuple[Path, str, str]:
    import mlflow
    from mlflow.exceptions import MlflowException

    uri = settings.mlflow.uri
    mlflow_client = client(settings)
    try:
        if ref.alias is not None:
            mv = mlflow_client.get_model_version_by_alias(ref.name, ref.alias)
        else:
            mv = mlflow_client.get_model_version(ref.name, str(ref.version))
    except MlflowException as exc:
        raise ModelResolutionError(
            f"cannot resolve {_uri(ref)} at {uri}: {exc.message}. Is MLflow up "
            "(ulasan stack status) and does the model/alias exist?"
        ) from exc
    version = str(mv.version)
    if not mv.source:
        raise ModelResolutionError(f"{_uri(ref)} (version {version}) records no artifact source")
    source: str = mv.source
    target = Path(settings.state_dir) / "models" / ref.name / version
    if (target / MANIFEST_FILE).is_file():
        fp32 = ModelManifest.read(target).fp32_model_file
        if include_fp32 and fp32 and not (target / fp32).is_file():
            # download beside the cache, then move: a broken download never looks complete
            with tempfile.TemporaryDirectory(dir=target.parent) as part:
                _fetch(source, [fp32], Path(part), uri, what=f"{ref.name} version {version}")
                (Path(part) / fp32).replace(target / fp32)
        return target, ref.name, version
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{version}-", dir=target.parent))
    what = f"{ref.name} version {version} ({source})"
    try:
        local = tmp / "serving"
        local.mkdir()
        try:
            listed = mlflow.artifacts.list_artifacts(artifact_uri=source, tracking_uri=uri)
        except MlflowException as exc:
            raise ModelResolutionError(f"cannot list {what}: {exc.message}") from exc
        names = {Path(f.path).name for f in listed if not f.is_dir}
        if MANIFEST_FILE not in names:
            raise ModelFolderError(f"{what} is not a ulasan serving folder: no {MANIFEST_FILE}")
        _fetch(source, [MANIFEST_FILE], local, uri, what=what)
        manifest = ModelManifest.read(local)
        skip = (
            {manifest.fp32_model_file} if manifest.fp32_model_file and not include_fp32 else set()
        )
        _fetch(source, sorted(names - skip - {MANIFEST_FILE}), local, uri, what=what)
        try:
            local.rename(target)
        except OSError:
            # another process finished the same download first; its copy is identical
            if not (target / MANIFEST_FILE).is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target, ref.name, version


def _fetch(source: str, names: list[str], dst: Path, uri: str, *, what: str) -> None:
    """Download the files ``names`` of the artifact folder ``source`` into ``dst``."""
    import mlflow
    from mlflow.exceptions import MlflowException

    for name in names:
        try:
            mlflow.artifacts.download_artifacts(
                artifact_uri=f"{source.rstrip('/')}/{name}", dst_path=str(dst), tracking_uri=uri
            )
        except (MlflowException, OSError) as exc:
            raise ModelResolutionError(f"cannot download {name} of {what}: {exc}") from exc
        if not (dst / name).is_file():
            raise ModelResolutionError(f"downloading {name} of {what} wrote no file")


def _uri(ref: ModelRef) -> str:
    return f"models:/{ref.name}@{ref.alias}" if ref.alias else f"models:/{ref.name}/{ref.version}"
