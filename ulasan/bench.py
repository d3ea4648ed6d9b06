"""``ulasan bench ...``: benchmarks printing figures beside a baseline from the same run."""

from __future__ import annotations

import typer

app = typer.Typer(help="Benchmarks (results go to docs/benchmarks.md).", no_args_is_help=True)
