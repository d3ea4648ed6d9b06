"""``ulasan bench ...``: benchmarks that print figures beside a baseline measured in the same run."""

from __future__ import annotations

import typer

app = typer.Typer(help="Benchmarks (results go to docs/benchmarks.md).", no_args_is_help=True)
