"""The ``ulasan`` command line: one Typer app, each subcommand group owned by its package.

Heavy imports (faust, onnxruntime, torch, mlflow) happen inside commands, so ``ulasan --help``
stays fast.
"""

from __future__ import annotations

import typer
from rich.console import Console

from deploy.local.cli import app as stack_app
from deploy.local.smoke import smoke_command
from producers.cli import app as produce_app
from producers.gateway.cli import app as gateway_app
from schemas import export
from stream_processors.cli import consume_app, worker
from stream_processors.dlq_cli import dlq_app
from trainer.cli import app as trainer_app
from trainer.consumer_cli import app as trainer_consumer_app
from trainer.shipped_cli import app as model_app
from ui.cli import app as ui_app
from ulasan.bench import app as bench_app
from ulasan.bootstrap import bootstrap_command
from ulasan.chaos import app as chaos_app
from ulasan.core.settings import Settings
from ulasan.run_command import run_command as main_run_command
from ulasan.scenario import app as scenario_app

app = typer.Typer(
    name="ulasan",
    help="Event-driven sentiment streaming for Indonesian reviews.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
console = Console()

schemas_app = typer.Typer(help="Event schemas: export the JSON Schema files.", no_args_is_help=True)
app.add_typer(schemas_app, name="schemas")


@schemas_app.command("export")
def schemas_export(
    check: bool = typer.Option(False, "--check", help="fail if the files are stale, write nothing"),
) -> None:
    """Write the JSON Schema of every event to schemas/json/."""
    if check:
        stale = export.stale()
        if stale:
            console.print(f"[red]stale schema files:[/red] {', '.join(stale)}")
            console.print("run [bold]ulasan schemas export[/bold] and commit the result")
            raise typer.Exit(1)
        console.print("schema files are up to date")
        return
    for path in export.export():
        console.print(f"wrote {path}")


def _register_subcommands() -> None:
    """Attach the command groups that live in their own packages."""
    app.add_typer(stack_app, name="stack")
    app.command("smoke")(smoke_command)
    # `ulasan run` (make run): the main job
    app.command("run")(main_run_command)
    app.add_typer(bench_app, name="bench")
    # no group name: its commands sit at the top (ulasan train / evaluate / promote)
    app.add_typer(trainer_app)
    app.command("worker")(worker)
    app.add_typer(consume_app, name="consume")
    app.add_typer(dlq_app, name="dlq")
    app.add_typer(produce_app, name="produce")
    app.add_typer(gateway_app, name="gateway")
    # the closed loop: `ulasan trainer serve|runs`, `ulasan scenario domain-shift`
    app.add_typer(trainer_consumer_app, name="trainer")
    app.add_typer(model_app, name="model")
    app.add_typer(scenario_app, name="scenario")
    # containers: migrations, topics and the first champion (compose's bootstrap service)
    app.command("bootstrap")(bootstrap_command)
    # the web UI: `ulasan ui [--port N]`, `ulasan ui screenshots`
    app.add_typer(ui_app, name="ui")
    app.add_typer(chaos_app, name="chaos")  # `ulasan chaos soak`: faults on a private stack


_register_subcommands()


def settings() -> Settings:
    """The settings of this process, built once from the environment."""
    return Settings()


def main() -> None:
    app()


if __name__ == "__main__":  # python -m ulasan.cli
    main()
