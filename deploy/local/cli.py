"""``ulasan stack ...``: run the local stack; apply migrations and create topics on any stack."""

from __future__ import annotations

import time

import typer
from rich.console import Console

from deploy.local import database, manager
from deploy.local.errors import StackError
from deploy.local.service import State
from ulasan.core.errors import CoreError
from ulasan.core.kafka_admin import ensure_ulasan_topics
from ulasan.core.settings import Settings

app = typer.Typer(
    help="The local stack: Kafka, PostgreSQL, MLflow and Prometheus on 127.0.0.1.",
    no_args_is_help=True,
)
console = Console()

_STATE_STYLE = {"running": "green", "stopped": "dim", "unhealthy": "red"}


def _fail(exc: StackError | CoreError) -> typer.Exit:
    console.print(f"[red]error:[/red] {exc}", highlight=False)
    return typer.Exit(1)


def _say(line: str) -> None:
    console.print(f"[dim]… {line}[/dim]", highlight=False)


@app.command()
def up() -> None:
    """Start every service that is not running (idempotent) and print where each one is."""
    settings = Settings()
    t0 = time.monotonic()
    try:
        results = manager.up(settings, say=_say)
    except (StackError, CoreError) as exc:
        raise _fail(exc) from None
    for r in results:
        style = "green" if r.action == "started" else "default"
        notes = [r.note] if r.note else []
        if r.action == "started":
            notes.append(f"{r.seconds:.1f}s")
        note = f"  [dim]{'; '.join(notes)}[/dim]" if notes else ""
        console.print(
            f"{r.name:<11} [{style}]{r.action:<16}[/{style}] {r.address}{note}",
            highlight=False,
            soft_wrap=True,
        )
    console.print(f"stack is up in {time.monotonic() - t0:.1f}s (state: {settings.state_dir})")


@app.command()
def down() -> None:
    """Stop every service of the stack (SIGTERM, then SIGKILL; pg_ctl for PostgreSQL)."""
    settings = Settings()
    t0 = time.monotonic()
    try:
        results = manager.down(settings)
    except (StackError, CoreError) as exc:
        raise _fail(exc) from None
    for r in results:
        console.print(f"{r.name:<11} {r.action}")
    console.print(f"stack is down in {time.monotonic() - t0:.1f}s")


@app.command()
def status() -> None:
    """Print running / stopped / unhealthy per service; exit 1 unless all of them run."""
    settings = Settings()
    try:
        rows = manager.status(settings)
    except (StackError, CoreError) as exc:
        raise _fail(exc) from None
    for row in rows:
        style = _STATE_STYLE[row.state]
        pid = f"pid {row.pid}" if row.pid else "-"
        detail = f"  [red]{row.detail}[/red]" if row.detail else ""
        console.print(
            f"{row.name:<11} [{style}]{row.state:<10}[/{style}] {pid:<10} {row.address}{detail}",
            highlight=False,
            soft_wrap=True,
        )
    if any(row.state != State.RUNNING for row in rows):
        console.print("not every service is running: `ulasan stack up` starts them")
        raise typer.Exit(1)


@app.command()
def migrate() -> None:
    """Apply the database migrations (deploy/migrations) to Settings().postgres, idempotently."""
    settings = Settings()
    try:
        applied = database.migrate(settings.postgres.dsn)
    except (StackError, CoreError) as exc:
        raise _fail(exc) from None
    if applied:
        console.print(f"applied {len(applied)} migration(s): {', '.join(applied)}")
    else:
        console.print("database schema is up to date")


@app.command()
def topics() -> None:
    """Create every ulasan topic (and dead-letter topic) on Settings().kafka, idempotently."""
    settings = Settings()
    try:
        results = ensure_ulasan_topics(settings)
    except CoreError as exc:
        raise _fail(exc) from None
    for r in results:
        note = f"  [yellow]{r.note}[/yellow]" if r.note else ""
        console.print(f"{r.topic:<26} {r.action:<8} {r.partitions} partitions{note}")
