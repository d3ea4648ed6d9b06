"""``ulasan bootstrap``: make a fresh deployment servable, once, idempotently.

Database migrations, every ulasan topic, and a champion: when the registry has none, the
first model is trained and promoted (about 9 minutes for ulasan-mini on 2 cores). Compose's
one-shot ``bootstrap`` service and a Helm pre-install job run it; running it again on a
deployment that has all three changes nothing. Workers started meanwhile wait for the
champion (``ULASAN_WORKER__MODEL_WAIT_S``).
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from deploy.local import database
from deploy.local.errors import StackError
from trainer.registry import champion
from ulasan.core.errors import CoreError
from ulasan.core.kafka_admin import ensure_ulasan_topics
from ulasan.core.settings import Settings
from ulasan.errors import MainJobError
from ulasan.main_job import ensure_champion

console = Console()


def bootstrap_command(
    train: bool = typer.Option(
        True,
        "--train/--no-train",
        help="train and promote a champion when the registry has none (--no-train: only report)",
    ),
    train_config: Path | None = typer.Option(
        None, "--train-config", help="training config for that first model [ulasan-mini.yaml]"
    ),
) -> None:
    """Apply migrations, create the topics, and train a champion if there is none."""
    settings = Settings()
    try:
        applied = database.migrate(settings.postgres.dsn)
        console.print(f"migrations: {len(applied)} applied" if applied else "migrations: current")
        created = [r.topic for r in ensure_ulasan_topics(settings) if r.action == "created"]
        console.print(f"topics: created {', '.join(created)}" if created else "topics: all exist")
    except (StackError, CoreError) as exc:
        console.print(
            f"[red]bootstrap failed:[/red] {_redact(str(exc), settings)}", highlight=False
        )
        raise typer.Exit(1) from exc
    if not train:
        _report_champion(settings)
        return
    try:
        uri = ensure_champion(settings, train_config, console)
    except MainJobError as exc:
        console.print(f"[red]bootstrap failed:[/red] {exc}", highlight=False)
        raise typer.Exit(1) from exc
    console.print(f"champion: {uri}; bootstrap done")


def _redact(text: str, settings: Settings) -> str:
    """``text`` without the database password (a migration error names the DSN)."""
    password = settings.postgres.password
    return text.replace(password, "***") if password else text


def _report_champion(settings: Settings) -> None:
    """Say whether the registry has a champion (exit 3 when it has none)."""
    info = champion(settings)
    if info is None:
        console.print(f"champion: {settings.mlflow.registered_model} has none (--no-train)")
        raise typer.Exit(3)
    console.print(f"champion: {info.uri}; bootstrap done")
