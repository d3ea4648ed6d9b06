"""The options of ``ulasan train`` (:mod:`trainer.cli`): each overrides one key of the YAML
training config; left out (None), the config's value holds."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

ConfigFile = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="YAML training config [default: configs/ulasan-mini.yaml]"),
]
Model = Annotated[
    str | None,
    typer.Option("--model", help="ulasan-mini | a Hugging Face hub id | a local checkpoint folder"),
]
Data = Annotated[
    str | None, typer.Option("--data", help="smsa | smsa+prdect | file:PATH | postgres")
]
Seed = Annotated[int | None, typer.Option("--seed")]
Epochs = Annotated[int | None, typer.Option("--epochs")]
BatchSize = Annotated[int | None, typer.Option("--batch-size")]
LearningRate = Annotated[float | None, typer.Option("--lr", help="fine-tuning peak learning rate")]
MaxLength = Annotated[int | None, typer.Option("--max-length", help="tokens per text")]
DynamicPadding = Annotated[
    bool | None,
    typer.Option("--dynamic-padding/--no-dynamic-padding", help="length-bucketed batches"),
]
ClassWeighting = Annotated[
    bool | None,
    typer.Option("--class-weighting/--no-class-weighting", help="inverse-frequency class weights"),
]
Patience = Annotated[
    int | None, typer.Option("--patience", help="early stopping on valid macro-F1 (0 = off)")
]
MlmSteps = Annotated[
    int | None,
    typer.Option("--mlm-steps", help="MLM pre-training steps for ulasan-mini (0 = none)"),
]
ResumePretrained = Annotated[
    Path | None,
    typer.Option(
        "--resume-pretrained",
        help="a run's pretrained/ folder: fine-tune from its MLM encoder instead of pre-training",
    ),
]
Restarts = Annotated[
    int | None,
    typer.Option("--restarts", help="fine-tunings from the same start; the best on valid is kept"),
]
Soup = Annotated[
    bool | None,
    typer.Option("--soup/--no-soup", help="greedy soup of the restarts instead of the best one"),
]
OutputDir = Annotated[Path | None, typer.Option("--output-dir", help="where run folders go")]
Register = Annotated[
    bool | None,
    typer.Option("--register/--no-register", help="log to MLflow, register, gate and promote"),
]
Promote = Annotated[
    bool | None, typer.Option("--promote/--no-promote", help="run the gate after registering")
]
