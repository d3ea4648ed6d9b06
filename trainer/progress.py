"""Rich progress bars for training loops (a no-op context when progress is off)."""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


def progress_bar(enabled: bool, console: Console | None = None) -> AbstractContextManager[Any]:
    """A rich ``Progress`` (description, bar, n/N, elapsed, remaining, a ``info`` field)."""
    if not enabled:
        return nullcontext(None)
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[info]}"),
        console=console,
        transient=False,
    )


def add_task(progress: Any, description: str, total: int) -> Any:
    return None if progress is None else progress.add_task(description, total=total, info="")


def advance(progress: Any, task: Any, info: str | None = None) -> None:
    if progress is None:
        return
    if info is None:
        progress.advance(task)
    else:
        progress.update(task, advance=1, info=info)
