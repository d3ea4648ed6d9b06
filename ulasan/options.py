"""Command-line options that several ``ulasan`` commands share (one spelling, one help text)."""

from __future__ import annotations

from typing import Annotated

import typer

from ulasan.profiles import PROFILES

SHAPE_HELP = "indobert-base: a random BERT-base-shaped model, built offline"

#: ``--model`` of the commands that serve the champion unless told otherwise.
ServedModel = Annotated[
    str | None,
    typer.Option(
        "--model",
        help="models:/NAME@ALIAS | models:/NAME/N | a serving folder [default: the champion]",
    ),
]
Shape = Annotated[str | None, typer.Option("--shape", help=SHAPE_HELP)]
Workers = Annotated[
    int | None,
    typer.Option(
        "--workers",
        min=1,
        help="worker processes in the consumer group [one per core, at most the partitions]",
    ),
]
WorkerThreads = Annotated[
    int | None,
    typer.Option(
        "--threads", min=1, help="ONNX Runtime intra-op threads per worker [cores / workers]"
    ),
]
AsJson = Annotated[bool, typer.Option("--json", help="print one JSON object")]


def _known_profile(value: str) -> str:
    if value not in PROFILES:
        raise typer.BadParameter(f"unknown profile {value!r} (known: {', '.join(PROFILES)})")
    return value


#: ``--profile`` of ``ulasan run``: the workers' drift windows and trigger cool-downs.
LoopProfileName = Annotated[
    str,
    typer.Option(
        "--profile",
        callback=_known_profile,
        help="drift windows and trigger cool-downs: demo (20 s windows, the loop closes within "
        "minutes) or production (the defaults: 1 h windows); the run prints the values",
    ),
]
