"""The training pipeline's explicit state: what a run was asked for, and what each stage has
produced so far (see :mod:`trainer.pipeline.stages`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from rich.console import Console

from trainer.config import TrainConfig
from trainer.errors import TrainerError
from trainer.pipeline.checkpoint import serving_model_name
from trainer.pipeline.tracking import Tracker

if TYPE_CHECKING:
    from trainer.bias import BiasChoice
    from trainer.data import Example
    from trainer.export import ExportReport
    from trainer.interpolate import Interpolation
    from trainer.pipeline.data import TrainingData
    from trainer.train import PreparedModel, TrainResult
    from trainer.vocab import VocabularyExtension
    from ulasan.core.inference import OnnxPredictor
    from ulasan.core.settings import Settings

T = TypeVar("T")


def require(value: T | None, what: str) -> T:
    """``value``, which an earlier stage must have produced."""
    if value is None:
        raise TrainerError(f"training pipeline: {what} is missing (a stage ran out of order)")
    return value


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


@dataclass
class PipelineContext:
    """One training run: its inputs, its run folder and MLflow run, and the stages' products
    (None until the stage that makes them has run)."""

    config: TrainConfig
    settings: Settings
    console: Console
    progress: bool
    stamp: str
    model_name: str
    run_dir: Path
    tracker: Tracker
    on_stage: Callable[[str], None] | None = None
    sample_weight: Callable[[Example], float] | None = None
    #: wall seconds per stage
    stage_seconds: dict[str, float] = field(default_factory=dict)
    #: CPU seconds of this process (all threads) per stage: on a shared machine, wall time
    #: includes waiting for other people's jobs, CPU time does not
    stage_cpu_seconds: dict[str, float] = field(default_factory=dict)
    data: TrainingData | None = None
    prepared: PreparedModel | None = None
    vocab_extension: VocabularyExtension | None = None
    epoch_weights: list[float] | None = None
    trained: TrainResult | None = None
    bias: BiasChoice | None = None
    interpolation: Interpolation | None = None
    exported: ExportReport | None = None
    predictor: OnnxPredictor | None = None
    eval_pairs: list[tuple[str, str]] = field(default_factory=list)
    reports: dict[str, dict[str, Any]] = field(default_factory=dict)
    model_version: str | None = None
    gate: dict[str, Any] | None = None

    @classmethod
    def start(
        cls,
        config: TrainConfig,
        settings: Settings,
        *,
        console: Console | None = None,
        progress: bool = True,
        on_stage: Callable[[str], None] | None = None,
        sample_weight: Callable[[Example], float] | None = None,
    ) -> PipelineContext:
        """A new run: its time stamp, model name and (new) run folder; its tracker is live
        only when ``config.register_model``."""
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        model_name = serving_model_name(config)
        run_dir = config.resolved_output_dir() / f"{stamp}-{model_name.replace('/', '_')}"
        run_dir.mkdir(parents=True, exist_ok=False)
        return cls(
            config=config,
            settings=settings,
            console=console or Console(),
            progress=progress,
            stamp=stamp,
            model_name=model_name,
            run_dir=run_dir,
            tracker=Tracker(settings if config.register_model else None),
            on_stage=on_stage,
            sample_weight=sample_weight,
        )

    def train_summary(self) -> dict[str, Any]:
        """The fine-tuning figures of ``summary.json``'s ``train``."""
        config, prepared = self.config, self.prepared
        trained = require(self.trained, "the fine-tuned model")
        pretrain = prepared.pretrain if prepared else None
        return {
            "model": config.model,
            "num_parameters": trained.num_parameters,
            "best_epoch": trained.best_epoch,
            "averaged_epochs": trained.averaged_epochs,
            "epochs_run": len(trained.history),
            "class_weights": trained.class_weights,
            "pretrain_steps": pretrain.steps if pretrain else 0,
            "pretrain_final_loss": pretrain.final_loss if pretrain else None,
            "vocab_size": len(prepared.tokenizer) if prepared else None,
            "adapt_steps": config.pretrain.adapt_steps if not config.is_mini else 0,
            "vocab_added": len(self.vocab_extension.words) if self.vocab_extension else 0,
            "decision_bias": self.bias.as_dict() if self.bias else None,
            "interpolation": self.interpolation.as_dict() if self.interpolation else None,
            "pretrain_resumed_from": (
                str(config.pretrain.resume_from) if config.pretrain.resume_from else None
            ),
            "restarts": trained.extra.get("restarts"),
            "restart_seed": trained.extra.get("restart_seed", config.seed),
            "soup_seeds": trained.extra.get("soup_seeds"),
            "anchor_rows": trained.extra.get("anchor_rows"),
        }

    def result(self) -> PipelineResult:
        """What the run produced so far."""
        exported = require(self.exported, "the serving folder")
        return PipelineResult(
            run_dir=self.run_dir,
            config=self.config,
            serving_dir=exported.folder,
            checkpoint_dir=require(self.trained, "the fine-tuned model").checkpoint_dir,
            validation=require(self.data, "the training data").validation,
            reports=self.reports,
            stage_seconds=self.stage_seconds,
            stage_cpu_seconds=self.stage_cpu_seconds,
            train_summary=self.train_summary(),
            export=exported.as_dict(),
            run_id=self.tracker.run_id,
            model_version=self.model_version,
            gate=self.gate,
        )
