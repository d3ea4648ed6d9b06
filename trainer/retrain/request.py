"""One retrain request end to end: lock, claim, data, warm start, training, hold-out scores,
the gate, the announcement and the run's record (see :mod:`trainer.retrain`)."""

from __future__ import annotations

import json
import logging
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console

from schemas.events import ModelPromoted, RetrainRequested
from trainer.config import TrainConfig, load_config
from trainer.data import Example, load_postgres, load_smsa
from trainer.evaluate import evaluate_model
from trainer.gate import GateConfig, GateDecision, run_gate
from trainer.pipeline.run import run_training
from trainer.registry import ModelVersionInfo, champion
from trainer.retrain.config import RetrainConfig, TrainerSettings
from trainer.retrain.split import (
    BASE_GUARD_NAME,
    GATE_SET_NAME,
    SELECTION_SALT,
    base_gate_examples,
    base_share,
    gate_examples,
    split_labelled,
    tag_examples,
    tagged_sources,
    write_jsonl,
)
from trainer.retrain.store import Heartbeat, RunRecord, RunStore
from trainer.retrain.warm_start import warm_start_source
from trainer.retrain.weighting import effective_base_weight, sample_weight
from ulasan.core.registry import champion_uri
from ulasan.core.settings import Settings

log = logging.getLogger(__name__)

#: (TrainConfig, settings, run_name, sample_weight) -> PipelineResult
Trainer = Callable[[Any, Settings, str, Callable[[Example], float] | None], Any]


def default_train(
    config: Any, settings: Settings, run_name: str, weight: Callable[[Example], float] | None
) -> Any:
    """The training pipeline, quiet (no progress bars, log to stderr)."""
    return run_training(
        config,
        settings,
        console=Console(stderr=True),
        progress=False,
        run_name=run_name,
        sample_weight=weight,
    )


def handle(
    request: RetrainRequested,
    settings: TrainerSettings,
    store: RunStore,
    publish: Callable[[ModelPromoted], None],
    *,
    train: Trainer = default_train,
    on_claimed: Callable[[RunRecord], None] | None = None,
) -> RunRecord:
    """Handle one request end to end (see :mod:`trainer.retrain`); never raises for a failed
    training: the run is recorded as ``failed`` with the error. ``busy`` (another trainer's
    claim is live: try again in ``retry_in_s``) and ``duplicate`` runs are not recorded.
    ``on_claimed(record)`` is called when the request is claimed, before its run starts."""
    cfg = settings.retrain
    record = RunRecord(
        run_id=f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}",
        request_id=request.request_id,
        dedupe_key=request.dedupe_key,
        reasons=list(request.reasons),
        status="running",
    )
    store.lock(cfg.lock_timeout_s)
    try:
        announce_pending(settings, store, publish)
        claim = store.claim(record, lease_s=cfg.lease_s, max_attempts=cfg.max_attempts)
        if not claim.claimed:
            record.attempts = claim.attempts
            record.status = "busy" if claim.busy else "duplicate"
            if claim.busy:  # a live lease: when it ends; a pending promotion: after a backoff
                record.retry_in_s = claim.lease_left_s or cfg.retry_backoff_s
            log.info(
                "retrain request %s (key %s): %s (held by a %s run, %d attempt(s))",
                request.request_id,
                request.dedupe_key,
                record.status,
                claim.status,
                claim.attempts,
            )
            return record
        if record.attempts > 1:
            log.warning("retrain key %s: attempt %d", record.dedupe_key, record.attempts)
        if on_claimed is not None:
            on_claimed(record)
        run_dir = cfg.logs_dir / record.run_id
        with Heartbeat(settings.postgres.dsn, record.run_id, cfg.lease_s):
            try:
                retrain(request, settings, record, run_dir, Promotion(store, publish), train)
            except Exception as exc:  # recorded, not swallowed: status failed + error + log
                log.exception("retraining run %s failed", record.run_id)
                record.status = "failed"
                record.error = f"{type(exc).__name__}: {exc}"
        record.finished_at = time.time()
        store.finish(record)
        _write_run_json(run_dir, record)
        return record
    finally:
        store.unlock()


@dataclass(frozen=True)
class Promotion:
    """Where a run's promotion is recorded (``store``) and announced (``publish``)."""

    store: RunStore
    publish: Callable[[ModelPromoted], None]


def _write_run_json(run_dir: Path, record: RunRecord) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "run.json").write_text(
        json.dumps({**asdict(record), "duration_s": record.duration_s}, indent=2, default=str)
        + "\n",
        encoding="utf-8",
    )


@dataclass(frozen=True)
class RetrainData:
    """What one retrain trains on and is scored on, and the config keys that point the
    pipeline at it."""

    config: TrainConfig
    held_pairs: list[tuple[str, str]]
    overrides: dict[str, Any]
    weight: Callable[[Example], float]
    #: each hold-out review's source (the models read them as the worker serves them)
    held_sources: list[str | None] | None = None


def retrain(
    request: RetrainRequested,
    settings: TrainerSettings,
    record: RunRecord,
    run_dir: Path,
    promotion: Promotion,
    train: Trainer,
) -> None:
    """Train, score, gate and announce one claimed request, filling ``record``. The version
    the gate may promote is recorded before it moves the alias, so a trainer that dies after
    the move leaves a promotion the next trainer announces (:func:`announce_pending`)."""
    before = champion(settings)
    stale = stale_reason(request, before)
    if stale is not None:
        record.status = "stale"
        record.decision = stale
        return
    data = prepare_data(settings, record, run_dir)
    if before is not None and data.held_pairs:
        report = evaluate_model(before.uri, data.held_pairs, settings, sources=data.held_sources)
        record.scores["holdout_before"] = _brief(report) | {"version": before.version}
    result = train_candidate(settings, record, data, before, train)
    if not result.model_version:
        record.status = "done"
        record.decision = "not registered (register_model is off in the config): nothing to gate"
        return
    name = settings.mlflow.registered_model
    if data.held_pairs:
        uri = f"models:/{name}/{result.model_version}"
        report = evaluate_model(uri, data.held_pairs, settings, sources=data.held_sources)
        record.scores["holdout_after"] = _brief(report) | {"version": result.model_version}
    if not data.config.promote:
        record.status = "done"
        record.decision = "not gated (promote is off in the config)"
        return
    promotion.store.promoting(record.run_id, str(result.model_version))
    decision = gate(settings, record, data, str(result.model_version))
    if not decision.promoted:
        promotion.store.promoting(record.run_id, None)
        return
    announce(settings, record, decision, promotion.publish)
    promotion.store.announced(record.run_id)


def stale_reason(request: RetrainRequested, current: ModelVersionInfo | None) -> str | None:
    """Why ``request`` judged a champion that no longer serves (``current`` is the registered
    model's champion now); None when it is current."""
    if request.model_version and current is not None and current.version != request.model_version:
        return (
            f"requested for version {request.model_version}, version {current.version} serves now"
        )
    return None


def _split_labelled(
    settings: TrainerSettings,
) -> tuple[list[Example], list[Example], list[Example], list[Example]]:
    """The labelled reviews in PostgreSQL (the newest ``max_labelled``), and their training,
    hold-out and selection splits (review-id hashes: fixed across runs)."""
    cfg = settings.retrain
    labelled = [e for e in load_postgres(settings.postgres.dsn) if e.label is not None]
    if cfg.max_labelled is not None:
        labelled = labelled[-cfg.max_labelled :]
    new_train, held = split_labelled(labelled, cfg.holdout_share)
    selection: list[Example] = []
    if cfg.selection_share > 0:
        new_train, selection = split_labelled(new_train, cfg.selection_share, salt=SELECTION_SALT)
    return labelled, new_train, held, selection


def prepare_data(settings: TrainerSettings, record: RunRecord, run_dir: Path) -> RetrainData:
    """Split the labelled reviews, keep a share of the base corpus, write the data files into
    ``run_dir`` and record their sizes and the sampling weights."""
    cfg = settings.retrain
    labelled, new_train, held, selection = _split_labelled(settings)
    config = load_config(cfg.config).with_overrides(cfg.overrides)
    base = base_share(load_smsa("train"), len(new_train), config.max_examples, config.seed)
    # stream reviews behind their source's tag, the base corpus untagged (RetrainConfig)
    tags = tagged_sources(new_train, cfg.domain_tag_min_rows) if cfg.domain_tags else []
    record.scores["domain_tags"] = tags
    held_raw = held
    held_sources: list[str | None] = [e.source or None for e in held]
    base, new_train, held, selection = (
        tag_examples(rows, tags) for rows in (base, new_train, held, selection)
    )
    path = write_jsonl(run_dir / "train.jsonl", [*base, *new_train])
    held_path = write_jsonl(run_dir / "holdout.jsonl", held)
    base_weight = _record_sampling(record, cfg, base, labelled, new_train, held, selection)
    # the pipeline registers the candidate; the gate runs here, on base set + stream hold-out
    # the cap is applied above (every new review kept): the pipeline must not sample again
    overrides: dict[str, Any] = {
        "data": f"file:{path}",
        "promote": False,
        "max_examples": len(base) + len(new_train),
        "domain_tags": tags,
    }
    if cfg.decision_bias and len(held) >= cfg.decision_bias_min_rows:
        overrides["bias_data"] = f"file:{held_path}"
    if selection:
        overrides["selection_data"] = f"file:{write_jsonl(run_dir / 'selection.jsonl', selection)}"
    weight = sample_weight(
        new_train,
        labelled=cfg.labelled_weight,
        base=base_weight,
        class_balance=cfg.labelled_class_balance,
    )
    # the hold-out as the worker receives it: raw text and source (each model tags its own)
    held_pairs = [(e.text, str(e.label)) for e in held_raw]
    return RetrainData(
        config=config,
        held_pairs=held_pairs,
        overrides=overrides,
        weight=weight,
        held_sources=held_sources,
    )


def _record_sampling(
    record: RunRecord,
    cfg: RetrainConfig,
    base: list[Example],
    labelled: list[Example],
    new_train: list[Example],
    held: list[Example],
    selection: list[Example],
) -> float:
    """The base corpus's per-epoch sampling weight; the data sizes and the sampling recorded."""
    base_weight = effective_base_weight(
        n_base=len(base),
        n_new=len(new_train),
        labelled=cfg.labelled_weight,
        base=cfg.base_weight,
        min_share=cfg.min_base_share,
    )
    record.data_sizes = {
        "base": len(base),
        "labelled": len(labelled),
        "labelled_train": len(new_train),
        "labelled_holdout": len(held),
        "labelled_selection": len(selection),
        "sampled_per_epoch": round(len(base) * base_weight + len(new_train) * cfg.labelled_weight),
    }
    record.scores["sampling"] = {
        "labelled_weight": cfg.labelled_weight,
        "labelled_class_balance": cfg.labelled_class_balance,
        "base_weight": base_weight,
        "base_weight_configured": cfg.base_weight,
        "min_base_share": cfg.min_base_share,
    }
    return base_weight


def train_candidate(
    settings: TrainerSettings,
    record: RunRecord,
    data: RetrainData,
    before: ModelVersionInfo | None,
    train: Trainer,
) -> Any:
    """Train the candidate: continued from the champion's checkpoint when it has one (and
    ``warm_start`` is on), else from scratch; record how, and the run's figures."""
    cfg = settings.retrain
    with tempfile.TemporaryDirectory(prefix="ulasan-warm-") as tmp:
        source = None
        record.scores["warm_start"] = {"used": False, "reason": "warm_start is off"}
        if cfg.warm_start:
            source, record.scores["warm_start"] = warm_start_source(settings, before, Path(tmp))
        if source is not None:
            train_config = load_config(cfg.config).with_overrides(
                {
                    **cfg.warm_start_overrides,
                    **cfg.overrides,
                    **data.overrides,
                    "model": str(source),
                }
            )
        else:
            train_config = data.config.with_overrides(data.overrides)
        result = train(train_config, settings, f"retrain-{record.run_id}", data.weight)
    record.scores["eval"] = {k: _brief(v) for k, v in (result.reports or {}).items()}
    stage_seconds = getattr(result, "stage_seconds", None) or {}
    record.scores["stage_seconds"] = {k: round(float(v), 1) for k, v in stage_seconds.items()}
    summary = getattr(result, "train_summary", None) or {}
    record.scores["adapt_steps"] = summary.get("adapt_steps", 0)
    record.scores["vocab_added"] = summary.get("vocab_added", 0)
    record.scores["anchor_rows"] = summary.get("anchor_rows")
    record.scores["decision_bias"] = summary.get("decision_bias")
    record.scores["interpolation"] = summary.get("interpolation")
    return result


def gate(settings: Settings, record: RunRecord, data: RetrainData, version: str) -> GateDecision:
    """The gate on the fixed base set plus the stream hold-out, with the base set also guarded
    on its own (``gate.base_tolerance``: a gain on the new domain must not hide forgetting the
    old one); its verdict recorded."""
    config = data.config
    base = base_gate_examples(config)
    gate_set = gate_examples(config, data.held_pairs)  # base + the stream hold-out
    held_sources = data.held_sources or [None] * len(data.held_pairs)
    decision = run_gate(
        settings,
        gate_set,
        eval_sources=[None] * (len(gate_set) - len(held_sources)) + list(held_sources),
        version=version,
        config=GateConfig(
            min_accuracy=config.gate.min_accuracy,
            tolerance=config.gate.tolerance,
            base_tolerance=config.gate.base_tolerance,
        ),
        eval_name=GATE_SET_NAME,
        guards={BASE_GUARD_NAME: base},
    )
    verdict = decision.as_dict()
    record.scores["gate"] = {
        "set": GATE_SET_NAME,
        "n": len(gate_set),
        "stream_holdout": len(data.held_pairs),
        "candidate": verdict["candidate"],
        "champion": verdict["champion"],
        "base_tolerance": verdict["base_tolerance"],
        "guards": verdict["guards"],
        "promoted": decision.promoted,
    }
    record.decision = decision.reason
    record.status = "done"
    return decision


def announce(
    settings: TrainerSettings,
    record: RunRecord,
    decision: GateDecision,
    publish: Callable[[ModelPromoted], None],
) -> None:
    """Publish the promotion as ``ModelPromoted`` (the workers reload the champion), trying
    again until it is delivered: the alias has moved, the workers must hear of it."""
    name = settings.mlflow.registered_model
    record.promoted_version = str(decision.candidate_version)
    event = ModelPromoted(
        model_name=name,
        version=record.promoted_version,
        alias="champion",
        previous_version=decision.champion_version,
        model_uri=champion_uri(settings),
        metrics={
            "accuracy": float(decision.candidate.accuracy),
            "macro_f1": float(decision.candidate.macro_f1),
        },
    )
    record.scores["announce_tries"] = deliver(settings, event, publish)
    log.warning("promoted version %s and announced it", record.promoted_version)


def deliver(
    settings: TrainerSettings,
    event: ModelPromoted,
    publish: Callable[[ModelPromoted], None],
    *,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Publish ``event`` until one try succeeds (a doubling wait between tries, up to
    ``announce_backoff_max_s``); the number of tries."""
    cfg = settings.retrain
    wait = 1.0
    tries = 0
    while True:
        tries += 1
        try:
            publish(event)
            return tries
        except Exception as exc:  # Kafka away or the topic missing: the workers must hear it
            log.error(
                "could not announce version %s (try %d), trying again in %.0fs: %s",
                event.version,
                tries,
                wait,
                exc,
            )
        sleep(wait)
        wait = min(wait * 2.0, cfg.announce_backoff_max_s)


def announce_pending(
    settings: TrainerSettings, store: RunStore, publish: Callable[[ModelPromoted], None]
) -> int:
    """Announce the promotions recorded but never announced (a trainer died after the gate,
    or before a delivery); forget the recorded ones whose alias never moved. The number
    announced; a registry that does not answer is logged and left for the next call."""
    pending = store.unannounced()
    if not pending:
        return 0
    try:
        current = champion(settings)
    except Exception as exc:  # MLflow away: the next request (or restart) tries again
        log.error("cannot check %d unannounced promotion(s): %s", len(pending), exc)
        return 0
    announced = 0
    for run in pending:
        if current is None or current.version != run.version:
            store.promoting(run.run_id, None)  # the gate never moved the alias
            continue
        event = ModelPromoted(
            model_name=settings.mlflow.registered_model,
            version=run.version,
            alias="champion",
            model_uri=champion_uri(settings),
        )
        deliver(settings, event, publish)
        store.announced(run.run_id, f"promoted version {run.version}; announced after a restart")
        log.warning("announced version %s, promoted by run %s before", run.version, run.run_id)
        announced += 1
    return announced


def _brief(report: dict[str, Any]) -> dict[str, Any]:
    return {k: report.get(k) for k in ("n", "accuracy", "macro_f1")}
