"""/loop: the closed loop at a glance: reviews/s and lag (Prometheus), the latest drift
reports, retrain runs, model versions (champion, challenger) and shadow agreement."""

from __future__ import annotations

import json
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


def drift_table(reports: list[dict[str, Any]]) -> None:
    st.subheader("Drift reports")
    if not reports:
        st.info("No drift report yet: the worker's drift agent writes one per closed window.")
        return
    st.dataframe(
        pd.DataFrame(
            [
                {
                    "window end": r["window_end"],
                    "reviews": r["n_events"],
                    "model": r["model_version"],
                    "drift score": round(float(r["drift_score"]), 3),
                    "drifted": r["drifted"],
                    "drifted signals": ", ".join(
                        s["name"] for s in _signals(r["signals"]) if s.get("drifted")
                    ),
                }
                for r in reports
            ]
        ),
        hide_index=True,
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


def runs_table(runs: list[dict[str, Any]]) -> None:
    st.subheader("Retrain runs")
    if not runs:
        st.info("No retrain run yet (`ulasan trainer serve` consumes retrain.requests.v1).")
        return
    st.dataframe(
        pd.DataFrame(
            [
                {
                    "started": r["started_at"],
                    "status": r["status"],
                    "reasons": ", ".join(r["reasons"] or []),
                    "minutes": None if r["duration_s"] is None else round(r["duration_s"] / 60, 1),
                    "gate": gate_scores(r["scores"]),
                    "decision": r["decision"] or r["error"] or "",
                    "promoted": r["promoted_version"] or "",
                }
                for r in runs
            ]
        ),
        hide_index=True,
    )


def shadow_table(shadow: list[dict[str, Any]]) -> None:
    st.subheader("Shadow agreement")
    if not shadow:
        st.info("No challenger is scored in shadow (set the `challenger` alias in MLflow).")
        return
    st.dataframe(
        pd.DataFrame(
            [
                {
                    "challenger": s["challenger"],
                    "reviews": s["n"],
                    "agreement": pct(float(s["agreement"])),
                    "labelled": s["n_labelled"],
                    "challenger acc": pct(
                        None
                        if s["challenger_accuracy"] is None
                        else float(s["challenger_accuracy"])
                    ),
                    "champion acc": pct(
                        None if s["champion_accuracy"] is None else float(s["champion_accuracy"])
                    ),
                }
                for s in shadow
            ]
        ),
        hide_index=True,
    )


def versions_table(cfg: UiSettings) -> None:
    st.subheader("Model versions")
    versions = mlflow_versions(cfg)
    if not versions:
        st.info(f"No version of {cfg.mlflow.registered_model} is registered yet (`ulasan train`).")
        return
    st.dataframe(pd.DataFrame(versions), hide_index=True)
