"""``ulasan model``: the shipped champion: write it from a run, check it, register it."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from trainer import shipped
from trainer.config import DEFAULT_CONFIG
from trainer.errors import TrainerError
from ulasan.core.settings import Settings

console = Console(stderr=True)
app = typer.Typer(
    help="The shipped champion (models/ulasan-mini): ship a run, verify, register.",
    no_args_is_help=True,
)

FOLDER = typer.Option(None, "--folder", help="the shipped model folder [models/ulasan-mini]")


@app.command("ship")
def ship_command(
    run_dir: Path = typer.Argument(..., help="a finished `ulasan train` run folder"),
    config: Path = typer.Option(DEFAULT_CONFIG, "--config", "-c", help="the config it ran"),
    folder: Path | None = FOLDER,
) -> None:
    """Write the shipped model folder (serving folder, float16 checkpoint, model card)."""
    out = folder or shipped.default_folder()
    try:
        made = shipped.ship(run_dir, out, config_path=config, settings=Settings())
    except (TrainerError, OSError) as exc:
        raise typer.BadParameter(str(exc)) from exc
    sizes = made.card["sizes_bytes"]
    console.print(f"shipped {made.name} to {out}: {sizes['total'] / 1e6:.1f} MB")


@app.command("verify")
def verify_command(folder: Path | None = FOLDER) -> None:
    """Check the shipped files against the card's sha256 and this code's feature version."""
    found = _load(folder)
    try:
        manifest = shipped.verify(found)
    except TrainerError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from exc
    console.print(f"{found.folder}: {len(found.card['files'])} files match; {manifest.model_name}")


@app.command("register")
def register_command(folder: Path | None = FOLDER) -> None:
    """Register the shipped model in MLflow and gate it (it becomes champion if it passes)."""
    found = _load(folder)
    try:
        version, promoted = shipped.register(Settings(), found)
    except TrainerError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from exc
    what = "promoted to champion" if promoted else "not promoted (the gate kept the champion)"
    console.print(f"registered {found.name} as version {version.version}: {what}")


def _load(folder: Path | None) -> shipped.ShippedModel:
    where = folder or shipped.default_folder()
    try:
        found = shipped.load(where)
    except TrainerError as exc:
        raise typer.BadParameter(str(exc)) from exc
    if found is None:
        console.print(f"[red]error:[/red] no shipped model at {where} (no {shipped.CARD_FILE})")
        raise typer.Exit(2)
    return found
