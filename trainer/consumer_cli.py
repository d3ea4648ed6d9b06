"""``ulasan trainer``: run the retraining consumer (and ``ulasan trainer runs`` to list runs)."""

from __future__ import annotations

import json

import psycopg
import typer
from rich.console import Console
from rich.table import Table

from trainer.errors import TrainerError
from trainer.retrain.config import TrainerSettings
from trainer.retrain.service import serve
from ulasan.core.logs import configure_logging
from ulasan.core.settings import Settings

console = Console()
app = typer.Typer(help="The retraining consumer of retrain.requests.v1.", no_args_is_help=True)


@app.command("serve")
def serve_command(
    max_requests: int | None = typer.Option(None, "--max", min=1, help="stop after N requests"),
    idle_timeout: float | None = typer.Option(
        None, "--idle-timeout", help="stop after this many seconds without a request"
    ),
    loglevel: str = typer.Option("info", "--loglevel"),
) -> None:
    """Consume retrain.requests.v1: train, gate, promote, announce; one run at a time."""
    settings = TrainerSettings()
    configure_logging(loglevel, settings.log_format)
    console.print(
        f"trainer: {settings.retrain.topic_prefix}retrain.requests.v1 at "
        f"{settings.kafka.bootstrap_servers}, config {settings.retrain.config}, "
        f"registry {settings.mlflow.uri} ({settings.mlflow.registered_model})"
    )
    try:
        records = serve(
            settings,
            max_requests=max_requests,
            idle_timeout_s=idle_timeout,
            on_record=lambda r: console.print(
                f"run {r.run_id}: {r.status} ({', '.join(r.reasons)}) {r.decision or ''} "
                f"promoted={r.promoted_version}"
            ),
        )
    except TrainerError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from exc
    console.print(f"handled {len(records)} request(s)")


@app.command("runs")
def runs_command(
    limit: int = typer.Option(20, "--limit", min=1),
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
) -> None:
    """The latest retraining runs from retrain_runs."""
    settings = Settings()
    with psycopg.connect(settings.postgres.dsn, connect_timeout=10) as conn:
        cur = conn.execute(
            "SELECT run_id, reasons, status, duration_s, decision, promoted_version, scores, "
            "data_sizes FROM retrain_runs ORDER BY started_at DESC LIMIT %s",
            (limit,),
        )
        cols = [d.name for d in cur.description or []]
        rows = [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]
    if as_json:
        print(json.dumps(rows, default=str, indent=2))
        return
    table = Table("run", "reasons", "status", "seconds", "promoted", "decision")
    for r in rows:
        secs = f"{r['duration_s']:.0f}" if r["duration_s"] is not None else ""
        table.add_row(
            r["run_id"],
            ",".join(r["reasons"]),
            r["status"],
            secs,
            str(r["promoted_version"] or ""),
            (r["decision"] or "")[:80],
        )
    console.print(table)
