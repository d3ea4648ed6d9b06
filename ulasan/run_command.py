"""``ulasan run``: the command line of the main job (:mod:`ulasan.main_job`)."""

from __future__ import annotations

from pathlib import Path

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


def run_command(
    file: Path | None = typer.Option(
        None, "--file", help="review file to replay [default: data/prdect_id/prdect_id.csv]"
    ),
    preset: str | None = typer.Option(
        None, "--preset", help="file layout (prdect); default prdect for the default file"
    ),
    once: bool = typer.Option(
        False, "--once", help="the workers only (no gateway, trainer, UI); exit after the replay"
    ),
    train_config: Path | None = typer.Option(
        None, "--train-config", help="training config when no champion exists (configs/*.yaml)"
    ),
    model: str | None = typer.Option(
        None, "--model", help="serve this model (folder or models:/...) instead of the champion"
    ),
    rate: float | None = typer.Option(None, "--rate", help="replay at most N reviews/s"),
    max_rows: int | None = typer.Option(None, "--max", min=1, help="replay at most N reviews"),
    topic_prefix: str = typer.Option("", "--topic-prefix", help="isolated topics (tests)"),
    app_id: str = typer.Option("ulasan-worker", "--app-id", help="the worker's consumer group"),
    workers: Workers = None,
    no_stack: bool = typer.Option(
        False, "--no-stack", help="do not start the local stack (use the configured services)"
    ),
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
