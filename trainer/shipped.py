"""The shipped champion: a trained model kept in the repository (``models/<name>/``) so that a
fresh machine registers and serves it in seconds instead of training one first.

A shipped model folder holds:

- ``serving/``: the int8 ONNX serving folder (graph, tokenizer, lexicon, profile, manifest)
  without the fp32 graph;
- ``checkpoint/``: the PyTorch checkpoint it was exported from (weights stored as float16 to
  halve the size; transformers loads them back into float32), from which a retrain continues;
- ``card.json`` and ``MODEL_CARD.md``: the model card (data sources with hashes and licences,
  the training config, seed, time, machine, scores on every evaluation set, sizes, and the
  sha256 of every file, checked before registration).

``ulasan model ship RUN_DIR`` writes one from a finished ``ulasan train`` run folder;
``ulasan model register`` (and ``make run``/``ulasan bootstrap`` when the registry has no
champion) registers it in MLflow: an MLflow run with the checkpoint and serving folder as
artifacts, the fixed evaluation set scored now by the served graph, then the gate.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from trainer.config import TrainConfig, load_config
from trainer.errors import TrainerError
from trainer.evaluate import evaluate_predictor
from trainer.gate import GateConfig, run_gate
from trainer.pipeline.data import EVAL_SET_NAME, fixed_eval_set, load_training_data
from trainer.pipeline.tracking import Tracker
from trainer.registry import (
    EvalScores,
    ModelVersionInfo,
    dataset_hash,
    git_commit,
    log_serving_folder,
    register_candidate,
)
from ulasan.core.inference import ModelManifest, OnnxPredictor
from ulasan.core.registry import CHECKPOINT_ARTIFACT
from ulasan.core.settings import ProjectPaths, Settings, project_paths
from ulasan.core.text import FEATURE_VERSION, default_lexicon

CARD_FILE = "card.json"
CARD_MARKDOWN = "MODEL_CARD.md"
SERVING = "serving"
CHECKPOINT = "checkpoint"
WEIGHTS = "model.safetensors"
#: Tag on the MLflow run and the model version of a registered shipped model.
TAG_SHIPPED = "ulasan.shipped"

#: The data sets a shipped model may have read, each with its licence (data/README.md).
DATA_LICENCES = {
    "smsa": "Apache-2.0 (IndoNLU; data/smsa/LICENSE)",
    "nusax_id": "CC BY-SA 4.0 (NusaX; data/nusax_id/LICENSE)",
    "prdect_id": "CC BY 4.0 (PRDECT-ID; data/prdect_id/LICENSE)",
}
#: Evaluation-only files: recorded with their hash, never trained on.
EVAL_ONLY = {"smsa/test.tsv", "nusax_id/test.csv"}


class ShippedModelError(TrainerError):
    """A shipped model folder that is missing, incomplete, altered or built for other code."""


@dataclass(frozen=True)
class ShippedModel:
    """A shipped model folder and its card."""

    folder: Path
    card: dict[str, Any]

    @property
    def serving(self) -> Path:
        return self.folder / SERVING

    @property
    def checkpoint(self) -> Path:
        return self.folder / CHECKPOINT

    @property
    def name(self) -> str:
        return str(self.card["model_name"])


def default_folder(paths: ProjectPaths | None = None) -> Path:
    """``<models_dir>/ulasan-mini``: the champion the repository ships."""
    return (paths or project_paths()).models / "ulasan-mini"


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_hashes(folder: Path) -> dict[str, str]:
    """``relative path -> sha256`` of every file of ``serving/`` and ``checkpoint/``."""
    return {
        p.relative_to(folder).as_posix(): sha256(p)
        for sub in (SERVING, CHECKPOINT)
        for p in sorted((folder / sub).rglob("*"))
        if p.is_file()
    }


def load(folder: Path | None = None) -> ShippedModel | None:
    """The shipped model at ``folder`` (default :func:`default_folder`); None when there is none.

    Raises :class:`ShippedModelError` when the folder exists but its card is unreadable."""
    folder = folder or default_folder()
    path = folder / CARD_FILE
    if not path.is_file():
        return None
    try:
        card = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ShippedModelError(f"unreadable model card {path}: {exc}") from exc
    if not isinstance(card, dict) or "files" not in card or "model_name" not in card:
        raise ShippedModelError(f"{path} is not a ulasan model card (no files/model_name)")
    return ShippedModel(folder, card)


def verify(shipped: ShippedModel) -> ModelManifest:
    """Check every file against the card's sha256 and the manifest against this code's feature
    and lexicon versions; the serving manifest. Raises :class:`ShippedModelError` naming each
    problem."""
    expected: dict[str, str] = shipped.card["files"]
    found = file_hashes(shipped.folder)
    problems = [f"{p}: missing" for p in sorted(set(expected) - set(found))]
    problems += [f"{p}: not in the card" for p in sorted(set(found) - set(expected))]
    problems += [
        f"{p}: sha256 {found[p][:12]} is not the card's {h[:12]}"
        for p, h in sorted(expected.items())
        if p in found and found[p] != h
    ]
    if problems:
        raise ShippedModelError(
            f"the shipped model {shipped.folder} does not match its card: " + "; ".join(problems)
        )
    manifest = ModelManifest.read(shipped.serving)
    lexicon = default_lexicon().version
    if manifest.feature_version != FEATURE_VERSION or manifest.lexicon_version != lexicon:
        raise ShippedModelError(
            f"the shipped model was built for feature version {manifest.feature_version} and "
            f"lexicon {manifest.lexicon_version}; this code has {FEATURE_VERSION} and {lexicon}: "
            "train a new one (`ulasan train`) and ship it (`ulasan model ship RUN_DIR`)"
        )
    return manifest


# ---- writing a shipped folder from a run --------------------------------------------------


def ship(run_dir: Path, out: Path, *, config_path: Path, settings: Settings) -> ShippedModel:
    """Write the shipped model folder ``out`` from the finished training run ``run_dir`` that
    ``config_path`` made; replaces ``out``. Raises :class:`ShippedModelError` when the run is
    incomplete."""
    summary = _run_summary(run_dir)
    config = load_config(config_path)
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    _copy_serving(run_dir / SERVING, tmp / SERVING)
    _copy_checkpoint(run_dir / CHECKPOINT, tmp / CHECKPOINT)
    card = _card(run_dir, summary, config, config_path, tmp, settings, replaces=out)
    (tmp / CARD_FILE).write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
    (tmp / CARD_MARKDOWN).write_text(card_markdown(card), encoding="utf-8")
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return ShippedModel(out, card)


def _run_summary(run_dir: Path) -> dict[str, Any]:
    needed = [run_dir / "summary.json", run_dir / SERVING, run_dir / CHECKPOINT / WEIGHTS]
    missing = [str(p) for p in needed if not p.exists()]
    if missing:
        raise ShippedModelError(
            f"{run_dir} is not a finished training run: no {', '.join(missing)}"
        )
    data: dict[str, Any] = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
    return data


def _copy_serving(src: Path, dest: Path) -> None:
    """The serving folder without the fp32 graph; the manifest says so."""
    manifest = ModelManifest.read(src)
    dest.mkdir(parents=True)
    for path in src.iterdir():
        if path.is_file() and path.name != manifest.fp32_model_file:
            shutil.copy2(path, dest / path.name)
    shipped = manifest.model_copy(update={"fp32_model_file": None, "source_checkpoint": None})
    shipped.write(dest)


def _copy_checkpoint(src: Path, dest: Path) -> None:
    """The checkpoint with its weights as float16 (half the bytes; loaded back as float32)."""
    import torch
    from safetensors.torch import load_file, save_file

    shutil.copytree(src, dest)
    tensors = load_file(str(src / WEIGHTS))
    half = {k: v.to(torch.float16) if v.is_floating_point() else v for k, v in tensors.items()}
    save_file(half, str(dest / WEIGHTS), metadata={"format": "pt"})


def _overrides(file_config: dict[str, Any], run_config: dict[str, Any]) -> dict[str, Any]:
    """The file's top-level settings that the run changed (``--seed 15``, ``--restarts 1``):
    what the card's config block needs beside the file to reproduce the run."""
    return {
        key: run_config[key]
        for key, value in file_config.items()
        if key in run_config and not isinstance(value, dict) and run_config[key] != value
    }


def _card(
    run_dir: Path,
    summary: dict[str, Any],
    config: TrainConfig,
    config_path: Path,
    folder: Path,
    settings: Settings,
    *,
    replaces: Path | None = None,
) -> dict[str, Any]:
    data = load_training_data(config, settings)
    file_config = yaml.safe_load(config_path.read_text(encoding="utf-8"))
    run_config = summary.get("config") or {}  # runs before session 15 recorded none
    files = file_hashes(folder)
    sizes = {sub: _bytes(folder / sub) for sub in (SERVING, CHECKPOINT)}
    return {
        "model_name": ModelManifest.read(folder / SERVING).model_name,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "run": run_dir.name,
        # when shipped (--no-register runs record none); the folder being replaced is not dirt
        "git_commit": git_commit(ignore=replaces),
        "config_path": str(config_path),
        "config": file_config,
        # the run's own seed (a run made with --seed records it); older runs: the file's
        "seed": run_config.get("seed", config.seed),
        "overrides": _overrides(file_config, run_config),
        "train_dataset_hash": dataset_hash(data.train),
        "n_train": len(data.train),
        "n_pretrain_corpus": len(data.corpus),
        "training": {
            "wall_seconds": summary.get("total_seconds"),
            "cpu_seconds": summary.get("total_cpu_seconds"),
            "stage_seconds": summary.get("stage_seconds"),
            "machine": machine(),
            "model": summary.get("train"),
        },
        "export": {k: v for k, v in (summary.get("export") or {}).items() if k != "folder"},
        "scores": _scores(run_dir),
        "data": data_sources(settings),
        "sizes_bytes": {**sizes, "total": sum(sizes.values())},
        "files": files,
    }


def _scores(run_dir: Path) -> dict[str, dict[str, Any]]:
    """Every report of the run: ``name -> {n, accuracy, macro_f1, ece, per_class F1}``."""
    scores: dict[str, dict[str, Any]] = {}
    for path in sorted((run_dir / "reports").glob("*.json")):
        report = json.loads(path.read_text(encoding="utf-8"))
        per_class = report.get("per_class") or {}
        scores[path.stem] = {
            "n": report.get("n"),
            "macro_f1": report.get("macro_f1"),
            "accuracy": report.get("accuracy"),
            "ece": report.get("ece"),
            "per_class_f1": {k: v.get("f1") for k, v in per_class.items() if isinstance(v, dict)},
        }
    return scores


def data_sources(settings: Settings) -> list[dict[str, Any]]:
    """Each shipped data file: path, sha256, bytes, licence, and whether it is evaluation only."""
    root = settings.data
    rows = []
    for name, licence in DATA_LICENCES.items():
        for path in sorted((root / name).glob("*")):
            if path.name == "LICENSE" or not path.is_file():
                continue
            rel = path.relative_to(root).as_posix()
            rows.append(
                {
                    "path": f"data/{rel}",
                    "sha256": sha256(path),
                    "bytes": path.stat().st_size,
                    "licence": licence,
                    "use": "evaluation only" if rel in EVAL_ONLY else "training / pre-training",
                }
            )
    return rows


def machine() -> str:
    """``N CPUs, <model name>`` of this machine (from /proc/cpuinfo where there is one)."""
    name = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    return f"{os.cpu_count()} CPUs, {name}"


def _bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def _restart_lines(model: dict[str, Any]) -> list[str]:
    """The card's line on the run's fine-tuning restarts and its resumed pre-training."""
    lines = []
    if model.get("pretrain_resumed_from"):
        lines.append(
            f"- Pre-training resumed from `{model['pretrain_resumed_from']}`: the times above "
            "are the fine-tuning's only"
        )
    restarts = model.get("restarts") or []
    if restarts:
        scores = ", ".join(f"seed {r['seed']} {r['macro_f1']:.4f}" for r in restarts)
        kept = " + ".join(str(s) for s in model.get("soup_seeds") or [])
        lines.append(
            f"- Fine-tuning restarts (macro-F1 on the selection set): {scores}; kept: {kept}"
        )
    return lines


def card_markdown(card: dict[str, Any]) -> str:
    """The card as Markdown (what ``MODEL_CARD.md`` holds)."""
    training = card["training"]
    lines = [
        f"# Model card: {card['model_name']} (shipped champion)",
        "",
        f"Trained from scratch by `ulasan train --config {card['config_path']}` (seed "
        f"{card['seed']}), run `{card['run']}`, commit `{card['git_commit']}`, "
        f"{card['created_at']}. Written by `ulasan model ship`; registered by `make run` / "
        "`ulasan model register` when the registry has no champion.",
        "",
        f"- Training time: {training['wall_seconds']:.0f} s wall, {training['cpu_seconds']:.0f} s "
        f"CPU on {training['machine']}",
        *_restart_lines(training.get("model") or {}),
        f"- Training examples: {card['n_train']:,}; pre-training corpus: "
        f"{card['n_pretrain_corpus']:,} texts; train data hash `{card['train_dataset_hash']}`",
        f"- Size: serving folder {card['sizes_bytes']['serving'] / 1e6:.1f} MB (int8 ONNX), "
        f"checkpoint {card['sizes_bytes']['checkpoint'] / 1e6:.1f} MB (float16 weights)",
        "",
        "## Scores",
        "",
        "| evaluation set | n | macro-F1 | accuracy | ECE |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, s in card["scores"].items():
        lines.append(
            f"| {name} | {s['n']} | {s['macro_f1']:.4f} | {s['accuracy']:.4f} | {s['ece']:.4f} |"
        )
    lines += [
        "",
        "`smsa-valid-dedup` is the gate's fixed evaluation set (SmSA valid minus texts in "
        "SmSA train); `smsa-test` is read only to report. Other sets and the TF-IDF + SVM "
        "margins: `ulasan report --model models/ulasan-mini/serving --markdown` "
        "(docs/results.md).",
        "",
        "## Data",
        "",
        "| file | use | licence | bytes | sha256 |",
        "|---|---|---|---:|---|",
    ]
    for d in card["data"]:
        lines.append(
            f"| {d['path']} | {d['use']} | {d['licence']} | {d['bytes']:,} | `{d['sha256'][:16]}` |"
        )
    lines += ["", "## Config", ""]
    if card.get("overrides"):
        changed = ", ".join(f"`{k}: {json.dumps(v)}`" for k, v in card["overrides"].items())
        lines += [
            f"`{card['config_path']}` as committed; the run's command line changed {changed}.",
            "",
        ]
    lines += ["```yaml", yaml.safe_dump(card["config"], sort_keys=False)]
    lines += ["```", ""]
    return "\n".join(lines)


# ---- registering a shipped folder ---------------------------------------------------------


def register(settings: Settings, shipped: ShippedModel) -> tuple[ModelVersionInfo, bool]:
    """Register ``shipped`` as a new version and gate it; ``(version, promoted)``.

    The MLflow run gets the checkpoint (so a retrain continues from it) and the serving folder
    with the card; the fixed evaluation set is scored now by the served graph, so the scores
    the gate compares are this machine's, not the card's."""
    verify(shipped)
    pairs = [(e.text, str(e.label)) for e in fixed_eval_set()]
    predictor = OnnxPredictor.from_folder(shipped.serving)
    report = evaluate_predictor(predictor, pairs)
    tracker = Tracker(settings)
    with tracker.run(f"shipped-{shipped.name}"):
        run_id = str(tracker.run_id)
        tracker.tags({TAG_SHIPPED: "true", "ulasan.shipped.run": str(shipped.card["run"])})
        tracker.artifact(shipped.checkpoint, CHECKPOINT_ARTIFACT)
        tracker.artifact(shipped.folder / CARD_MARKDOWN)
        log_serving_folder(
            settings, run_id, shipped.serving, reports={EVAL_SET_NAME: report, "card": shipped.card}
        )
        version = register_candidate(
            settings,
            run_id,
            shipped.serving,
            train_dataset_hash=str(shipped.card["train_dataset_hash"]),
            scores=EvalScores.from_report(
                report, dataset_hash=dataset_hash(pairs), name=EVAL_SET_NAME
            ),
            commit=str(shipped.card["git_commit"]),
            extra_tags=_version_tags(shipped),
        )
    gate = load_config().gate
    decision = run_gate(
        settings,
        pairs,
        version=version.version,
        config=GateConfig(min_accuracy=gate.min_accuracy, tolerance=gate.tolerance),
        eval_name=EVAL_SET_NAME,
    )
    return version, decision.promoted


def _version_tags(shipped: ShippedModel) -> dict[str, str]:
    tags = {TAG_SHIPPED: "true"}
    test = shipped.card["scores"].get("smsa-test")
    if test:
        tags["ulasan.smsa_test.macro_f1"] = f"{test['macro_f1']:.6f}"
    return tags
