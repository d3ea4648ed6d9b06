"""The MLflow model registry side of ulasan: log serving folders, register versions, read aliases.

Every registered version of ``ulasan-sentiment`` (``Settings().mlflow.registered_model``) points
at a run's ``serving/`` artifact folder (what ``resolve_model`` downloads) and carries tags:
the training dataset hash, the git commit, the feature and lexicon versions, and, once scored,
its accuracy and macro-F1 on a named evaluation set (with that set's hash). Aliases:
``candidate`` (newest registered) and ``champion`` (what serves; moved only by the gate).
The same run also keeps the PyTorch ``checkpoint/`` the serving folder was exported from
(weights, tokenizer, ``ulasan_checkpoint.json``): what a retrain continues from
(:func:`download_checkpoint`), and the served graph as an MLflow ``onnx`` flavor (``onnx/``,
with the tokenizer and manifest beside it as extra files), which ``mlflow.onnx.load_model``,
MLServer's and KServe's MLflow runtimes load as they are.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainer.errors import RegistryError
from ulasan.core.inference.manifest import PROFILE_FILE, ModelManifest
from ulasan.core.registry import (
    CANDIDATE,
    CHAMPION,
    CHECKPOINT_ARTIFACT,
    CHECKPOINT_META_FILE,
    SERVING_ARTIFACT,
    TAG_DATASET_HASH,
    TAG_EVAL_ACCURACY,
    TAG_EVAL_HASH,
    TAG_EVAL_MACRO_F1,
    TAG_EVAL_N,
    TAG_EVAL_NAME,
    TAG_FEATURE_VERSION,
    TAG_GIT_COMMIT,
    TAG_LEXICON_VERSION,
    TAG_MODEL_NAME,
    TAG_RUN_DIR,
    client,
)

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from ulasan.core.settings import Settings

PROJECT_ROOT = Path(__file__).resolve().parent.parent
#: The run's MLflow ``onnx`` flavor of the served (int8) graph: ``runs:/<run>/onnx``.
ONNX_FLAVOR_ARTIFACT = "onnx"


@dataclass(frozen=True)
class EvalScores:
    """A model's scores on one evaluation set (identified by the hash of its examples)."""

    accuracy: float
    macro_f1: float
    n: int
    dataset_hash: str
    dataset_name: str = "eval"

    @classmethod
    def from_report(cls, report: Mapping[str, Any], *, dataset_hash: str, name: str) -> EvalScores:
        """From a :func:`trainer.metrics.classification_report` dict."""
        return cls(
            accuracy=float(report["accuracy"]),
            macro_f1=float(report["macro_f1"]),
            n=int(report["n"]),
            dataset_hash=dataset_hash,
            dataset_name=name,
        )

    def to_tags(self) -> dict[str, str]:
        return {
            TAG_EVAL_NAME: self.dataset_name,
            TAG_EVAL_HASH: self.dataset_hash,
            TAG_EVAL_N: str(self.n),
            TAG_EVAL_ACCURACY: f"{self.accuracy:.6f}",
            TAG_EVAL_MACRO_F1: f"{self.macro_f1:.6f}",
        }

    @classmethod
    def from_tags(cls, tags: Mapping[str, str]) -> EvalScores | None:
        """The scores recorded in a version's tags, None when it was never scored."""
        try:
            return cls(
                accuracy=float(tags[TAG_EVAL_ACCURACY]),
                macro_f1=float(tags[TAG_EVAL_MACRO_F1]),
                n=int(tags[TAG_EVAL_N]),
                dataset_hash=tags[TAG_EVAL_HASH],
                dataset_name=tags.get(TAG_EVAL_NAME, "eval"),
            )
        except (KeyError, ValueError):
            return None


@dataclass(frozen=True)
class ModelVersionInfo:
    """One registered version, as the registry knows it."""

    name: str
    version: str
    source: str
    run_id: str | None
    aliases: tuple[str, ...] = ()
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def uri(self) -> str:
        """``models:/NAME/VERSION``, what :func:`resolve_model` takes."""
        return f"models:/{self.name}/{self.version}"

    @property
    def scores(self) -> EvalScores | None:
        return EvalScores.from_tags(self.tags)


def dataset_hash(examples: Iterable[Any]) -> str:
    """sha256 (hex, 16 chars) of ``(text, label)`` pairs in order; labels lower-cased.

    Accepts ``(text, label)`` tuples or objects with ``text`` and ``label`` attributes.
    """
    digest = hashlib.sha256()
    count = 0
    for ex in examples:
        text, label = (ex.text, ex.label) if hasattr(ex, "text") else ex
        digest.update(str(text).encode("utf-8"))
        digest.update(b"\x1f")
        digest.update(str(label).strip().lower().encode("utf-8"))
        digest.update(b"\x1e")
        count += 1
    if count == 0:
        raise RegistryError("cannot hash an empty dataset")
    return digest.hexdigest()[:16]


def git_commit(repo: Path = PROJECT_ROOT, *, ignore: Path | None = None) -> str:
    """``HEAD``'s commit, with ``-dirty`` when tracked files changed (other than under
    ``ignore``: the folder being written, e.g. the shipped model's); ``unknown`` outside git."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", ".", *_excluded(ignore)],
            cwd=repo,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{head}-dirty" if dirty else head


def _excluded(folder: Path | None) -> list[str]:
    """A git pathspec leaving ``folder`` out (none for None)."""
    return [] if folder is None else [f":(exclude){Path(folder).resolve()}"]


def log_serving_folder(
    settings: Settings,
    run_id: str,
    folder: str | Path,
    *,
    reports: Mapping[str, Any] | None = None,
    onnx_flavor: bool = True,
) -> str:
    """Log ``folder`` as the run's ``serving/`` artifact, the served graph as an MLflow ``onnx``
    flavor (``onnx/``; ``onnx_flavor=False`` skips it, which needs a graph onnx can parse),
    its ``profile.json`` (if any) at the artifact root, and each report as
    ``reports/<name>.json``. Returns the ``runs:/`` URI of the serving folder."""
    from mlflow.exceptions import MlflowException

    folder = Path(folder)
    manifest = ModelManifest.read(folder)
    mc = client(settings)
    try:
        mc.log_artifacts(run_id, str(folder), artifact_path=SERVING_ARTIFACT)
        if onnx_flavor:
            log_onnx_flavor(mc, run_id, folder, manifest)
        if (folder / PROFILE_FILE).is_file():
            mc.log_artifact(run_id, str(folder / PROFILE_FILE))
        if reports:
            with tempfile.TemporaryDirectory() as tmp:
                for name, report in reports.items():
                    path = Path(tmp) / f"{name}.json"
                    path.write_text(json.dumps(_plain(report), indent=2), encoding="utf-8")
                mc.log_artifacts(run_id, tmp, artifact_path="reports")
    except MlflowException as exc:
        raise RegistryError(f"cannot log {folder} to run {run_id}: {exc.message}") from exc
    return f"runs:/{run_id}/{SERVING_ARTIFACT}"


def log_onnx_flavor(mc: MlflowClient, run_id: str, folder: Path, manifest: ModelManifest) -> str:
    """Log the serving folder's graph as the run's MLflow ``onnx`` flavor; its ``runs:/`` URI.

    ``mlflow.onnx.save_model`` writes the flavor (``MLmodel``, the graph, its requirements)
    into a temporary folder that the client then logs to the run: ``mlflow.onnx.log_model``
    would need the process-wide tracking URI and active run, which ulasan never sets. The
    folder's other files (tokenizer, manifest, profile) travel as the flavor's extra files.
    """
    import mlflow.onnx
    import onnx

    graph = onnx.load(str(folder / manifest.model_file))
    extra = sorted(str(p) for p in folder.iterdir() if p.is_file() and p.suffix != ".onnx")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / ONNX_FLAVOR_ARTIFACT
        mlflow.onnx.save_model(
            graph,
            str(out),
            save_as_external_data=False,
            extra_files=extra,
            metadata={"ulasan.model_name": manifest.model_name, "labels": list(manifest.labels)},
        )
        mc.log_artifacts(run_id, str(out), artifact_path=ONNX_FLAVOR_ARTIFACT)
    return f"runs:/{run_id}/{ONNX_FLAVOR_ARTIFACT}"


def _plain(value: Any) -> Any:
    """JSON-ready form of a report: dicts, lists, dataclasses, pydantic models, paths."""
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _plain(dataclasses.asdict(value))
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_plain(v) for v in value]
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)


def register_candidate(
    settings: Settings,
    run_id: str,
    folder: str | Path,
    *,
    train_dataset_hash: str,
    scores: EvalScores | None = None,
    commit: str | None = None,
    alias: str | None = CANDIDATE,
    extra_tags: Mapping[str, str] | None = None,
) -> ModelVersionInfo:
    """Register the run's ``serving/`` artifact (logged by :func:`log_serving_folder`) as a new
    version of the registered model, tag it and point ``alias`` (``candidate``) at it.

    ``folder`` is the local copy of that serving folder (its manifest gives the feature and
    lexicon versions). Raises :class:`RegistryError` when MLflow refuses.
    """
    from mlflow.exceptions import MlflowException

    manifest = ModelManifest.read(Path(folder))
    name = settings.mlflow.registered_model
    tags = {
        TAG_DATASET_HASH: train_dataset_hash,
        TAG_GIT_COMMIT: commit or git_commit(),
        TAG_FEATURE_VERSION: manifest.feature_version,
        TAG_LEXICON_VERSION: manifest.lexicon_version,
        TAG_MODEL_NAME: manifest.model_name,
        **(scores.to_tags() if scores else {}),
        **(extra_tags or {}),
    }
    mc = client(settings)
    try:
        _ensure_registered_model(mc, name)
        mv = mc.create_model_version(
            name, source=f"runs:/{run_id}/{SERVING_ARTIFACT}", run_id=run_id, tags=tags
        )
        if alias:
            mc.set_registered_model_alias(name, alias, str(mv.version))
    except MlflowException as exc:
        raise RegistryError(f"cannot register {name} from run {run_id}: {exc.message}") from exc
    return get_version(settings, version=str(mv.version))


def _ensure_registered_model(mc: MlflowClient, name: str) -> None:
    from mlflow.exceptions import MlflowException

    try:
        mc.get_registered_model(name)
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise
        try:
            mc.create_registered_model(
                name, description="ulasan Indonesian review sentiment (ONNX serving folders)"
            )
        except MlflowException as race:
            if race.error_code != "RESOURCE_ALREADY_EXISTS":
                raise


def get_version(
    settings: Settings, *, version: str | int | None = None, alias: str | None = None
) -> ModelVersionInfo:
    """A version by number or by alias (exactly one); :class:`RegistryError` when missing."""
    from mlflow.exceptions import MlflowException

    if (version is None) == (alias is None):
        raise RegistryError("give exactly one of version and alias")
    name = settings.mlflow.registered_model
    mc = client(settings)
    try:
        if alias is not None:
            mv = mc.get_model_version_by_alias(name, alias)
        else:
            mv = mc.get_model_version(name, str(version))
    except MlflowException as exc:
        what = f"alias {alias!r}" if alias is not None else f"version {version}"
        raise RegistryError(
            f"{name} has no {what} at {settings.mlflow.uri}: {exc.message}"
        ) from exc
    return ModelVersionInfo(
        name=name,
        version=str(mv.version),
        source=str(mv.source),
        run_id=mv.run_id,
        aliases=tuple(mv.aliases or ()),
        tags=dict(mv.tags or {}),
    )


def find_alias(settings: Settings, alias: str) -> ModelVersionInfo | None:
    """The version holding ``alias``, None when the alias (or the model) does not exist yet."""
    from mlflow.exceptions import MlflowException

    name = settings.mlflow.registered_model
    try:
        aliases = client(settings).get_registered_model(name).aliases or {}
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            return None
        raise RegistryError(f"cannot read {name} at {settings.mlflow.uri}: {exc.message}") from exc
    if alias not in aliases:
        return None
    return get_version(settings, version=aliases[alias])


def champion(settings: Settings) -> ModelVersionInfo | None:
    """The version serving now (alias ``champion``), None before the first promotion."""
    return find_alias(settings, CHAMPION)


def champion_scores(settings: Settings) -> EvalScores | None:
    """The champion's recorded evaluation scores, None without a champion or scores."""
    current = champion(settings)
    return current.scores if current else None


def set_tags(settings: Settings, version: str, tags: Mapping[str, str]) -> None:
    """Set tags on one version of the registered model."""
    from mlflow.exceptions import MlflowException

    name = settings.mlflow.registered_model
    mc = client(settings)
    try:
        for key, value in tags.items():
            mc.set_model_version_tag(name, str(version), key, str(value))
    except MlflowException as exc:
        raise RegistryError(f"cannot tag {name} version {version}: {exc.message}") from exc


def set_alias(settings: Settings, alias: str, version: str) -> None:
    """Point ``alias`` at ``version`` (moving it from wherever it was)."""
    from mlflow.exceptions import MlflowException

    name = settings.mlflow.registered_model
    try:
        client(settings).set_registered_model_alias(name, alias, str(version))
    except MlflowException as exc:
        raise RegistryError(f"cannot set {name}@{alias} -> {version}: {exc.message}") from exc


@dataclass(frozen=True)
class CheckpointSource:
    """Where a version's PyTorch checkpoint was found: the local folder and how it got there."""

    folder: Path
    origin: str  # "mlflow:runs:/<run>/checkpoint" or "local:<path>"
    meta: dict[str, Any]


def read_checkpoint_meta(folder: Path) -> dict[str, Any]:
    """The checkpoint's ``ulasan_checkpoint.json`` ({} when it has none: older runs)."""
    path = folder / CHECKPOINT_META_FILE
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise RegistryError(f"unreadable {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise RegistryError(f"{path} is not a JSON object")
    return data


def _is_checkpoint(folder: Path) -> bool:
    return (folder / "config.json").is_file() and (folder / "tokenizer.json").is_file()


def download_checkpoint(
    settings: Settings, version: ModelVersionInfo, dest: str | Path
) -> CheckpointSource:
    """The PyTorch checkpoint ``version`` was exported from, as a local folder.

    First the ``checkpoint/`` artifact of the version's run (downloaded into ``dest``), then,
    for runs that did not log one, the run's local folder (tag ``ulasan.run_dir``) when it is
    on this machine (copied into ``dest``). Raises :class:`RegistryError` naming both places
    when neither has it.
    """
    from mlflow.exceptions import MlflowException

    if version.run_id is None:
        raise RegistryError(f"{version.uri} has no run: no checkpoint to continue from")
    mc = client(settings)
    tried: list[str] = []
    try:
        listed = {Path(f.path).name for f in mc.list_artifacts(version.run_id, CHECKPOINT_ARTIFACT)}
        if {"config.json", "tokenizer.json"} <= listed:
            target = Path(dest)
            target.mkdir(parents=True, exist_ok=True)
            folder = Path(mc.download_artifacts(version.run_id, CHECKPOINT_ARTIFACT, str(target)))
            if _is_checkpoint(folder):
                return CheckpointSource(
                    folder,
                    f"mlflow:runs:/{version.run_id}/{CHECKPOINT_ARTIFACT}",
                    read_checkpoint_meta(folder),
                )
        tried.append(f"run {version.run_id} has no {CHECKPOINT_ARTIFACT}/ artifact")
        run_dir = mc.get_run(version.run_id).data.tags.get(TAG_RUN_DIR)
    except MlflowException as exc:
        raise RegistryError(
            f"cannot read the checkpoint of {version.uri} (run {version.run_id}): {exc.message}"
        ) from exc
    if run_dir:
        local = Path(run_dir) / CHECKPOINT_ARTIFACT
        if _is_checkpoint(local):
            # a copy: the caller may complete its metadata; the run's own folder stays as it is
            folder = Path(dest) / CHECKPOINT_ARTIFACT
            shutil.copytree(local, folder, dirs_exist_ok=True)
            return CheckpointSource(folder, f"local:{local}", read_checkpoint_meta(folder))
        tried.append(f"no checkpoint at the run's local folder {local}")
    else:
        tried.append(f"run {version.run_id} has no {TAG_RUN_DIR} tag")
    raise RegistryError(f"no checkpoint for {version.uri}: " + "; ".join(tried))
