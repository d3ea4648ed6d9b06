"""``ulasan train`` (and, from the registry side, ``evaluate`` and ``promote``): the trainer's CLI.

The app is merged into the top-level ``ulasan`` app without a group name, so its commands
are ``ulasan train``, ``ulasan evaluate``, ``ulasan promote``. Heavy imports stay inside
the commands.
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

app = typer.Typer(help="Train, evaluate and promote sentiment models.", no_args_is_help=True)
console = Console()


@app.command("train")
def train(
    config: Path | None = typer.Option(
        None, "--config", "-c", help="YAML training config [default: configs/ulasan-mini.yaml]"
    ),
    model: str | None = typer.Option(
        None, "--model", help="ulasan-mini | a Hugging Face hub id | a local checkpoint folder"
    ),
    data: str | None = typer.Option(
        None, "--data", help="smsa | smsa+prdect | file:PATH | postgres"
    ),
    seed: int | None = typer.Option(None, "--seed"),
    epochs: int | None = typer.Option(None, "--epochs"),
    batch_size: int | None = typer.Option(None, "--batch-size"),
    lr: float | None = typer.Option(None, "--lr", help="fine-tuning peak learning rate"),
    max_length: int | None = typer.Option(None, "--max-length", help="tokens per text"),
    dynamic_padding: bool | None = typer.Option(
        None, "--dynamic-padding/--no-dynamic-padding", help="length-bucketed batches"
    ),
    class_weighting: bool | None = typer.Option(
        None, "--class-weighting/--no-class-weighting", help="inverse-frequency class weights"
    ),
    patience: int | None = typer.Option(
        None, "--patience", help="early stopping on valid macro-F1 (0 = off)"
    ),
    mlm_steps: int | None = typer.Option(
        None, "--mlm-steps", help="MLM pre-training steps for ulasan-mini (0 = none)"
    ),
    output_dir: Path | None = typer.Option(None, "--output-dir", help="where run folders go"),
    register: bool | None = typer.Option(
        None, "--register/--no-register", help="log to MLflow, register, gate and promote"
    ),
    promote: bool | None = typer.Option(
        None, "--promote/--no-promote", help="run the gate after registering"
    ),
) -> None:
    """Train a sentiment model end to end: data, tokenizer, pre-training, fine-tuning, evaluation,
    ONNX export, registration as candidate and the promotion gate, all in one MLflow run."""
    from trainer.config import load_config
    from trainer.errors import TrainerError
    from trainer.pipeline import run_training, summary_table
    from ulasan.settings import Settings

    try:
        cfg = load_config(config).with_overrides(
            {
                "model": model,
                "data": data,
                "seed": seed,
                "epochs": epochs,
                "batch_size": batch_size,
                "lr": lr,
                "max_length": max_length,
                "dynamic_padding": dynamic_padding,
                "class_weighting": class_weighting,
                "patience": patience,
                "pretrain.steps": mlm_steps,
                "output_dir": output_dir,
                "register_model": register,
                "promote": promote,
            }
        )
        result = run_training(cfg, Settings(), console=console)
    except TrainerError as exc:
        console.print(f"[red]training failed:[/red] {exc}")
        raise typer.Exit(1) from exc
    console.print(summary_table(result))
