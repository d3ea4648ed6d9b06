"""``ulasan train``'s pipeline: data to promoted model in one MLflow run, as a list of named
stages over one :class:`PipelineContext`."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rich.console import Console

from trainer.config import TrainConfig
from trainer.pipeline import stages
from trainer.pipeline.context import PipelineContext, PipelineResult
from trainer.pipeline.summary import summary_dict
from trainer.pipeline.tracking import flat_params, write_json

if TYPE_CHECKING:
    from trainer.data import Example
    from ulasan.core.settings import Settings


def _always(ctx: PipelineContext) -> bool:
    return True


@dataclass(frozen=True)
class Stage:
    """A named step of the pipeline; ``applies`` says whether this run takes it; a timed
    stage is announced and its wall and CPU seconds logged as ``stage_*seconds_<name>``."""

    name: str
    run: Callable[[PipelineContext], None]
    applies: Callable[[PipelineContext], bool] = _always
    timed: bool = True


#: data to profiled serving folder; every run takes these
TRAINING_STAGES: tuple[Stage, ...] = (
    Stage("data", stages.load_data),
    Stage("pretrain", stages.pretrain, lambda ctx: ctx.config.is_mini),
    Stage(
        "adapt",
        stages.adapt,
        lambda ctx: not ctx.config.is_mini and ctx.config.pretrain.adapt_steps > 0,
    ),
    Stage("epoch_weights", stages.epoch_weights, lambda ctx: ctx.sample_weight is not None, False),
    Stage("fine_tune", stages.fine_tune_model),
    Stage(
        "interpolate",
        stages.interpolate_weights,
        lambda ctx: ctx.config.interpolate and not ctx.config.is_mini,
    ),
    Stage("bias", stages.decision_bias, lambda ctx: ctx.config.bias_data is not None),
    Stage("export", stages.export),
    Stage("evaluate", stages.evaluate),
    Stage("profile", stages.profile),
)
#: MLflow registration and the gate; only with ``config.register_model``
REGISTRY_STAGES: tuple[Stage, ...] = (
    Stage("register", stages.register),
    Stage("gate", stages.gate, lambda ctx: ctx.config.promote),
)


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
    """Train, evaluate, export, register and gate one model.

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

    torch.set_num_threads(config.threads)
    ctx = PipelineContext.start(
        config,
        settings,
        console=console,
        progress=progress,
        on_stage=on_stage,
        sample_weight=sample_weight,
    )
    with ctx.tracker.run(run_name or f"train-{config.model}-{ctx.stamp}"):
        ctx.tracker.params(flat_params("", config.model_dump(mode="json")))
        ctx.tracker.tags({"ulasan.run_dir": str(ctx.run_dir), "ulasan.model": config.model})
        run_stages(ctx, TRAINING_STAGES)
        if config.register_model:
            run_stages(ctx, REGISTRY_STAGES)
        result = ctx.result()
        summary = write_json(ctx.run_dir / "summary.json", summary_dict(result))
        ctx.tracker.artifact(summary)
    return result


def run_stages(ctx: PipelineContext, pipeline: Sequence[Stage]) -> None:
    """Run each stage of ``pipeline`` that applies to ``ctx``, in order."""
    for stage in pipeline:
        if not stage.applies(ctx):
            continue
        if stage.timed:
            _timed(ctx, stage)
        else:
            stage.run(ctx)


def _timed(ctx: PipelineContext, stage: Stage) -> None:
    if ctx.on_stage is not None:
        ctx.on_stage(stage.name)
    ctx.console.rule(f"[bold]{stage.name}")
    started, cpu_started = time.perf_counter(), time.process_time()
    try:
        stage.run(ctx)
    finally:
        seconds = ctx.stage_seconds[stage.name] = time.perf_counter() - started
        cpu = ctx.stage_cpu_seconds[stage.name] = time.process_time() - cpu_started
        ctx.tracker.metrics(
            {f"stage_seconds_{stage.name}": seconds, f"stage_cpu_seconds_{stage.name}": cpu}
        )
