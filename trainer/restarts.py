"""Fine-tuning restarts: several fine-tunings of one starting model, the best kept.

A small encoder's fine-tuning moves its test macro-F1 by points from seed to seed, as much as
a whole new pre-training does (docs/results.md, "Session 14"), and a fine-tuning costs minutes
where the pre-training costs an hour. So :func:`fine_tune_restarts` fine-tunes the same
starting weights ``config.restarts`` times (seeds ``config.seed``, ``config.seed + 1``, ...)
and keeps the restart that scores best on the selection examples, or with ``config.soup`` a
greedy soup of them (Wortsman et al., "Model soups", ICML 2022): the restarts in order of
their score, each averaged in only when the average scores at least as well. Every
fine-tuning of one run starts from the same weights, which is what makes their average a
model (they stay in one basin).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from schemas.events import LABELS
from trainer.config import TrainConfig
from trainer.errors import TrainingError
from trainer.metrics import classification_report
from trainer.train import (
    EpochCallback,
    PreparedModel,
    TrainResult,
    average_state,
    fine_tune,
    predict_proba,
    texts_and_labels,
)

#: the run folder's record of its restarts
RESTARTS_FILE = "restarts.json"

RestartCallback = Callable[[int, dict[str, float]], None]


@dataclass(frozen=True)
class Restart:
    """One fine-tuning of a run: its seed, its folder and its score on the selection set."""

    seed: int
    folder: Path
    macro_f1: float
    best_epoch: int
    averaged_epochs: list[int]
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "folder": self.folder.name,
            "macro_f1": self.macro_f1,
            "best_epoch": self.best_epoch,
            "averaged_epochs": self.averaged_epochs,
            "seconds": round(self.seconds, 1),
        }


def fine_tune_restarts(
    config: TrainConfig,
    train_examples: Sequence[Any],
    valid_examples: Sequence[Any],
    *,
    output_dir: Path,
    prepared: PreparedModel | None = None,
    progress: bool = True,
    console: Any = None,
    on_epoch: EpochCallback | None = None,
    on_restart: RestartCallback | None = None,
    sample_weights: Sequence[float] | None = None,
) -> TrainResult:
    """:func:`trainer.train.fine_tune` ``config.restarts`` times from the same start, the best
    on ``valid_examples`` (or the greedy soup) saved to ``<output_dir>/checkpoint``.

    One restart is exactly :func:`fine_tune` into ``output_dir``. With more, restart ``i``
    (seed ``config.seed + i``) fine-tunes a copy of ``prepared``'s model (or loads
    ``config.model`` again) into ``<output_dir>/restarts/seed-<seed>``; every restart is
    scored on ``valid_examples`` by the same evaluation, ``on_restart(seed, metrics)`` is
    called after each, and ``<output_dir>/restarts.json`` records them and what was kept.
    The result's ``extra`` has ``restarts`` (each restart's figures), ``restart_seed`` (the
    best restart's seed) and ``soup_seeds`` (the restarts averaged, best first).
    """
    common = {"progress": progress, "console": console, "sample_weights": sample_weights}
    if config.restarts == 1:
        return fine_tune(
            config,
            train_examples,
            valid_examples,
            output_dir=output_dir,
            prepared=prepared,
            on_epoch=on_epoch,
            **common,
        )
    results: list[TrainResult] = []
    for i in range(config.restarts):
        seed = config.seed + i
        if console is not None:
            console.print(f"fine-tuning restart {i + 1} of {config.restarts} (seed {seed})")
        start = prepared and dataclasses.replace(prepared, model=copy.deepcopy(prepared.model))
        results.append(
            fine_tune(
                config.model_copy(update={"seed": seed}),
                train_examples,
                valid_examples,
                output_dir=output_dir / "restarts" / f"seed-{seed}",
                prepared=start,
                on_epoch=_prefixed(on_epoch, seed),
                **common,
            )
        )
        if on_restart is not None:
            on_restart(seed, {"restart_macro_f1": results[-1].valid_report["macro_f1"]})
    return _keep(config, results, valid_examples, output_dir, console)


def _prefixed(on_epoch: EpochCallback | None, seed: int) -> EpochCallback | None:
    """``on_epoch`` with each metric's name prefixed by the restart's seed (one MLflow run
    holds every restart's curves)."""
    if on_epoch is None:
        return None
    callback = on_epoch
    return lambda epoch, metrics: callback(
        epoch, {f"restart_{seed}_{k}": v for k, v in metrics.items()}
    )


class _Scorer:
    """Macro-F1 of a state dict on the selection examples, one model reused."""

    def __init__(self, config: TrainConfig, checkpoint: Path, examples: Sequence[Any]) -> None:
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        self.config = config
        self.tokenizer = AutoTokenizer.from_pretrained(checkpoint)
        self.model = AutoModelForSequenceClassification.from_pretrained(str(checkpoint))
        self.texts, self.labels = texts_and_labels(examples)

    def state(self, checkpoint: Path) -> dict[str, Any]:
        """A restart's weights, read from its checkpoint file (no model is built), in the
        scoring model's dtypes and checked against its keys."""
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        path = checkpoint / "model.safetensors"
        reference = self.model.state_dict()
        try:
            loaded = load_file(str(path))
        except (OSError, SafetensorError) as exc:
            raise TrainingError(f"cannot read the restart's weights {path}: {exc}") from exc
        if loaded.keys() != reference.keys():
            differ = sorted(loaded.keys() ^ reference.keys())
            raise TrainingError(f"the restart {checkpoint} does not match the others: {differ}")
        return {k: v.to(reference[k].dtype) for k, v in loaded.items()}

    def report(self, state: dict[str, Any]) -> dict[str, Any]:
        self.model.load_state_dict(state)
        probs = predict_proba(
            self.model,
            self.tokenizer,
            self.texts,
            max_length=self.config.max_length,
            batch_size=self.config.eval_batch_size,
        )
        return classification_report(self.labels, [LABELS[i] for i in probs.argmax(axis=1)], probs)


def _keep(
    config: TrainConfig,
    results: list[TrainResult],
    valid_examples: Sequence[Any],
    output_dir: Path,
    console: Any,
) -> TrainResult:
    """Score the restarts alike, keep the best (or the greedy soup), save it as the run's
    checkpoint and record the choice."""
    scorer = _Scorer(config, results[0].checkpoint_dir, valid_examples)
    states = [scorer.state(r.checkpoint_dir) for r in results]
    reports = [scorer.report(s) for s in states]
    restarts = [
        Restart(
            seed=config.seed + i,
            folder=r.checkpoint_dir.parent,
            macro_f1=reports[i]["macro_f1"],
            best_epoch=r.best_epoch,
            averaged_epochs=r.averaged_epochs,
            seconds=r.seconds,
        )
        for i, r in enumerate(results)
    ]
    best = min(range(len(results)), key=lambda i: (-reports[i]["macro_f1"], i))  # first of ties
    members, state, report = [best], states[best], reports[best]
    uniform = scorer.report(average_state(states))
    if config.soup:
        members, state, report = greedy_soup(states, reports, scorer.report)
    checkpoint = _save(results[best], state if len(members) > 1 else None, scorer, output_dir)
    record = {
        "selection_examples": len(scorer.texts),
        "restarts": [r.as_dict() for r in restarts],
        "best_seed": restarts[best].seed,
        "soup": config.soup,
        "soup_seeds": [restarts[i].seed for i in members],
        "uniform_soup_macro_f1": uniform["macro_f1"],
        "kept_macro_f1": report["macro_f1"],
    }
    (output_dir / RESTARTS_FILE).write_text(json.dumps(record, indent=2), encoding="utf-8")
    if console is not None:
        console.print(_line(record))
    chosen = results[best]
    return dataclasses.replace(
        chosen,
        checkpoint_dir=checkpoint,
        valid_report=report,
        seconds=sum(r.seconds for r in results),
        extra=chosen.extra
        | {
            "restarts": [r.as_dict() for r in restarts],
            "restart_seed": restarts[best].seed,
            "soup_seeds": record["soup_seeds"],
            "uniform_soup_macro_f1": uniform["macro_f1"],
        },
    )


def _line(record: dict[str, Any]) -> str:
    scores = ", ".join(f"seed {r['seed']}: {r['macro_f1']:.4f}" for r in record["restarts"])
    kept = "+".join(str(seed) for seed in record["soup_seeds"])
    return (
        f"restarts (macro-F1 on {record['selection_examples']} selection rows): {scores}; "
        f"uniform soup {record['uniform_soup_macro_f1']:.4f}; kept {kept}: "
        f"{record['kept_macro_f1']:.4f}"
    )


def greedy_soup(
    states: Sequence[dict[str, Any]],
    reports: Sequence[dict[str, Any]],
    evaluate: Callable[[dict[str, Any]], dict[str, Any]],
) -> tuple[list[int], dict[str, Any], dict[str, Any]]:
    """The greedy soup of ``states`` (their ``reports`` by the same ``evaluate``): the best
    first, then each in order of its macro-F1, kept only when the average with it scores at
    least as well. Returns the members (indices, best first), their average and its report."""
    order = sorted(range(len(states)), key=lambda i: (-reports[i]["macro_f1"], i))
    members, soup, report = [order[0]], states[order[0]], reports[order[0]]
    for i in order[1:]:
        candidate = average_state([states[j] for j in [*members, i]])
        candidate_report = evaluate(candidate)
        if candidate_report["macro_f1"] >= report["macro_f1"]:
            members, soup, report = [*members, i], candidate, candidate_report
    return members, soup, report


def _save(
    best: TrainResult, soup: dict[str, Any] | None, scorer: _Scorer, output_dir: Path
) -> Path:
    """The best restart's checkpoint and history as the run's own; a soup's weights over
    its model."""
    checkpoint = output_dir / "checkpoint"
    if checkpoint.exists():
        shutil.rmtree(checkpoint)
    shutil.copytree(best.checkpoint_dir, checkpoint)
    shutil.copy2(best.checkpoint_dir.parent / "history.json", output_dir / "history.json")
    if soup is not None:
        scorer.model.load_state_dict(soup)
        scorer.model.save_pretrained(checkpoint)
    return checkpoint
