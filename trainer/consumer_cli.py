"""``ulasan trainer``: run the retraining consumer (and ``ulasan trainer runs`` to list runs)."""

from __future__ import annotations

import json
import signal

import psycopg
import typer
from rich.console import Console
from rich.table import Table

from trainer.errors import TrainerError
from trainer.retrain.config import TrainerSettings
from trainer.retrain.metrics import RetrainMetrics
from trainer.retrain.service import serve
from trainer.retrain.store import RunRecord
from ulasan.core.logs import configure_logging
from ulasan.core.serving import MetricsEndpoint, MetricsServeError
from ulasan.core.settings import Settings

console = Console()
app = typer.Typer(help="The retraining consumer of retrain.requests.v1.", no_args_is_help=True)


@app.command("serve")
def serve_command(
    max_requests: int | None = typer.Option(None, "--max", min=1, help="stop after N requests"),
    idle_timeout: float | None = typer.Option(
        None, "--idle-timeout", help="stop after this many seconds without a request"
    ),
    metrics_port: int | None = typer.Option(
        None,
        "--metrics-port",
        min=0,
        max=65535,
        help="serve /metrics here; 0 = none [ULASAN_RETRAIN__METRICS_PORT, 9463]",
    ),
    register: bool | None = typer.Option(
        None,
        "--register/--no-register",
        help="register /metrics as a file_sd target [ULASAN_PROMETHEUS__REGISTER_TARGETS]",
    ),
    loglevel: str = typer.Option("info", "--loglevel"),
) -> None:
    """Consume retrain.requests.v1: train, gate, promote, announce; one run at a time.

    Stops on SIGTERM or Ctrl-C too (a run cut short keeps its claim until the lease expires;
    the next trainer takes it over)."""
    settings = TrainerSettings()
    if metrics_port is not None:
        retrain = settings.retrain.model_copy(update={"metrics_port": metrics_port})
        settings = settings.model_copy(update={"retrain": retrain})
    configure_logging(loglevel, settings.log_format)
    console.print(
        f"trainer: {settings.retrain.topic_prefix}retrain.requests.v1 at "
        f"{settings.kafka.bootstrap_servers}, config {settings.retrain.config}, "
        f"registry {settings.mlflow.uri} ({settings.mlflow.registered_model})"
    )
    signal.signal(signal.SIGTERM, _interrupt)  # a clean stop: /metrics is unregistered
    metrics = RetrainMetrics()
    cfg = settings.retrain
    try:
        with MetricsEndpoint(
            settings, host=cfg.metrics_host, role="trainer", register=register
        ) as endpoint:
            _serve_metrics(endpoint, settings, metrics)
            records = serve(
                settings,
                max_requests=max_requests,
                idle_timeout_s=idle_timeout,
                on_record=_print_record,
                metrics=metrics,
            )
    except TrainerError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from exc
    except KeyboardInterrupt:
        console.print("trainer stopped")
        return
    console.print(f"handled {len(records)} request(s)")


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _print_record(r: RunRecord) -> None:
    console.print(
        f"run {r.run_id}: {r.status} ({', '.join(r.reasons)}) {r.decision or ''} "
        f"promoted={r.promoted_version}"
    )


def _serve_metrics(
    endpoint: MetricsEndpoint, settings: TrainerSettings, metrics: RetrainMetrics
) -> None:
    """Serve /metrics and register it with Prometheus (nothing when the port is 0); exit 2
    when the port is taken."""
    cfg = settings.retrain
    if not cfg.metrics_port:
        return
    try:
        endpoint.announce(
            f"trainer-{cfg.group_id}-{cfg.metrics_port}", cfg.metrics_port, serve=metrics.serve
        )
    except MetricsServeError as exc:
        console.print(f"[red]{exc}[/red]; pass --metrics-port with a free port (or 0 for none)")
        raise typer.Exit(2) from exc
    console.print(f"metrics on http://{cfg.metrics_host}:{cfg.metrics_port}/metrics")


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
