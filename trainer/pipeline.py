"""The training pipeline behind ``ulasan train``: data to promoted model, in one MLflow run."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table

from schemas.events import LABELS
from trainer.config import TrainConfig
from trainer.errors import DataError

if TYPE_CHECKING:
    from trainer.bias import BiasChoice
    from trainer.data import Example
    from trainer.gate import GateDecision
    from trainer.vocab import VocabularyExtension
    from ulasan.core.settings import Settings

#: The fixed evaluation set of the gate: SmSA valid without the texts that occur in SmSA train.
EVAL_SET_NAME = "smsa-valid-dedup"
#: Parity texts for the ONNX export (held-out texts, cleaned by the exporter like serving does).
PARITY_TEXTS = 256


@dataclass
class PipelineResult:
    """Everything one ``ulasan train`` run produced."""

    run_dir: Path
    config: TrainConfig
    serving_dir: Path | None
    checkpoint_dir: Path
    validation: dict[str, Any]
    reports: dict[str, dict[str, Any]]
    stage_seconds: dict[str, float]
    stage_cpu_seconds: dict[str, float]
    train_summary: dict[str, Any]
    export: dict[str, Any] | None = None
    run_id: str | None = None
    model_version: str | None = None
    gate: dict[str, Any] | None = None
    artifacts: dict[str, str] = field(default_factory=dict)

    @property
    def total_seconds(self) -> float:
        return sum(self.stage_seconds.values())


@dataclass(frozen=True)
class TrainingData:
    """Validated training examples, the fixed evaluation set and the pre-training corpus."""

    train: list[Example]
    valid: list[Example]
    corpus: list[str]  # cleaned, unlabelled, no test split
    validation: dict[str, Any]
    sources: dict[str, int]
    #: ``config.selection_data``: chooses the epoch beside ``valid``, never trained on
    selection: list[Example] = field(default_factory=list)


def fixed_eval_set() -> list[Example]:
    """SmSA valid minus the texts also in SmSA train (compared cleaned): the gate's fixed set,
    the same examples (and hash) whatever a run trains on."""
    from trainer.data import load_smsa
    from ulasan.core.text import clean

    seen = {clean(e.text) for e in load_smsa("train")}
    return [e for e in load_smsa("valid") if clean(e.text) not in seen]


def unlabelled_corpus(*, prdect: bool = True) -> list[str]:
    """Raw texts for the tokenizer and MLM: SmSA train+valid, NusaX train+valid and (unless
    ``prdect`` is false) PRDECT-ID."""
    from trainer.data import load_nusax, load_prdect, load_smsa

    texts = [e.text for split in ("train", "valid") for e in load_smsa(split)]
    texts += [e.text for split in ("train", "valid") for e in load_nusax(split)]
    if prdect:
        texts += [e.text for e in load_prdect()]
    return texts


def load_training_file(path: str | Path) -> list[Example]:
    """A labelled file for ``data: file:PATH``: CSV or JSONL with ``text`` and ``label``
    columns (keys), or a TSV with that header, or SmSA style without one (text, label)."""
    from trainer.data import DATA_ROOT, load_file

    resolved = Path(path)
    if not resolved.exists() and not resolved.is_absolute():
        resolved = DATA_ROOT / resolved
    if resolved.suffix.lower() == ".tsv":
        try:
            with resolved.open(encoding="utf-8") as fh:
                first = fh.readline().rstrip("\r\n").split("\t")
        except (OSError, UnicodeDecodeError) as exc:
            raise DataError(f"cannot read {resolved}: {exc}") from exc
        if "text" not in [c.strip().lower() for c in first]:
            return load_file(resolved, text_col=0, label_col=1)
    return load_file(resolved, text_col="text", label_col="label")


def load_training_data(config: TrainConfig, settings: Settings) -> TrainingData:
    """Load ``config.data``, validate it (rejections are reported, never dropped silently)
    and assemble the evaluation set and the pre-training corpus.

    ``smsa``: SmSA train. ``smsa+prdect``: plus PRDECT-ID with rating-derived labels.
    ``file:PATH``: the file's labelled rows (see :func:`load_training_file`).
    ``postgres``: SmSA train plus every labelled review in PostgreSQL (a retrain keeps the
    base corpus). Validation is always the fixed evaluation set (SmSA valid, deduplicated).
    """
    from trainer.data import load_postgres, load_prdect, load_smsa
    from trainer.validation import validate
    from ulasan.core.text import clean

    sources: dict[str, int] = {}
    rows: list[Example] = []

    def add(name: str, examples: list[Example]) -> None:
        sources[name] = len(examples)
        rows.extend(examples)

    if config.data in {"smsa", "smsa+prdect", "postgres"}:
        add("smsa/train", load_smsa("train"))
    if config.data == "smsa+prdect":
        add("prdect_id", load_prdect())
    if config.data == "postgres":
        add("postgres", load_postgres(settings.postgres.dsn))
    if config.data.startswith("file:"):
        path = config.data.removeprefix("file:")
        add(f"file:{path}", load_training_file(path))

    report = validate(rows)
    report.check(min_accepted=len(LABELS))
    train = list(report.accepted)
    if config.max_examples is not None and len(train) > config.max_examples:
        rng = random.Random(config.seed)  # noqa: S311 - sampling, not security
        train = rng.sample(train, config.max_examples)
    missing = [label for label in LABELS if not any(e.label == label for e in train)]
    if missing:
        raise DataError(f"the training data has no example of {missing}: cannot train 3 classes")

    valid_report = validate(fixed_eval_set())
    valid = list(valid_report.accepted)
    if config.max_valid_examples is not None and len(valid) > config.max_valid_examples:
        valid = random.Random(config.seed + 1).sample(valid, config.max_valid_examples)  # noqa: S311
    if not valid:
        raise DataError("the evaluation set is empty after validation")
    selection: list[Example] = []
    selection_report = None
    if config.selection_data is not None:
        selection_report = validate(load_training_file(config.selection_data.removeprefix("file:")))
        selection = list(selection_report.accepted)
    # The evaluation set stays fixed; a training text that is also in it (or in the selection
    # split) goes, and is counted.
    eval_keys = {clean(e.text) for e in [*valid, *selection]}
    overlap = sum(1 for e in train if clean(e.text) in eval_keys)
    if overlap:
        train = [e for e in train if clean(e.text) not in eval_keys]

    if config.pretrain_corpus in {"train", "no-prdect"}:
        prdect = config.pretrain_corpus == "train"
        raw_corpus = unlabelled_corpus(prdect=prdect) + [e.text for e in train]
    else:
        raw_corpus = [e.text for e in train]
    corpus = list(dict.fromkeys(c for c in (clean(t) for t in raw_corpus) if c))
    return TrainingData(
        train=train,
        valid=valid,
        corpus=corpus,
        validation={
            "train": report.to_dict(max_rejections=200),
            "eval": valid_report.to_dict(max_rejections=200),
            **(
                {"selection": selection_report.to_dict(max_rejections=200)}
                if selection_report is not None
                else {}
            ),
            "sources": sources,
            "train_used": len(train),
            "train_removed_as_in_eval_set": overlap,
            "corpus_texts": len(corpus),
        },
        sources=sources,
        selection=selection,
    )


def _flat(prefix: str, data: Any) -> dict[str, Any]:
    if isinstance(data, dict):
        out: dict[str, Any] = {}
        for key, value in data.items():
            out.update(_flat(f"{prefix}.{key}" if prefix else str(key), value))
        return out
    return {prefix: data}


class _Tracker:
    """One MLflow run (or nothing, when registration is off): params, metrics, artifacts."""

    def __init__(self, settings: Settings | None, config: TrainConfig) -> None:
        self.settings = settings
        self.config = config
        self.run_id: str | None = None
        self._client: Any = None

    @contextmanager
    def run(self, run_name: str) -> Iterator[_Tracker]:
        if self.settings is None:
            yield self
            return
        from mlflow import MlflowClient
        from mlflow.exceptions import MlflowException

        from trainer.errors import RegistryError

        uri = self.settings.mlflow.uri
        self._client = MlflowClient(tracking_uri=uri, registry_uri=uri)
        try:
            name = self.settings.mlflow.experiment
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
        self.run_id = run.info.run_id
        status = "FAILED"
        try:
            yield self
            status = "FINISHED"
        finally:
            self._client.set_terminated(self.run_id, status=status)

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


def _write_json(path: Path, data: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")
    return path


def _report_metrics(prefix: str, report: dict[str, Any]) -> dict[str, float | None]:
    out: dict[str, float | None] = {
        f"{prefix}_accuracy": report["accuracy"],
        f"{prefix}_macro_f1": report["macro_f1"],
        f"{prefix}_ece": report.get("ece"),
    }
    for label, scores in report["per_class"].items():
        out[f"{prefix}_f1_{label}"] = scores["f1"]
    return out


def choose_decision_bias(config: TrainConfig, checkpoint_dir: Path) -> BiasChoice:
    """Choose ``config.bias_classes``' logit offsets for macro-F1 on ``config.bias_data``
    (held-out rows of the serving domain) with the fine-tuned checkpoint, and write them into
    the checkpoint's classification head (see :mod:`trainer.bias`). The rows are scored at
    the length the export will serve."""
    import numpy as np

    from trainer.bias import apply_bias, choose_bias
    from trainer.modeling import load_classifier
    from trainer.train import predict_proba
    from trainer.validation import validate

    assert config.bias_data is not None
    report = validate(load_training_file(config.bias_data.removeprefix("file:")))
    rows = list(report.accepted)
    if not rows:
        raise DataError(f"{config.bias_data}: no valid labelled rows to choose a decision bias")
    tokenizer, model = load_classifier(checkpoint_dir)
    max_length = min(tokenizer.model_max_length, model.config.max_position_embeddings)
    probs = predict_proba(
        model, tokenizer, [e.text for e in rows], max_length=max_length, batch_size=128
    )
    choice = choose_bias(
        np.log(np.clip(probs, 1e-12, None)), [str(e.label) for e in rows], config.bias_classes
    )
    if any(choice.offsets.values()):
        apply_bias(model, choice.offsets)
        model.save_pretrained(checkpoint_dir)
    return choice


def corpus_weights(data: TrainingData, sample_weight: Callable[[Example], float]) -> list[float]:
    """Each pre-training corpus text's sampling weight: the largest of the training examples
    that clean to it; a text of no training example (an unlabelled corpus) counts as the
    lightest training example."""
    from ulasan.core.text import clean

    by_text: dict[str, float] = {}
    for example in data.train:
        key, weight = clean(example.text), sample_weight(example)
        by_text[key] = max(weight, by_text.get(key, weight))
    lightest = min(by_text.values(), default=1.0)
    return [by_text.get(text, lightest) for text in data.corpus]


def adapt_checkpoint(
    config: TrainConfig,
    corpus: list[str],
    progress: bool,
    console: Any,
    tracker: Any,
    *,
    weights: list[float] | None = None,
) -> tuple[Any, VocabularyExtension | None]:
    """``config.model`` (a checkpoint folder or hub id), its vocabulary first extended by
    ``config.pretrain.adapt_vocab`` words of ``corpus`` when set, with its encoder continued
    for ``config.pretrain.adapt_steps`` MLM steps on ``corpus`` (drawn by ``weights`` when
    given): a ``PreparedModel`` and the vocabulary extension (None when off)."""
    from trainer.modeling import load_classifier
    from trainer.pretrain import adapt_mlm
    from trainer.train import PreparedModel
    from trainer.vocab import extend_vocabulary

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


def run_training(
    config: TrainConfig,
    settings: Settings,
    *,
    console: Console | None = None,
    progress: bool = True,
    run_name: str | None = None,
    on_stage: Callable[[str], None] | None = None,
    sample_weight: Callable[[Example], float] | None = None,
) -> PipelineResult:
    """Train, evaluate, export, register and gate one model; see the module docstring.

    Stages: data (load + validate) -> tokenizer and MLM pre-training (ulasan-mini) ->
    fine-tuning (per-epoch metrics) -> evaluation of the int8 serving folder on the fixed
    evaluation set (SmSA valid, deduplicated: what the gate compares) and on SmSA test
    (reported only, never used to select) -> profile -> MLflow: artifacts, registration as
    ``candidate`` and the gate (``champion`` moves only when it passes). With
    ``config.register_model`` false, nothing touches MLflow. ``sample_weight(example)`` gives
    each validated training example its per-epoch sampling weight (see
    :func:`trainer.train.epoch_sample`; the trainer consumer up-weights the new domain).
    The run logs the PyTorch checkpoint as its ``checkpoint/`` artifact beside ``serving/``.
    """
    import torch

    from trainer.data import load_smsa
    from trainer.export import export_serving_folder
    from trainer.metrics import classification_report, plot_confusion
    from trainer.train import fine_tune, predict_proba, prepare_mini

    console = console or Console()
    torch.set_num_threads(config.threads)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    model_name = serving_model_name(config)
    run_dir = config.resolved_output_dir() / f"{stamp}-{model_name.replace('/', '_')}"
    run_dir.mkdir(parents=True, exist_ok=False)
    stages: dict[str, float] = {}
    # CPU seconds of this process (all threads): on a shared machine, wall time includes
    # waiting for other people's jobs, CPU time does not.
    cpu: dict[str, float] = {}
    tracker = _Tracker(settings if config.register_model else None, config)

    @contextmanager
    def stage(name: str) -> Iterator[None]:
        if on_stage is not None:
            on_stage(name)
        console.rule(f"[bold]{name}")
        started, cpu_started = time.perf_counter(), time.process_time()
        try:
            yield
        finally:
            stages[name] = time.perf_counter() - started
            cpu[name] = time.process_time() - cpu_started
            tracker.metrics(
                {f"stage_seconds_{name}": stages[name], f"stage_cpu_seconds_{name}": cpu[name]}
            )

    with tracker.run(run_name or f"train-{config.model}-{stamp}"):
        tracker.params(_flat("", config.model_dump(mode="json")))
        tracker.tags({"ulasan.run_dir": str(run_dir), "ulasan.model": config.model})

        with stage("data"):
            data = load_training_data(config, settings)
            validation_path = _write_json(run_dir / "validation_report.json", data.validation)
            tracker.artifact(validation_path)
            tracker.params(
                {
                    "n_train": len(data.train),
                    "n_eval": len(data.valid),
                    "n_selection": len(data.selection),
                    "n_corpus": len(data.corpus),
                    "eval_set": EVAL_SET_NAME,
                }
            )
            console.print(
                f"train {len(data.train)} examples ({data.sources}), eval {len(data.valid)} "
                f"({EVAL_SET_NAME}), pre-training corpus {len(data.corpus)} texts; rejected "
                f"{data.validation['train']['rejected']}: "
                f"{ {k: v for k, v in data.validation['train']['reason_counts'].items() if v} }"
            )

        prepared = None
        vocab_extension = None
        if config.is_mini:
            with stage("pretrain"):
                prepared = prepare_mini(
                    config,
                    data.corpus,
                    progress=progress,
                    console=console,
                    on_pretrain_log=lambda step, m: tracker.metrics(
                        {f"pretrain_{k}": v for k, v in m.items()}, step=step
                    ),
                )
                tracker.metrics(
                    {
                        "tokenizer_seconds": prepared.tokenizer_seconds,
                        "vocab_size": len(prepared.tokenizer),
                    }
                )
        elif config.pretrain.adapt_steps > 0:
            # a loaded checkpoint (a warm-started retrain): continue its encoder with MLM on
            # the training texts (the new domain's among them) before fine-tuning
            with stage("adapt"):
                adapt_weights = None
                if config.pretrain.adapt_sampling and sample_weight is not None:
                    adapt_weights = corpus_weights(data, sample_weight)
                prepared, vocab_extension = adapt_checkpoint(
                    config, data.corpus, progress, console, tracker, weights=adapt_weights
                )

        weights = None
        if sample_weight is not None:
            weights = [sample_weight(e) for e in data.train]
            tracker.params({"sampled_epoch_size": round(sum(weights))})
            console.print(
                f"sampling weights: {len(weights)} examples -> about {sum(weights):.0f} per epoch"
            )
        with stage("fine_tune"):
            result = fine_tune(
                config,
                data.train,
                # the epoch is chosen where the model will serve: base set + selection split
                [*data.valid, *data.selection],
                progress=progress,
                output_dir=run_dir,
                prepared=prepared,
                console=console,
                on_epoch=lambda epoch, m: tracker.metrics(m, step=epoch),
                sample_weights=weights,
            )
            tracker.artifact(run_dir / "history.json")

        bias = None
        if config.bias_data is not None:
            with stage("bias"):
                bias = choose_decision_bias(config, result.checkpoint_dir)
                tracker.params(
                    {f"decision_bias_{k}": v for k, v in bias.offsets.items()}
                    | {"decision_bias_n": bias.n}
                )
                console.print(
                    f"decision bias {bias.offsets} on {bias.n} held-out rows: macro-F1 "
                    f"{bias.macro_f1_before:.4f} -> {bias.macro_f1_after:.4f}"
                )

        from ulasan.core.text import default_lexicon

        smsa_test = load_smsa("test")
        with stage("export"):
            seen = {e.text for e in data.train}
            parity = [e.text for e in data.valid if e.text not in seen][:PARITY_TEXTS]
            lexicon = default_lexicon()
            exported = export_serving_folder(
                result.checkpoint_dir,
                run_dir / "serving",
                model_name=model_name,
                lexicon=lexicon,
                parity_texts=parity,
                quantize=config.quantize,
            )
            write_checkpoint_meta(
                result.checkpoint_dir,
                model_name=model_name,
                max_length=exported.manifest.max_length,
                feature_version=exported.manifest.feature_version,
                lexicon_version=exported.manifest.lexicon_version,
                warm_start_from=config.model if not config.is_mini else None,
            )
            tracker.metrics(
                {
                    k: v
                    for k, v in exported.as_dict().items()
                    if isinstance(v, int | float) and not isinstance(v, bool)
                }
            )

        reports: dict[str, dict[str, Any]] = {}
        with stage("evaluate"):
            from trainer.evaluate import evaluate_predictor
            from ulasan.core.inference import OnnxPredictor

            predictor = OnnxPredictor.from_folder(exported.folder, intra_op_threads=config.threads)
            eval_pairs = [(e.text, str(e.label)) for e in data.valid]
            test_pairs = [(e.text, str(e.label)) for e in smsa_test]
            reports[EVAL_SET_NAME] = evaluate_predictor(predictor, eval_pairs)
            reports["smsa-test"] = evaluate_predictor(predictor, test_pairs)
            if data.selection:
                reports["selection"] = evaluate_predictor(
                    predictor, [(e.text, str(e.label)) for e in data.selection]
                )
            # The PyTorch checkpoint too: the gap is what quantization cost.
            from transformers import AutoModelForSequenceClassification, AutoTokenizer

            model = AutoModelForSequenceClassification.from_pretrained(result.checkpoint_dir)
            tokenizer = AutoTokenizer.from_pretrained(result.checkpoint_dir)
            for name, pairs in (("smsa-test-pytorch", test_pairs),):
                probs = predict_proba(
                    model, tokenizer, [t for t, _ in pairs], max_length=exported.manifest.max_length
                )
                pred = [model.config.id2label[int(i)] for i in probs.argmax(axis=1)]
                reports[name] = classification_report([y for _, y in pairs], pred, probs)
            for name, report in reports.items():
                tracker.metrics(_report_metrics(name.replace("-", "_"), report))
                png = plot_confusion(
                    report, run_dir / "plots" / f"confusion_{name}.png", title=name
                )
                tracker.artifact(png, "plots")
                _write_json(run_dir / "reports" / f"{name}.json", report)

        with stage("profile"):
            from trainer.profile import build_profile, write_profile

            profile = build_profile(
                [e.text for e in data.train],
                [str(e.label) for e in data.train],
                folder=exported.folder,
                predictor=predictor,
                seed=config.seed,
            )
            write_profile(profile, exported.folder)

        summary = {
            "model": config.model,
            "num_parameters": result.num_parameters,
            "best_epoch": result.best_epoch,
            "averaged_epochs": result.averaged_epochs,
            "epochs_run": len(result.history),
            "class_weights": result.class_weights,
            "pretrain_steps": prepared.pretrain.steps if prepared and prepared.pretrain else 0,
            "pretrain_final_loss": (
                prepared.pretrain.final_loss if prepared and prepared.pretrain else None
            ),
            "vocab_size": len(prepared.tokenizer) if prepared else None,
            "adapt_steps": config.pretrain.adapt_steps if not config.is_mini else 0,
            "vocab_added": len(vocab_extension.words) if vocab_extension else 0,
            "decision_bias": bias.as_dict() if bias else None,
        }
        pipeline = PipelineResult(
            run_dir=run_dir,
            config=config,
            serving_dir=exported.folder,
            checkpoint_dir=result.checkpoint_dir,
            validation=data.validation,
            reports=reports,
            stage_seconds=stages,
            stage_cpu_seconds=cpu,
            train_summary=summary,
            export=exported.as_dict(),
            run_id=tracker.run_id,
        )
        if not config.register_model:
            _write_json(run_dir / "summary.json", _summary_dict(pipeline))
            return pipeline

        with stage("register"):
            from trainer.registry import (
                EvalScores,
                dataset_hash,
                log_serving_folder,
                register_candidate,
            )
            from ulasan.core.registry import CHECKPOINT_ARTIFACT

            eval_hash = dataset_hash(eval_pairs)
            # the PyTorch checkpoint too: a retrain continues from it (continued fine-tuning)
            tracker.artifact(result.checkpoint_dir, CHECKPOINT_ARTIFACT)
            log_serving_folder(
                settings,
                str(tracker.run_id),
                exported.folder,
                reports={**reports, "validation": data.validation, "export": exported.as_dict()},
            )
            version = register_candidate(
                settings,
                str(tracker.run_id),
                exported.folder,
                train_dataset_hash=dataset_hash(data.train),
                scores=EvalScores.from_report(
                    reports[EVAL_SET_NAME], dataset_hash=eval_hash, name=EVAL_SET_NAME
                ),
                extra_tags={"ulasan.smsa_test.macro_f1": f"{reports['smsa-test']['macro_f1']:.6f}"},
            )
            pipeline.model_version = version.version
            tracker.tags({"ulasan.model_version": version.version})

        if config.promote:
            with stage("gate"):
                decision = gate_and_promote(settings, config, version.version, eval_pairs)
                pipeline.gate = decision.as_dict()
                tracker.tags(
                    {"ulasan.gate.decision": "promoted" if decision.promoted else "rejected"}
                )
                tracker.metrics({"gate_promoted": float(decision.promoted)})
        _write_json(run_dir / "summary.json", _summary_dict(pipeline))
        tracker.artifact(run_dir / "summary.json")
    return pipeline


def serving_model_name(config: TrainConfig) -> str:
    """The model name a run's serving folder carries: ``ulasan-mini``, a hub id's last part,
    or, for a local checkpoint folder (a warm-started retrain), the name recorded in its
    ``ulasan_checkpoint.json`` (so a continued ulasan-mini stays ``ulasan-mini``)."""
    from trainer.registry import read_checkpoint_meta

    if config.is_mini:
        return config.model
    folder = Path(config.model)
    if folder.is_dir():
        recorded = read_checkpoint_meta(folder).get("model_name")
        if isinstance(recorded, str) and recorded:
            return recorded
        return folder.name
    return config.model.split("/")[-1]


def write_checkpoint_meta(
    checkpoint_dir: Path,
    *,
    model_name: str,
    max_length: int,
    feature_version: str,
    lexicon_version: str,
    warm_start_from: str | None = None,
) -> Path:
    """``ulasan_checkpoint.json`` beside the weights: what a retrain that continues from this
    checkpoint must keep consistent (labels in head order, tokenizer length, feature and
    lexicon versions of the serving folder exported from it)."""
    from ulasan.core.registry import CHECKPOINT_META_FILE

    return _write_json(
        checkpoint_dir / CHECKPOINT_META_FILE,
        {
            "model_name": model_name,
            "labels": list(LABELS),
            "max_length": max_length,
            "feature_version": feature_version,
            "lexicon_version": lexicon_version,
            "warm_start_from": warm_start_from,
        },
    )


def gate_and_promote(
    settings: Settings, config: TrainConfig, version: str, eval_pairs: Sequence[tuple[str, str]]
) -> GateDecision:
    """The registry engineer's gate on the fixed evaluation set with the config's thresholds."""
    from trainer.gate import GateConfig, run_gate

    return run_gate(
        settings,
        eval_pairs,
        version=version,
        config=GateConfig(min_accuracy=config.gate.min_accuracy, tolerance=config.gate.tolerance),
        eval_name=EVAL_SET_NAME,
    )


def _summary_dict(result: PipelineResult) -> dict[str, Any]:
    return {
        "run_dir": str(result.run_dir),
        "serving_dir": str(result.serving_dir) if result.serving_dir else None,
        "run_id": result.run_id,
        "model_version": result.model_version,
        "gate": result.gate,
        "stage_seconds": result.stage_seconds,
        "stage_cpu_seconds": result.stage_cpu_seconds,
        "total_seconds": result.total_seconds,
        "total_cpu_seconds": sum(result.stage_cpu_seconds.values()),
        "train": result.train_summary,
        "export": result.export,
        "scores": {
            name: {
                "n": r["n"],
                "accuracy": r["accuracy"],
                "macro_f1": r["macro_f1"],
                "ece": r["ece"],
            }
            for name, r in result.reports.items()
        },
    }


def summary_table(result: PipelineResult) -> Table:
    """The final rich summary of a training run."""
    table = Table(title=f"ulasan train: {result.config.model}", show_header=True)
    table.add_column("what")
    table.add_column("value", overflow="fold")
    for name, report in result.reports.items():
        table.add_row(
            name,
            f"n={report['n']}  accuracy {report['accuracy']:.4f}  macro-F1 "
            f"{report['macro_f1']:.4f}  ECE {report['ece']:.4f}",
        )
    summary = result.train_summary
    table.add_row(
        "model",
        f"{summary['num_parameters']:,} parameters, best epoch {summary['best_epoch']} "
        f"(averaged {summary['averaged_epochs']}), {summary['epochs_run']} epochs run",
    )
    if result.export:
        table.add_row(
            "export",
            f"int8 {result.export['model_bytes'] / 1e6:.1f} MB, parity: "
            + ", ".join(
                f"{k}={v}"
                for k, v in result.export.items()
                if k not in {"folder", "model_bytes", "fp32_model_bytes", "export_s", "quantize_s"}
            ),
        )
    table.add_row(
        "stages",
        "  ".join(f"{k} {v:.0f}s" for k, v in result.stage_seconds.items())
        + f"  (total {result.total_seconds:.0f}s wall, "
        f"{sum(result.stage_cpu_seconds.values()):.0f}s CPU over {result.config.threads} threads)",
    )
    table.add_row("serving folder", str(result.serving_dir))
    if result.run_id:
        table.add_row("MLflow run", result.run_id)
    if result.model_version:
        table.add_row("registered", f"version {result.model_version} (alias candidate)")
    if result.gate:
        verdict = "[green]promoted to champion" if result.gate["promoted"] else "[red]not promoted"
        table.add_row("gate", f"{verdict}[/]: {result.gate['reason']}")
    return table
