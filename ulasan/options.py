"""Command-line options that several ``ulasan`` commands share (one spelling, one help text)."""

from __future__ import annotations

from typing import Annotated

import typer

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
