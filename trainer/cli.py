"""``ulasan train`` (and, from the registry side, ``evaluate`` and ``promote``): the trainer's CLI.

The app is merged into the top-level ``ulasan`` app without a group name, so its commands
are ``ulasan train``, ``ulasan evaluate``, ``ulasan promote``. Heavy imports (torch,
transformers, mlflow) stay inside the trainer's functions.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console

from trainer import cli_options as opts
from trainer.config import load_config
from trainer.errors import TrainerError
from trainer.evaluate import evaluate_model, read_examples
from trainer.gate import GateConfig, run_gate
from trainer.pipeline import EVAL_SET_NAME, fixed_eval_set, run_training, summary_table
from trainer.report import markdown_table, run_report
from trainer.validation import validate
from ulasan.core.inference import InferenceError
from ulasan.core.settings import Settings

app = typer.Typer(help="Train, evaluate and promote sentiment models.", no_args_is_help=True)
console = Console()


@app.command("train")
def train(
    config: opts.ConfigFile = None,
    model: opts.Model = None,
    data: opts.Data = None,
    seed: opts.Seed = None,
    epochs: opts.Epochs = None,
    batch_size: opts.BatchSize = None,
    lr: opts.LearningRate = None,
    max_length: opts.MaxLength = None,
    dynamic_padding: opts.DynamicPadding = None,
    class_weighting: opts.ClassWeighting = None,
    patience: opts.Patience = None,
    mlm_steps: opts.MlmSteps = None,
    resume_pretrained: opts.ResumePretrained = None,
    restarts: opts.Restarts = None,
    soup: opts.Soup = None,
    output_dir: opts.OutputDir = None,
    register: opts.Register = None,
    promote: opts.Promote = None,
) -> None:
    """Train a sentiment model end to end and register it (one MLflow run).

    Data and validation, tokenizer and MLM pre-training (ulasan-mini), fine-tuning, evaluation,
    ONNX export and int8 quantization, registration as candidate, the promotion gate.
    """
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
                "pretrain.resume_from": resume_pretrained,
                "restarts": restarts,
                "soup": soup,
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


#: exit status of ``ulasan promote`` when the gate refuses the candidate (1 is an error)
EXIT_REFUSED = 3


def _column(value: str | None) -> str | int | None:
    return int(value) if value is not None and value.isdigit() else value


@app.command("evaluate")
def evaluate(
    model: str = typer.Option(
        ...,
        "--model",
        "-m",
        help="models:/ulasan-sentiment@ALIAS | models:/ulasan-sentiment/N | a serving folder",
    ),
    data: Path = typer.Option(..., "--data", "-d", help="labelled file (tsv, csv or jsonl)"),
    fmt: str | None = typer.Option(
        None, "--format", help="tsv | csv | jsonl [default: from the file suffix]"
    ),
    text_col: str | None = typer.Option(
        None, "--text-col", help="column name or 0-based index [tsv: 0, csv/jsonl: text]"
    ),
    label_col: str | None = typer.Option(
        None, "--label-col", help="column name or 0-based index [tsv: 1, csv/jsonl: label]"
    ),
    header: bool | None = typer.Option(
        None, "--header/--no-header", help="first row names the columns [tsv: no, csv: yes]"
    ),
    threads: int | None = typer.Option(None, "--threads", help="ONNX Runtime intra-op threads"),
) -> None:
    """Score a served model on a labelled file; print one JSON object to stdout.

    Keys: n, accuracy, macro_f1, per_class, confusion_matrix, ece, model_name, model_version.
    """
    err = Console(stderr=True)
    if fmt is not None and fmt not in ("tsv", "csv", "jsonl"):
        err.print(f"[red]unknown --format {fmt!r}:[/red] use tsv, csv or jsonl")
        raise typer.Exit(2)
    try:
        examples = read_examples(
            data,
            fmt=fmt,  # type: ignore[arg-type]
            text_col=_column(text_col),
            label_col=_column(label_col),
            header=header,
        )
        report = evaluate_model(model, examples, Settings(), intra_op_threads=threads)
    except (TrainerError, InferenceError) as exc:
        err.print(f"[red]evaluation failed:[/red] {exc}")
        raise typer.Exit(1) from exc
    report["data"] = str(data)
    typer.echo(json.dumps(report))


@app.command("promote")
def promote(
    version: int | None = typer.Option(None, "--version", help="registered version to gate"),
    alias: str | None = typer.Option(
        None, "--alias", help="gate the version holding this alias [default: candidate]"
    ),
    eval_data: Path | None = typer.Option(
        None,
        "--eval-data",
        help="labelled file (tsv, csv or jsonl) [default: the fixed evaluation set the training "
        "pipeline gates on: SmSA valid minus texts in SmSA train, validated]",
    ),
    min_accuracy: float = typer.Option(0.75, "--min-accuracy", min=0.0, max=1.0),
    tolerance: float = typer.Option(
        0.0, "--tolerance", min=0.0, max=1.0, help="macro-F1 the candidate may lose"
    ),
) -> None:
    """Gate a registered version; move alias champion to it only if it passes.

    Passes: accuracy >= --min-accuracy and macro-F1 >= the champion's minus --tolerance, both on
    the evaluation set. Prints the decision as JSON; exit status 0 promoted, 3 refused, 1 error.
    """
    err = Console(stderr=True)
    if version is not None and alias is not None:
        err.print("[red]give --version or --alias, not both[/red]")
        raise typer.Exit(2)
    try:
        if eval_data is None:
            eval_name = EVAL_SET_NAME
            examples = [(e.text, str(e.label)) for e in validate(fixed_eval_set()).accepted]
        else:
            eval_name = eval_data.name
            examples = read_examples(eval_data)
        decision = run_gate(
            Settings(),
            examples,
            version=version,
            alias=alias,
            config=GateConfig(min_accuracy=min_accuracy, tolerance=tolerance),
            eval_name=eval_name,
        )
    except (TrainerError, InferenceError) as exc:
        err.print(f"[red]promotion failed:[/red] {exc}")
        raise typer.Exit(1) from exc
    typer.echo(json.dumps(decision.as_dict()))
    if not decision.promoted:
        err.print(f"[yellow]not promoted:[/yellow] {decision.reason}")
        raise typer.Exit(EXIT_REFUSED)


@app.command("report")
def report(
    model: str | None = typer.Option(
        None,
        "--model",
        help="serving folder or models:/ulasan-sentiment@champion (omit: baseline only)",
    ),
    baseline: bool = typer.Option(
        True,
        "--baseline/--no-baseline",
        help="also train and score the TF-IDF + LinearSVC baseline",
    ),
    out: Path | None = typer.Option(None, "--out", help="also write the JSON report here"),
    markdown: bool = typer.Option(False, "--markdown", help="print a markdown table too"),
) -> None:
    """Score a model and the TF-IDF baseline on every held-out set; print one JSON object.

    Sets: SmSA valid (deduplicated), SmSA test, NusaX test without SmSA train texts, PRDECT-ID
    with rating-derived labels (out of domain).
    """
    try:
        result = run_report(model, Settings(), baseline=baseline)
    except TrainerError as exc:
        console.print(f"[red]report failed:[/red] {exc}")
        raise typer.Exit(1) from exc
    text = json.dumps(result, indent=2, default=str)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text + "\n", encoding="utf-8")
    typer.echo(text)
    if markdown:
        console.print(markdown_table(result), markup=False)
