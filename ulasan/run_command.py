"""``ulasan run``: the command line of the main job (:mod:`ulasan.main_job`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from producers.errors import ProducerError
from producers.replay import PRDECT_FILE
from ulasan.core.errors import CoreError
from ulasan.core.settings import Settings
from ulasan.errors import UlasanError
from ulasan.main_job import RunOptions, run_main_job
from ulasan.options import LoopProfileName, Workers
from ulasan.procs import interrupt_on_stop_signals

ReviewFile = Annotated[
    Path | None,
    typer.Option("--file", help="review file to replay [default: data/prdect_id/prdect_id.csv]"),
]
Preset = Annotated[
    str | None,
    typer.Option("--preset", help="file layout (prdect); default prdect for the default file"),
]
Once = Annotated[
    bool,
    typer.Option(
        "--once", help="the workers only (no gateway, trainer, UI); exit after the replay"
    ),
]
TrainConfig = Annotated[
    Path | None,
    typer.Option("--train-config", help="training config when no champion exists (configs/*.yaml)"),
]
Model = Annotated[
    str | None,
    typer.Option(
        "--model", help="serve this model (folder or models:/...) instead of the champion"
    ),
]
Rate = Annotated[float | None, typer.Option("--rate", help="replay at most N reviews/s")]
MaxRows = Annotated[int | None, typer.Option("--max", min=1, help="replay at most N reviews")]
TopicPrefix = Annotated[str, typer.Option("--topic-prefix", help="isolated topics (tests)")]
AppId = Annotated[str, typer.Option("--app-id", help="the worker's consumer group")]
NoStack = Annotated[
    bool,
    typer.Option("--no-stack", help="do not start the local stack (use the configured services)"),
]


def run_command(
    file: ReviewFile = None,
    preset: Preset = None,
    once: Once = False,
    train_config: TrainConfig = None,
    model: Model = None,
    rate: Rate = None,
    max_rows: MaxRows = None,
    topic_prefix: TopicPrefix = "",
    app_id: AppId = "ulasan-worker",
    workers: Workers = None,
    no_stack: NoStack = False,
    loop_profile: LoopProfileName = "demo",
) -> None:
    """The main job: stack up, champion (the shipped one, else trained), then the workers, the
    gateway (HTTP, gRPC), the trainer consumer and the UI, supervised; the review stream with
    its rating feedback, live progress, a summary; then it serves and shows the closed loop
    (drift -> retrain -> gate -> promotion -> hot reload) until Ctrl-C or SIGTERM. With
    --once: the workers only, exit after the replay."""
    # SIGTERM (timeout, systemd, containers) stops the children as Ctrl-C does
    interrupt_on_stop_signals()
    console = Console()
    if file is None:
        file = PRDECT_FILE
        preset = preset or "prdect"
    options = RunOptions(
        file=file,
        preset=preset,
        once=once,
        train_config=train_config,
        model=model,
        rate=rate,
        max_rows=max_rows,
        topic_prefix=topic_prefix,
        app_id=app_id,
        start_stack=not no_stack,
        workers=workers,
        profile=loop_profile,
    )
    try:
        run_main_job(options, Settings(), console)
    except (UlasanError, ProducerError, CoreError) as exc:
        console.print(f"[red]error:[/red] {exc}", highlight=False)
        raise typer.Exit(1) from exc
    except KeyboardInterrupt:
        console.print("interrupted")
        raise typer.Exit(130) from None
