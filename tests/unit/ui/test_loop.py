"""/loop's tables: what each row of PostgreSQL shows (the page itself is drawn against the
stack in tests/integration/test_ui.py)."""

from __future__ import annotations

import json

from ui.views import loop


def test_a_retrain_run_shows_its_gate_scores_and_minutes() -> None:
    scores = {"gate": {"candidate": {"accuracy": 0.8, "macro_f1": 0.75}, "champion": {}}}
    row = loop._run_row(
        {
            "started_at": "2026-12-05 10:00",
            "status": "failed",
            "reasons": ["drift", "feedback"],
            "duration_s": 90.0,
            "scores": json.dumps(scores),
            "decision": None,
            "error": "MlflowException: down",
            "promoted_version": None,
        }
    )
    assert row == {
        "started": "2026-12-05 10:00",
        "status": "failed",
        "reasons": "drift, feedback",
        "minutes": 1.5,
        "gate": "candidate acc 0.800 F1 0.750",
        "decision": "MlflowException: down",
        "promoted": "",
    }


def test_shadow_rows_show_missing_accuracies_as_a_dash() -> None:
    row = loop._shadow_row(
        {
            "challenger": "7",
            "n": 40,
            "agreement": "0.925",
            "n_labelled": 0,
            "challenger_accuracy": None,
            "champion_accuracy": 0.5,
        }
    )
    assert row["agreement"] == "92.5%" and row["challenger acc"] == "–"
    assert row["champion acc"] == "50.0%"


def test_a_drift_report_lists_only_its_drifted_signals() -> None:
    signals = [{"name": "psi_confidence", "drifted": True}, {"name": "label_shift"}]
    row = loop._drift_row(
        {
            "window_end": "w",
            "n_events": 10,
            "model_version": "3",
            "drift_score": 0.12345,
            "drifted": True,
            "signals": json.dumps(signals),
        }
    )
    assert row["drift score"] == 0.123 and row["drifted signals"] == "psi_confidence"
