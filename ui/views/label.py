"""/label: a queue of reviews to label, least sure or most drifted first; one click publishes
a human ``LabelFeedback`` on feedback.v1 through the gateway's /feedback."""

from __future__ import annotations

from typing import Any

import streamlit as st

from ui import labelqueue, queries
from ui.services import rows, via_gateway
from ui.settings import UiSettings
from ui.views.common import guarded, settings

MODES = ("least sure", "most drifted")
QUEUE = 10
#: review ids labelled in this session (the feedback row arrives asynchronously)
DONE = "labelled_ids"
LAST = "last_label"


def page() -> None:
    st.title("Label queue")
    cfg = settings()
    if LAST in st.session_state:
        st.success(st.session_state.pop(LAST))
    with guarded():
        counts = rows(cfg, queries.next_retrain_labels())[0]
        st.caption(
            f"The next retrain will use **{counts['labelled']}** labelled reviews "
            f"({counts['human']} labelled by people, {counts['human_since_last_retrain']} of "
            "them since the last retrain started; the others by their rating)."
        )
        mode = st.radio("Queue", MODES, horizontal=True)
        done: set[str] = st.session_state.setdefault(DONE, set())
        queue = least_sure(cfg, done) if mode == MODES[0] else most_drifted(cfg, done)
        if not queue:
            st.info("Nothing to label: every scored review has a human label.")
            return
        for item in queue:
            card(cfg, item, done)


def least_sure(cfg: UiSettings, done: set[str]) -> list[dict[str, Any]]:
    return rows(cfg, queries.least_sure(QUEUE, tuple(done)))


def most_drifted(cfg: UiSettings, done: set[str]) -> list[dict[str, Any]]:
    found = rows(cfg, queries.latest_drifted())
    if not found:
        st.info("No drift report has found drift yet; showing the least sure reviews.")
        return least_sure(cfg, done)
    report = found[0]
    columns = labelqueue.drifted_columns(report["signals"] or [])
    start, end = report["window_start"], report["window_end"]
    window = rows(cfg, queries.window_features(start, end))
    baseline = rows(cfg, queries.window_features(start - (end - start), start))
    st.caption(
        f"Window {start:%Y-%m-%d %H:%M} to {end:%H:%M} (report {report['report_id']}); ranked on "
        f"{', '.join(columns) or 'confidence (no per-review signal drifted)'}."
    )
    ranked = labelqueue.drift_scores(window, baseline, columns or ["confidence"])
    return [dict(r) for _, r in ranked if r["review_id"] not in done][:QUEUE]


def card(cfg: UiSettings, item: dict[str, Any], done: set[str]) -> None:
    review_id = str(item["review_id"])
    with st.container(border=True):
        st.text(str(item["text"])[:1000])
        rating = f" · rating {item['rating']}" if item.get("rating") else ""
        st.caption(
            f"`{review_id}` · predicted **{item['label']}** at {float(item['confidence']):.1%}"
            f"{rating}"
        )
        cols = st.columns(3)
        for col, label in zip(cols, queries.LABELS, strict=True):
            if col.button(label, key=f"{review_id}:{label}"):
                with via_gateway(cfg) as gw:
                    fb = gw.feedback(label, review_id=review_id)  # type: ignore[arg-type]
                done.add(review_id)
                st.session_state[LAST] = (
                    f"Labelled `{review_id}` {fb.label} (sent as {fb.feedback_id})."
                )
                st.rerun()
