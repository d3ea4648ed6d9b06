"""/loop: the closed loop at a glance: reviews/s and lag (Prometheus), the latest drift
reports, retrain runs, model versions (champion, challenger) and shadow agreement."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pandas as pd
import streamlit as st

from ui import queries
from ui.errors import ServiceDown
from ui.services import many, mlflow_versions, prometheus, prometheus_range
from ui.settings import UiSettings
from ui.views.common import guarded, pct, settings, show_down

REVIEWS_PER_S = "sum(rate(ulasan_predictions_total[1m]))"
LAG = "sum(max by (topic, partition) (ulasan_consumer_lag))"


def page() -> None:
    st.title("Closed loop")
    st.caption(
        "reviews → drift report → retrain request → training → gate → promotion → hot reload"
    )
    cfg = settings()
    with guarded():
        throughput(cfg)
    with guarded():
        drift, runs, shadow = many(
            cfg, [queries.drift_reports(), queries.retrain_runs(), queries.shadow_agreement()]
        )
        drift_table(drift)
        runs_table(runs)
        shadow_table(shadow)
    with guarded():
        versions_table(cfg)


def throughput(cfg: UiSettings) -> None:
    st.subheader("Stream")
    try:
        rate = prometheus(cfg, REVIEWS_PER_S)
        lag = prometheus(cfg, LAG)
        history = prometheus_range(cfg, REVIEWS_PER_S)
    except ServiceDown as exc:
        show_down(exc)
        return
    cols = st.columns(2)
    cols[0].metric("Reviews/s (1 min)", f"{rate[0]['value']:.1f}" if rate else "0")
    cols[1].metric("Consumer lag (records)", f"{lag[0]['value']:.0f}" if lag else "–")
    if history:
        frame = pd.DataFrame(history)
        frame["time"] = pd.to_datetime(frame["time"], unit="s")
        st.line_chart(frame, x="time", y="value", height=180)
    else:
        st.caption("No worker metrics in Prometheus yet (are workers running? `ulasan worker`).")


def _signals(value: Any) -> list[dict[str, Any]]:
    return list(json.loads(value) if isinstance(value, str) else value or [])


def _table(
    title: str,
    rows: list[dict[str, Any]],
    empty: str,
    columns: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
) -> None:
    """A section: ``title``, then ``rows`` as a table (each mapped by ``columns`` to its shown
    columns; as they are without it), or the hint ``empty`` when there are none."""
    st.subheader(title)
    if not rows:
        st.info(empty)
        return
    shown = rows if columns is None else [columns(r) for r in rows]
    st.dataframe(pd.DataFrame(shown), hide_index=True)


def _drift_row(r: dict[str, Any]) -> dict[str, Any]:
    return {
        "window end": r["window_end"],
        "reviews": r["n_events"],
        "model": r["model_version"],
        "drift score": round(float(r["drift_score"]), 3),
        "drifted": r["drifted"],
        "drifted signals": ", ".join(s["name"] for s in _signals(r["signals"]) if s.get("drifted")),
    }


def drift_table(reports: list[dict[str, Any]]) -> None:
    _table(
        "Drift reports",
        reports,
        "No drift report yet: the worker's drift agent writes one per closed window.",
        _drift_row,
    )


def gate_scores(scores: Any) -> str:
    """``candidate acc/F1 vs champion acc/F1`` from a run's scores (empty when not gated)."""
    gate = (json.loads(scores) if isinstance(scores, str) else scores or {}).get("gate") or {}
    cand, champ = gate.get("candidate") or {}, gate.get("champion") or {}
    if not cand:
        return ""
    text = f"candidate acc {cand.get('accuracy', 0):.3f} F1 {cand.get('macro_f1', 0):.3f}"
    if champ:
        text += f" · champion acc {champ.get('accuracy', 0):.3f} F1 {champ.get('macro_f1', 0):.3f}"
    return text


def _run_row(r: dict[str, Any]) -> dict[str, Any]:
    return {
        "started": r["started_at"],
        "status": r["status"],
        "reasons": ", ".join(r["reasons"] or []),
        "minutes": None if r["duration_s"] is None else round(r["duration_s"] / 60, 1),
        "gate": gate_scores(r["scores"]),
        "decision": r["decision"] or r["error"] or "",
        "promoted": r["promoted_version"] or "",
    }


def runs_table(runs: list[dict[str, Any]]) -> None:
    _table(
        "Retrain runs",
        runs,
        "No retrain run yet (`ulasan trainer serve` consumes retrain.requests.v1).",
        _run_row,
    )


def _share(value: Any) -> str:
    return pct(None if value is None else float(value))


def _shadow_row(s: dict[str, Any]) -> dict[str, Any]:
    return {
        "challenger": s["challenger"],
        "reviews": s["n"],
        "agreement": pct(float(s["agreement"])),
        "labelled": s["n_labelled"],
        "challenger acc": _share(s["challenger_accuracy"]),
        "champion acc": _share(s["champion_accuracy"]),
    }


def shadow_table(shadow: list[dict[str, Any]]) -> None:
    _table(
        "Shadow agreement",
        shadow,
        "No challenger is scored in shadow (set the `challenger` alias in MLflow).",
        _shadow_row,
    )


def versions_table(cfg: UiSettings) -> None:
    _table(
        "Model versions",
        mlflow_versions(cfg),
        f"No version of {cfg.mlflow.registered_model} is registered yet (`ulasan train`).",
    )
