"""The training pipeline's stages, each a function of the :class:`PipelineContext` that logs
what it made to the run and stores it on the context for the stages after it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from trainer.bias import BaseRows, BiasChoice, apply_bias, choose_bias
from trainer.config import TrainConfig
from trainer.data import Example, load_smsa
from trainer.errors import DataError
from trainer.evaluate import evaluate_predictor
from trainer.export import export_serving_folder
from trainer.gate import GateConfig, GateDecision, run_gate
from trainer.interpolate import interpolate_checkpoint
from trainer.metrics import classification_report, plot_confusion
from trainer.modeling import load_classifier
from trainer.pipeline.checkpoint import write_checkpoint_meta
from trainer.pipeline.context import PipelineContext, require
from trainer.pipeline.data import (
    EVAL_SET_NAME,
    corpus_weights,
    load_training_data,
    load_training_file,
)
from trainer.pipeline.tracking import Tracker, report_metrics, write_json
from trainer.pretrain import adapt_mlm, save_encoder
from trainer.profile import build_profile, write_profile
from trainer.registry import EvalScores, dataset_hash, log_serving_folder, register_candidate
from trainer.restarts import RESTARTS_FILE, fine_tune_restarts
from trainer.train import PreparedModel, predict_proba, prepare_mini
from trainer.validation import validate
from trainer.vocab import VocabularyExtension, extend_vocabulary
from ulasan.core.inference import OnnxPredictor
from ulasan.core.inference.domain import split_tag
from ulasan.core.registry import CHECKPOINT_ARTIFACT
from ulasan.core.text import default_lexicon

if TYPE_CHECKING:
    from ulasan.core.settings import Settings

#: Parity texts for the ONNX export (held-out texts, cleaned by the exporter like serving does).
PARITY_TEXTS = 256


def load_data(ctx: PipelineContext) -> None:
    """Load and validate the training data; write and log the validation report."""
    data = ctx.data = load_training_data(ctx.config, ctx.settings)
    ctx.tracker.artifact(write_json(ctx.run_dir / "validation_report.json", data.validation))
    ctx.tracker.params(
        {
            "n_train": len(data.train),
            "n_eval": len(data.valid),
            "n_selection": len(data.selection),
            "n_corpus": len(data.corpus),
            "eval_set": EVAL_SET_NAME,
        }
    )
    ctx.console.print(
        f"train {len(data.train)} examples ({data.sources}), eval {len(data.valid)} "
        f"({EVAL_SET_NAME}), pre-training corpus {len(data.corpus)} texts; rejected "
        f"{data.validation['train']['rejected']}: "
        f"{ {k: v for k, v in data.validation['train']['reason_counts'].items() if v} }"
    )


def pretrain(ctx: PipelineContext) -> None:
    """ulasan-mini: train its tokenizer and pre-train its encoder on the corpus."""
    tracker = ctx.tracker
    data = require(ctx.data, "the training data")
    prepared = ctx.prepared = prepare_mini(
        ctx.config,
        data.corpus,
        extra=data.extra_corpus,
        progress=ctx.progress,
        console=ctx.console,
        on_pretrain_log=lambda step, m: tracker.metrics(
            {f"pretrain_{k}": v for k, v in m.items()}, step=step
        ),
    )
    tracker.metrics(
        {"tokenizer_seconds": prepared.tokenizer_seconds, "vocab_size": len(prepared.tokenizer)}
    )
    if prepared.pretrain is not None:
        # The MLM encoder before fine-tuning: ``pretrain.resume_from`` repeats this run from
        # here (other fine-tuning settings, more restarts) without the pre-training, which is
        # nine tenths of a run.
        save_encoder(prepared.pretrain, prepared.tokenizer, ctx.run_dir / "pretrained")
    if ctx.config.pretrain.resume_from is not None:
        ctx.tracker.params({"pretrain_resumed_from": str(ctx.config.pretrain.resume_from)})
        ctx.console.print(f"pre-training resumed from {ctx.config.pretrain.resume_from}")


def adapt(ctx: PipelineContext) -> None:
    """A loaded checkpoint (a warm-started retrain): continue its encoder with MLM on the
    training texts (the new domain's among them) before fine-tuning."""
    data = require(ctx.data, "the training data")
    weights = None
    if ctx.config.pretrain.adapt_sampling and ctx.sample_weight is not None:
        weights = corpus_weights(data, ctx.sample_weight)
    ctx.prepared, ctx.vocab_extension = adapt_checkpoint(
        ctx.config, data.corpus, ctx.progress, ctx.console, ctx.tracker, weights=weights
    )


def epoch_weights(ctx: PipelineContext) -> None:
    """Each training example's per-epoch sampling weight (``ctx.sample_weight``)."""
    assert ctx.sample_weight is not None
    weights = ctx.epoch_weights = [
        ctx.sample_weight(e) for e in require(ctx.data, "the training data").train
    ]
    ctx.tracker.params({"sampled_epoch_size": round(sum(weights))})
    ctx.console.print(
        f"sampling weights: {len(weights)} examples -> about {sum(weights):.0f} per epoch"
    )


def fine_tune_model(ctx: PipelineContext) -> None:
    """Fine-tune (``config.restarts`` times, the best kept); the epoch and the restart are
    chosen where the model will serve (base set + selection)."""
    data, tracker = require(ctx.data, "the training data"), ctx.tracker
    ctx.trained = fine_tune_restarts(
        ctx.config,
        data.train,
        [*data.valid, *data.selection],
        progress=ctx.progress,
        output_dir=ctx.run_dir,
        prepared=ctx.prepared,
        console=ctx.console,
        on_epoch=lambda epoch, m: tracker.metrics(m, step=epoch),
        on_restart=lambda seed, m: tracker.metrics(m, step=seed),
        sample_weights=ctx.epoch_weights,
    )
    tracker.artifact(ctx.run_dir / "history.json")
    if ctx.config.restarts > 1:
        tracker.artifact(ctx.run_dir / RESTARTS_FILE)
        tracker.params(
            {
                "restart_seed": ctx.trained.extra["restart_seed"],
                "soup_seeds": ",".join(str(s) for s in ctx.trained.extra["soup_seeds"]),
            }
        )


def interpolate_weights(ctx: PipelineContext) -> None:
    """Mix the fine-tuned weights with the starting checkpoint's (see trainer.interpolate)."""
    checkpoint = require(ctx.trained, "the fine-tuned model").checkpoint_dir
    rows = require(ctx.data, "the training data").valid
    tolerance = ctx.config.gate.base_tolerance / 2
    mixed = ctx.interpolation = interpolate_checkpoint(
        ctx.config.model, checkpoint, rows, tolerance=tolerance
    )
    ctx.tracker.params({"interpolation_alpha": mixed.alpha})
    ctx.tracker.metrics(
        {"interpolation_start_macro_f1": mixed.start_macro_f1}
        | {f"interpolation_macro_f1_{round(a * 100)}": s for a, s in mixed.scores.items()}
    )
    scores = ", ".join(f"{a:g}: {s:.4f}" for a, s in mixed.scores.items())
    ctx.console.print(
        f"interpolation with the starting checkpoint ({mixed.start_macro_f1:.4f} on {mixed.n} "
        f"rows of {EVAL_SET_NAME}; share of the fine-tuned weights: macro-F1 {scores}): "
        f"{mixed.alpha:g}"
    )


def decision_bias(ctx: PipelineContext) -> None:
    """Choose and apply the checkpoint's decision offsets (see :func:`choose_decision_bias`)."""
    checkpoint = require(ctx.trained, "the fine-tuned model").checkpoint_dir
    base_rows = require(ctx.data, "the training data").valid
    bias = ctx.bias = choose_decision_bias(ctx.config, checkpoint, base_rows)
    ctx.tracker.params(
        {f"decision_bias_{k}": v for k, v in bias.offsets.items()} | {"decision_bias_n": bias.n}
    )
    guarded = ""
    if bias.base is not None:
        ctx.tracker.metrics(
            {
                "decision_bias_base_macro_f1_before": bias.base["macro_f1_before"],
                "decision_bias_base_macro_f1_after": bias.base["macro_f1_after"],
            }
        )
        guarded = (
            f"; {EVAL_SET_NAME} {bias.base['macro_f1_before']:.4f} -> "
            f"{bias.base['macro_f1_after']:.4f} (may lose {bias.base['tolerance']:g})"
        )
    scope = f" (for the texts of {ctx.config.domain_tags} only)" if bias.domain else ""
    ctx.console.print(
        f"decision bias {bias.offsets}{scope} on {bias.n} held-out rows: macro-F1 "
        f"{bias.macro_f1_before:.4f} -> {bias.macro_f1_after:.4f}{guarded}"
    )


def export(ctx: PipelineContext) -> None:
    """Export the int8 serving folder and record the checkpoint's metadata beside it."""
    data, config = require(ctx.data, "the training data"), ctx.config
    checkpoint = require(ctx.trained, "the fine-tuned model").checkpoint_dir
    seen = {e.text for e in data.train}
    parity = [e.text for e in data.valid if e.text not in seen][:PARITY_TEXTS]
    exported = ctx.exported = export_serving_folder(
        checkpoint,
        ctx.run_dir / "serving",
        model_name=ctx.model_name,
        lexicon=default_lexicon(),
        parity_texts=parity,
        quantize=config.quantize,
        domain_tags=config.domain_tags,
        # with domain tags the decision offsets reach the tagged sources' texts only
        domain_offsets=ctx.bias.offsets if ctx.bias is not None and ctx.bias.domain else None,
    )
    write_checkpoint_meta(
        checkpoint,
        model_name=ctx.model_name,
        max_length=exported.manifest.max_length,
        feature_version=exported.manifest.feature_version,
        lexicon_version=exported.manifest.lexicon_version,
        warm_start_from=config.model if not config.is_mini else None,
    )
    ctx.tracker.metrics(
        {
            k: v
            for k, v in exported.as_dict().items()
            if isinstance(v, int | float) and not isinstance(v, bool)
        }
    )


def evaluate(ctx: PipelineContext) -> None:
    """Score the serving folder on the fixed evaluation set (what the gate compares), SmSA
    test (reported only) and the selection split, and the PyTorch checkpoint on SmSA test
    (the gap is what quantization cost); log and write every report."""
    data = require(ctx.data, "the training data")
    exported = require(ctx.exported, "the serving folder")
    predictor = ctx.predictor = OnnxPredictor.from_folder(
        exported.folder, intra_op_threads=ctx.config.threads
    )
    ctx.eval_pairs = [(e.text, str(e.label)) for e in data.valid]
    test_pairs = [(e.text, str(e.label)) for e in load_smsa("test")]
    ctx.reports[EVAL_SET_NAME] = evaluate_predictor(predictor, ctx.eval_pairs)
    ctx.reports["smsa-test"] = evaluate_predictor(predictor, test_pairs)
    if data.selection:
        ctx.reports["selection"] = evaluate_predictor(
            predictor, [(e.text, str(e.label)) for e in data.selection]
        )
    ctx.reports["smsa-test-pytorch"] = _checkpoint_report(
        require(ctx.trained, "the fine-tuned model").checkpoint_dir,
        test_pairs,
        max_length=exported.manifest.max_length,
    )
    for name, report in ctx.reports.items():
        ctx.tracker.metrics(report_metrics(name.replace("-", "_"), report))
        png = plot_confusion(report, ctx.run_dir / "plots" / f"confusion_{name}.png", title=name)
        ctx.tracker.artifact(png, "plots")
        write_json(ctx.run_dir / "reports" / f"{name}.json", report)


def _checkpoint_report(
    checkpoint_dir: Path, pairs: Sequence[tuple[str, str]], *, max_length: int
) -> dict[str, Any]:
    """The PyTorch checkpoint's classification report on ``pairs``."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(checkpoint_dir)
    tokenizer = AutoTokenizer.from_pretrained(checkpoint_dir)
    probs = predict_proba(model, tokenizer, [t for t, _ in pairs], max_length=max_length)
    pred = [model.config.id2label[int(i)] for i in probs.argmax(axis=1)]
    return classification_report([y for _, y in pairs], pred, probs)


def profile(ctx: PipelineContext) -> None:
    """Write the training data's profile (what drift is measured against) into the folder."""
    data = require(ctx.data, "the training data")
    folder = require(ctx.exported, "the serving folder").folder
    built = build_profile(
        [e.text for e in data.train],
        [str(e.label) for e in data.train],
        folder=folder,
        predictor=ctx.predictor,
        seed=ctx.config.seed,
    )
    write_profile(built, folder)


def register(ctx: PipelineContext) -> None:
    """Log the checkpoint and serving folder to the run and register it as ``candidate``."""
    data = require(ctx.data, "the training data")
    exported = require(ctx.exported, "the serving folder")
    run_id = str(ctx.tracker.run_id)
    # the PyTorch checkpoint too: a retrain continues from it (continued fine-tuning)
    ctx.tracker.artifact(
        require(ctx.trained, "the fine-tuned model").checkpoint_dir, CHECKPOINT_ARTIFACT
    )
    log_serving_folder(
        ctx.settings,
        run_id,
        exported.folder,
        reports={**ctx.reports, "validation": data.validation, "export": exported.as_dict()},
    )
    eval_hash = dataset_hash(ctx.eval_pairs)
    version = register_candidate(
        ctx.settings,
        run_id,
        exported.folder,
        train_dataset_hash=dataset_hash(data.train),
        scores=EvalScores.from_report(
            ctx.reports[EVAL_SET_NAME], dataset_hash=eval_hash, name=EVAL_SET_NAME
        ),
        extra_tags={"ulasan.smsa_test.macro_f1": f"{ctx.reports['smsa-test']['macro_f1']:.6f}"},
    )
    ctx.model_version = version.version
    ctx.tracker.tags({"ulasan.model_version": version.version})


def gate(ctx: PipelineContext) -> None:
    """The gate on the fixed evaluation set: ``champion`` moves only when it passes."""
    version = require(ctx.model_version, "the registered version")
    decision = gate_and_promote(ctx.settings, ctx.config, version, ctx.eval_pairs)
    ctx.gate = decision.as_dict()
    ctx.tracker.tags({"ulasan.gate.decision": "promoted" if decision.promoted else "rejected"})
    ctx.tracker.metrics({"gate_promoted": float(decision.promoted)})


def choose_decision_bias(
    config: TrainConfig, checkpoint_dir: Path, base_rows: Sequence[Example] = ()
) -> BiasChoice:
    """Choose ``config.bias_classes``' logit offsets for macro-F1 on ``config.bias_data``
    (held-out rows of the serving domain) with the fine-tuned checkpoint, and write them into
    the checkpoint's classification head (see :mod:`trainer.bias`). With ``base_rows`` (the
    fixed evaluation set), the offsets may cost them at most ``config.bias_base_tolerance``
    macro-F1 (by default ``gate.base_tolerance / 4``). The rows are scored at the length the
    export will serve.

    With ``config.domain_tags`` the offsets are the tagged sources' own: chosen on their rows
    of ``bias_data``, left out of the checkpoint and exported as the manifest's
    ``domain_offsets`` (the runtime adds them to those sources' texts only), so the base
    domain never sees them and ``base_rows`` do not guard them (``BiasChoice.domain``)."""
    assert config.bias_data is not None
    report = validate(load_training_file(config.bias_data.removeprefix("file:")))
    rows = list(report.accepted)
    if not rows:
        raise DataError(f"{config.bias_data}: no valid labelled rows to choose a decision bias")
    tokenizer, model = load_classifier(checkpoint_dir)

    def log_probs(examples: Sequence[Example]) -> np.ndarray:
        texts = [e.text for e in examples]
        probs = predict_proba(model, tokenizer, texts, batch_size=128)
        out: np.ndarray = np.log(np.clip(probs, 1e-12, None))
        return out

    if config.domain_tags:
        # the offsets will reach the tagged sources' texts only (the manifest's
        # domain_offsets): chosen on those rows, and the base domain needs no guard
        rows = [e for e in rows if split_tag(e.text, config.domain_tags)[0] is not None]
        if not rows:
            raise DataError(f"{config.bias_data}: no rows of the sources {config.domain_tags}")
        choice = choose_bias(log_probs(rows), [str(e.label) for e in rows], config.bias_classes)
        return replace(choice, domain=True)
    base = None
    if base_rows:
        labels = [str(e.label) for e in base_rows]
        tolerance = config.bias_base_tolerance
        if tolerance is None:
            tolerance = config.gate.base_tolerance / 4
        base = BaseRows(log_probs(base_rows), labels, tolerance)
    choice = choose_bias(
        log_probs(rows), [str(e.label) for e in rows], config.bias_classes, base=base
    )
    if any(choice.offsets.values()):
        apply_bias(model, choice.offsets)
        model.save_pretrained(checkpoint_dir)
    return choice


def adapt_checkpoint(
    config: TrainConfig,
    corpus: list[str],
    progress: bool,
    console: Any,
    tracker: Tracker,
    *,
    weights: list[float] | None = None,
) -> tuple[PreparedModel, VocabularyExtension | None]:
    """``config.model`` (a checkpoint folder or hub id), its vocabulary first extended by
    ``config.pretrain.adapt_vocab`` words of ``corpus`` when set, with its encoder continued
    for ``config.pretrain.adapt_steps`` MLM steps on ``corpus`` (drawn by ``weights`` when
    given): a ``PreparedModel`` and the vocabulary extension (None when off)."""
    tokenizer, model = load_classifier(config.model)
    extension = None
    if config.pretrain.adapt_vocab > 0:
        extension = extend_vocabulary(
            tokenizer,
            model,
            corpus,
            max_new=config.pretrain.adapt_vocab,
            min_count=config.pretrain.adapt_vocab_min_count,
        )
        tracker.params({"vocab_added": len(extension.words), "vocab_size": extension.new_size})
        console.print(
            f"vocabulary: {extension.old_size} -> {extension.new_size} tokens; most frequent "
            f"new words: {', '.join(extension.words[:12]) or '(none)'}"
        )
    adapted = adapt_mlm(
        model,
        tokenizer,
        corpus,
        config.pretrain,
        seed=config.seed,
        weights=weights,
        bf16=config.bf16,
        progress=progress,
        console=console,
        on_log=lambda step, m: tracker.metrics({f"adapt_{k}": v for k, v in m.items()}, step=step),
    )
    console.print(
        f"domain-adaptive MLM: {adapted.steps} steps on {len(corpus)} texts"
        f"{' (drawn by sampling weight)' if weights is not None else ''} in "
        f"{adapted.seconds:.0f} s, final loss {adapted.final_loss}"
    )
    return PreparedModel(tokenizer, model, adapted), extension


def gate_and_promote(
    settings: Settings, config: TrainConfig, version: str, eval_pairs: Sequence[tuple[str, str]]
) -> GateDecision:
    """The registry engineer's gate on the fixed evaluation set with the config's thresholds."""
    return run_gate(
        settings,
        eval_pairs,
        version=version,
        config=GateConfig(
            min_accuracy=config.gate.min_accuracy,
            tolerance=config.gate.tolerance,
            base_tolerance=config.gate.base_tolerance,
        ),
        eval_name=EVAL_SET_NAME,
    )
