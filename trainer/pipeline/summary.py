"""A finished training run, summarised: ``summary.json`` and the rich table ``ulasan train``
prints."""

from __future__ import annotations

from typing import Any

from rich.table import Table

from trainer.pipeline.context import PipelineResult

#: export figures the summary table leaves out of its parity line
_NOT_PARITY = {"folder", "model_bytes", "fp32_model_bytes", "export_s", "quantize_s"}


def summary_dict(result: PipelineResult) -> dict[str, Any]:
    """``summary.json``: where the run went, its stage times, training figures and scores."""
    return {
        "run_dir": str(result.run_dir),
        "serving_dir": str(result.serving_dir) if result.serving_dir else None,
        "run_id": result.run_id,
        "model_version": result.model_version,
        "gate": result.gate,
        "stage_seconds": result.stage_seconds,
        "stage_cpu_seconds": result.stage_cpu_seconds,
        "total_seconds": result.total_seconds,
        "total_cpu_seconds": sum(result.stage_cpu_seconds.values()),
        "train": result.train_summary,
        # the config the run used, command-line overrides (--seed ...) included
        "config": result.config.model_dump(mode="json"),
        "export": result.export,
        "scores": {
            name: {
                "n": r["n"],
                "accuracy": r["accuracy"],
                "macro_f1": r["macro_f1"],
                "ece": r["ece"],
            }
            for name, r in result.reports.items()
        },
    }


def summary_table(result: PipelineResult) -> Table:
    """The final rich summary of a training run."""
    table = Table(title=f"ulasan train: {result.config.model}", show_header=True)
    table.add_column("what")
    table.add_column("value", overflow="fold")
    for name, report in result.reports.items():
        table.add_row(
            name,
            f"n={report['n']}  accuracy {report['accuracy']:.4f}  macro-F1 "
            f"{report['macro_f1']:.4f}  ECE {report['ece']:.4f}",
        )
    summary = result.train_summary
    table.add_row(
        "model",
        f"{summary['num_parameters']:,} parameters, best epoch {summary['best_epoch']} "
        f"(averaged {summary['averaged_epochs']}), {summary['epochs_run']} epochs run",
    )
    if result.export:
        table.add_row(
            "export",
            f"int8 {result.export['model_bytes'] / 1e6:.1f} MB, parity: "
            + ", ".join(f"{k}={v}" for k, v in result.export.items() if k not in _NOT_PARITY),
        )
    table.add_row(
        "stages",
        "  ".join(f"{k} {v:.0f}s" for k, v in result.stage_seconds.items())
        + f"  (total {result.total_seconds:.0f}s wall, "
        f"{sum(result.stage_cpu_seconds.values()):.0f}s CPU over {result.config.threads} threads)",
    )
    _registry_rows(table, result)
    return table


def _registry_rows(table: Table, result: PipelineResult) -> None:
    table.add_row("serving folder", str(result.serving_dir))
    if result.run_id:
        table.add_row("MLflow run", result.run_id)
    if result.model_version:
        table.add_row("registered", f"version {result.model_version} (alias candidate)")
    if result.gate:
        verdict = "[green]promoted to champion" if result.gate["promoted"] else "[red]not promoted"
        table.add_row("gate", f"{verdict}[/]: {result.gate['reason']}")
