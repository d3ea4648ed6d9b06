"""/: which services answer, and what each page shows."""

from __future__ import annotations

import streamlit as st

from ui.errors import ServiceDown
from ui.services import STACK_UP, gateway, rows
from ui.settings import UiSettings
from ui.views.common import settings
from ulasan.core.client import ClientError

PAGES = (
    ("/predict", "one text, its label and probabilities, and the words that drove it"),
    ("/batch", "a CSV: up to 100 texts at once, more replayed through Kafka"),
    ("/history", "every prediction, filtered and searched"),
    ("/analytics", "sentiment over time, shares, confidence, ratings, emerging complaints"),
    ("/loop", "throughput, drift reports, retrain runs, model versions, shadow agreement"),
    ("/label", "label the reviews the model is least sure of (feedback.v1)"),
)


def page() -> None:
    st.title("ulasan")
    st.caption("Sentiment of Indonesian reviews, streamed, watched for drift and retrained.")
    cfg = settings()
    for name, ok, detail in status(cfg):
        (st.success if ok else st.error)(f"**{name}**: {detail}")
    st.markdown("\n".join(f"- [{path}]({path[1:]}): {what}" for path, what in PAGES))


def status(cfg: UiSettings) -> list[tuple[str, bool, str]]:
    """``(service, answers, detail)`` for the gateway and PostgreSQL."""
    out = []
    client = gateway(cfg)
    try:
        info = client.model_info()
        serving = info.serving
        detail = (
            f"{cfg.ui.gateway_url}, serving {serving.model_name} v{serving.model_version}"
            if serving
            else f"{cfg.ui.gateway_url} (no worker has answered yet: `ulasan worker`)"
        )
        out.append(("gateway", True, detail))
    except ClientError as exc:
        out.append(("gateway", False, f"{exc} — start it with `ulasan gateway serve`"))
    finally:
        client.close()
    try:
        rows(cfg, ("SELECT 1 AS ok", {}))
        out.append(("PostgreSQL", True, f"{cfg.postgres.host}:{cfg.postgres.port} (read-only)"))
    except ServiceDown as exc:
        out.append(("PostgreSQL", False, f"{exc.reason} — start it with `{STACK_UP}`"))
    return out
