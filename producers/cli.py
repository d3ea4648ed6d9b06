"""``ulasan produce ...``: replay a file, publish labels, scrape Google Play into Kafka."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from producers.checkpoints import CheckpointStore, MemoryCheckpoints, PostgresCheckpoints
from producers.errors import ProducerError
from producers.feedback import publish_feedback_file
from producers.files import BadRow, count_lines, detect_format
from producers.google_play import PlayClient, PlayStats, produce
from producers.publish import Publisher, prefixed_topics
from producers.replay import ReplaySpec, replay
from producers.replay import preset as get_preset
from producers.runner import RunStats
from ulasan.core.settings import Settings

app = typer.Typer(
    help="Producers: put reviews and labels into Kafka (replay, feedback, google-play).",
    no_args_is_help=True,
)
console = Console()
err_console = Console(stderr=True)

FORMAT_HELP = "csv, tsv or jsonl (default: from the file extension)"
PREFIX_HELP = "prepend this to the topic names (isolated topics, like ULASAN_WORKER__TOPIC_PREFIX)"
NO_CHECKPOINT_HELP = "keep no checkpoint in PostgreSQL (every run publishes everything again)"


@contextmanager
def _checkpoints(settings: Settings, disabled: bool) -> Iterator[CheckpointStore]:
    store: CheckpointStore = (
        MemoryCheckpoints() if disabled else PostgresCheckpoints(settings.postgres.dsn)
    )
    try:
        yield store
    finally:
        store.close()


def _fail(exc: Exception) -> typer.Exit:
    err_console.print(f"[red]error:[/red] {exc}")
    return typer.Exit(1)


def progress_bar() -> Progress:
    """The progress bar of file producers: lines read, rows published, events/s."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("lines · {task.fields[published]} published · {task.fields[bad]} bad"),
        TextColumn("· {task.fields[rate]:.0f} events/s"),
        TimeElapsedColumn(),
        console=console,
    )


def report_bad_rows(bad_rows: list[BadRow], *, show: int) -> None:
    """Print the skipped rows with line numbers (the first ``show`` of them)."""
    if not bad_rows:
        return
    table = Table(title=f"{len(bad_rows)} bad row(s) skipped", title_justify="left")
    table.add_column("line", justify="right")
    table.add_column("reason")
    for bad in bad_rows[:show]:
        table.add_row(str(bad.line), bad.reason)
    console.print(table)
    if len(bad_rows) > show:
        console.print(f"... and {len(bad_rows) - show} more (--show-bad N to list more)")


def _summary(stats: RunStats, what: str) -> None:
    if stats.resumed_from is not None and stats.published == 0 and stats.finished:
        console.print(
            f"nothing new: the checkpoint says this file was already published up to line "
            f"{stats.resumed_from[1]} (use --from-start to publish it again)"
        )
        return
    extra = f" + {stats.extra_published} feedback" if stats.extra_published else ""
    console.print(
        f"[green]published {stats.published} {what}{extra}[/green] in {stats.elapsed_s:.1f}s "
        f"({stats.events_per_s:.0f}/s); {len(stats.bad_rows)} bad row(s) skipped"
        + (f"; {stats.already_done} rows already published before" if stats.already_done else "")
    )


@app.command("replay")
def replay_command(
    file: Path = typer.Argument(..., help="the review file", exists=False),
    preset: str | None = typer.Option(None, help="known file layout: prdect (PRDECT-ID)"),
    fmt: str | None = typer.Option(None, "--format", help=FORMAT_HELP),
    sep: str | None = typer.Option(None, help="field separator (CSV ',' and TSV tab by default)"),
    no_header: bool = typer.Option(False, "--no-header", help="no header row: columns 0, 1, ..."),
    text_col: str | None = typer.Option(None, help="text column [default: text]"),
    rating_col: str | None = typer.Option(None, help="1-5 star rating column"),
    id_col: str | None = typer.Option(None, help="review id column (default: a content hash)"),
    time_col: str | None = typer.Option(None, help="review time column (ISO 8601 or epoch s)"),
    app_col: str | None = typer.Option(None, help="app or product id column"),
    source: str = typer.Option("replay", help="the events' source field"),
    rate: float | None = typer.Option(None, help="at most N reviews per second"),
    loop: bool = typer.Option(False, help="start over at the end of the file (new ids per pass)"),
    max_rows: int | None = typer.Option(None, "--max", min=1, help="stop after N reviews"),
    from_start: bool = typer.Option(False, help="ignore the checkpoint and publish everything"),
    emit_feedback: bool = typer.Option(
        False, help="also publish rating labels to feedback.v1 (4-5 pos, 3 neu, 1-2 neg)"
    ),
    no_checkpoint: bool = typer.Option(False, help=NO_CHECKPOINT_HELP),
    topic_prefix: str = typer.Option("", help=PREFIX_HELP),
    show_bad: int = typer.Option(20, help="list at most N bad rows"),
) -> None:
    """Replay a review file into reviews.raw.v1: each good row once, bad rows reported."""
    overrides: dict[str, Any] = {
        "fmt": fmt,
        "sep": sep,
        "header": False if no_header else None,
        "text_col": text_col,
        "rating_col": rating_col,
        "id_col": id_col,
        "time_col": time_col,
        "app_col": app_col,
        "source": source,
        "emit_feedback": emit_feedback or None,
    }
    spec = _replay_spec(file, preset, overrides)
    if rate is not None and rate <= 0:
        raise _fail(ValueError("--rate must be > 0 reviews per second"))
    run = ReplayRun(rate=rate, loop=loop, max_rows=max_rows, from_start=from_start)
    stats = _run_replay(file, spec, run, topic_prefix=topic_prefix, no_checkpoint=no_checkpoint)
    report_bad_rows(stats.bad_rows, show=show_bad)
    _summary(stats, "reviews")


@dataclass(frozen=True)
class ReplayRun:
    """How a replay runs: its pace (reviews/s, None: as fast as Kafka takes them), whether it
    starts over at the end, where it stops, and whether it ignores the checkpoint."""

    rate: float | None
    loop: bool
    max_rows: int | None
    from_start: bool


def _run_replay(
    file: Path, spec: ReplaySpec, run: ReplayRun, *, topic_prefix: str, no_checkpoint: bool
) -> RunStats:
    """Replay ``file`` into Kafka with a progress bar; exit 1 on a producer error, 130 when
    interrupted (what was published is checkpointed)."""
    settings = Settings()
    try:
        publisher = Publisher(settings, topic_overrides=prefixed_topics(topic_prefix))
        publisher.check_connection()
        with _checkpoints(settings, no_checkpoint) as store, progress_bar() as bar:
            return replay(
                file,
                spec,
                publisher=publisher,
                checkpoints=store,
                rate=run.rate,
                loop=run.loop,
                max_rows=run.max_rows,
                from_start=run.from_start,
                on_progress=_replay_progress(bar, file, spec, run.loop),
            )
    except ProducerError as exc:
        raise _fail(exc) from exc
    except KeyboardInterrupt:
        console.print("interrupted: what was published is checkpointed; run again to go on")
        raise typer.Exit(130) from None


def _replay_spec(file: Path, preset: str | None, overrides: dict[str, Any]) -> ReplaySpec:
    """The spec of a replay (a preset with overrides, or the options alone); exit when bad."""
    try:
        if preset is not None:
            spec = get_preset(preset, **overrides)
        else:
            spec = ReplaySpec(**{k: v for k, v in overrides.items() if v is not None})
        detect_format(file, spec.fmt)
    except (ValueError, ProducerError) as exc:
        raise _fail(exc) from exc
    return spec


def _replay_progress(
    bar: Progress, file: Path, spec: ReplaySpec, loop: bool
) -> Callable[[RunStats, int], None]:
    """A progress task for the replay of ``file`` and the callback that moves it."""
    header = 1 if spec.header else 0
    total = max(count_lines(file) - header, 0) if file.is_file() else None
    task = bar.add_task(
        f"replay {file.name}", total=None if loop else total, published=0, bad=0, rate=0.0
    )

    def on_progress(stats: RunStats, line: int) -> None:
        elapsed = time.monotonic() - stats.started
        bar.update(
            task,
            completed=max(line - header, 0),
            published=stats.published,
            bad=len(stats.bad_rows),
            rate=stats.published / elapsed if elapsed > 0 else 0.0,
        )

    return on_progress


@app.command("feedback")
def feedback_command(
    file: Path = typer.Argument(..., help="labels: review_id,label[,source][,time]"),
    fmt: str | None = typer.Option(None, "--format", help=FORMAT_HELP),
    sep: str | None = typer.Option(None, help="field separator"),
    from_start: bool = typer.Option(False, help="ignore the checkpoint and publish everything"),
    no_checkpoint: bool = typer.Option(False, help=NO_CHECKPOINT_HELP),
    topic_prefix: str = typer.Option("", help=PREFIX_HELP),
    show_bad: int = typer.Option(20, help="list at most N bad rows"),
) -> None:
    """Publish true labels (LabelFeedback, source human unless the row says rating)."""
    settings = Settings()
    try:
        publisher = Publisher(settings, topic_overrides=prefixed_topics(topic_prefix))
        publisher.check_connection()
        with _checkpoints(settings, no_checkpoint) as store:
            stats = publish_feedback_file(
                file,
                fmt=detect_format(file, fmt),
                sep=sep,
                publisher=publisher,
                checkpoints=store,
                from_start=from_start,
            )
    except ProducerError as exc:
        raise _fail(exc) from exc
    report_bad_rows(stats.bad_rows, show=show_bad)
    _summary(stats, "labels")


def _parse_since(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise _fail(ValueError(f"--since {value!r} is not a date (2024-05-01)")) from None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


@app.command("google-play")
def google_play_command(
    app_id: str = typer.Argument(..., help="the app id, e.g. com.gojek.app"),
    lang: str = typer.Option("id", help="review language"),
    country: str = typer.Option("id", help="store country"),
    since: str | None = typer.Option(None, help="only reviews from this date (ISO 8601) on"),
    max_reviews: int | None = typer.Option(None, "--max", min=1, help="stop after N new reviews"),
    page_size: int = typer.Option(200, min=1, max=4500, help="reviews per request"),
    rate: float = typer.Option(1.0, help="at most N requests per second"),
    retries: int = typer.Option(4, min=0, help="retries per request (exponential backoff)"),
    no_checkpoint: bool = typer.Option(False, help=NO_CHECKPOINT_HELP),
    topic_prefix: str = typer.Option("", help=PREFIX_HELP),
) -> None:
    """Publish the new Google Play reviews of APP_ID (incremental, deduplicated, no names)."""
    since_at = _parse_since(since)
    if rate <= 0:
        raise _fail(ValueError("--rate must be > 0 requests per second"))
    settings = Settings()
    try:
        publisher = Publisher(settings, topic_overrides=prefixed_topics(topic_prefix))
        publisher.check_connection()
        client = PlayClient(lang=lang, country=country, requests_per_s=rate, retries=retries)
        with _checkpoints(settings, no_checkpoint) as store, console.status("fetching") as status:

            def on_page(stats: PlayStats) -> None:
                status.update(
                    f"{app_id}: page {stats.pages}, {stats.published} new, "
                    f"{stats.duplicates} seen before"
                )

            stats = produce(
                app_id,
                client=client,
                publisher=publisher,
                checkpoints=store,
                since=since_at,
                max_reviews=max_reviews,
                page_size=page_size,
                on_page=on_page,
            )
    except ProducerError as exc:
        raise _fail(exc) from exc
    for rid, reason in stats.skipped[:20]:
        console.print(f"skipped {rid}: {reason}")
    console.print(
        f"[green]published {stats.published} new review(s)[/green] of {app_id} from "
        f"{stats.pages} page(s); {stats.duplicates} already published, "
        f"{len(stats.skipped)} skipped; watermark "
        f"{stats.watermark.isoformat() if stats.watermark else 'not set yet'}"
    )
