"""/batch: a pasted or uploaded CSV; up to 100 texts through /predict/batch, more replayed
through Kafka with progress; a results table and a CSV download."""

from __future__ import annotations

import time

import pandas as pd
import streamlit as st

from ui import batch as batching
from ui import queries
from ui.errors import BadInput
from ui.services import publish_reviews, rows, stored_json, via_gateway
from ui.settings import UiSettings
from ui.views.common import guarded, settings

#: how long the page waits for a replayed batch's predictions
WAIT_S = 180.0
#: the session's last results: (batch id, table), kept across reruns (a download reruns)
RESULT = "batch_result"


def page() -> None:
    st.title("Batch")
    st.caption(
        f"Up to {batching.DIRECT_LIMIT} texts are scored at once through the gateway; a larger "
        "batch is published to reviews.raw.v1 as a replay and its predictions are collected."
    )
    upload = st.file_uploader("CSV file (with a header)", type=["csv", "tsv", "txt"])
    pasted = st.text_area("…or paste reviews (one per line, or CSV with a header)", height=150)
    with guarded():
        raw: str | bytes | None = upload.getvalue() if upload is not None else pasted
        if not raw or (isinstance(raw, str) and not raw.strip()):
            st.info("Upload a file or paste some reviews.")
            return
        table = batching.read_table(raw, pasted=upload is None)
        column = st.selectbox(
            "Text column", table.columns, index=table.columns.index(table.text_column)
        )
        batch = batching.texts_of(table, column)
        if batch.skipped:
            with st.expander(f"{len(batch.skipped)} row(s) skipped"):
                st.dataframe(
                    pd.DataFrame(batch.skipped, columns=["row", "reason"]), hide_index=True
                )
        if not batch.texts:
            raise BadInput("no row has a text to score")
        direct = len(batch.texts) <= batching.DIRECT_LIMIT
        action = "Score" if direct else f"Replay {len(batch.texts)} reviews through Kafka"
        key = batching.batch_id(batch)
        if st.button(action, type="primary"):
            cfg = settings()
            frame = score_direct(cfg, batch) if direct else replay(cfg, batch)
            st.session_state[RESULT] = (key, frame)
        done = st.session_state.get(RESULT)
        if done is None or done[0] != key:
            st.caption(f"{len(batch.texts)} text(s) ready.")
            return
        show_results(done[1])


def score_direct(cfg: UiSettings, batch: batching.Batch) -> pd.DataFrame:
    with via_gateway(cfg) as gw:
        result = gw.predict_batch(batch.texts)
    st.success(f"{len(result.predictions)} texts scored in {result.latency_ms:.0f} ms.")
    return pd.DataFrame(
        [
            {
                "row": n,
                "text": t,
                "label": p.label,
                "confidence": round(p.confidence, 4),
                **{f"p_{k}": round(v, 4) for k, v in sorted(p.probabilities.items())},
                "model_version": p.model_version,
            }
            for n, t, p in zip(batch.row_numbers, batch.texts, result.predictions, strict=True)
        ]
    )


def replay(cfg: UiSettings, batch: batching.Batch) -> pd.DataFrame:
    events = batching.replay_events(batch)
    total = len(events)
    bar = st.progress(0.0, text=f"publishing 0 / {total}")

    def published(n: int) -> None:
        bar.progress(n / total / 2, text=f"publishing {n} / {total}")

    publish_reviews(cfg, events, published)
    ids = [e.review_id for e in events]
    found: list[dict[str, object]] = []
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        found = rows(cfg, queries.batch_scores(ids))
        bar.progress(0.5 + len(found) / total / 2, text=f"scored {len(found)} / {total}")
        if len(found) >= total:
            break
        time.sleep(1.0)
    if len(found) < total:
        st.warning(
            f"{total - len(found)} of {total} reviews are not scored yet after {WAIT_S:.0f}s "
            "(are the workers running? `ulasan worker`); showing those that are."
        )
    by_id = {str(r["review_id"]): r for r in found}
    out = []
    for e, n in zip(events, batch.row_numbers, strict=True):
        r = by_id.get(e.review_id)
        probs = stored_json(r["probabilities"]) if r else {}
        out.append(
            {
                "row": n,
                "review_id": e.review_id,
                "text": e.text,
                "label": r["label"] if r else None,
                "confidence": round(float(r["confidence"]), 4) if r else None,  # type: ignore[arg-type]
                **{f"p_{k}": round(v, 4) for k, v in sorted(probs.items())},
                "model_version": r["model_version"] if r else None,
            }
        )
    return pd.DataFrame(out)


def show_results(frame: pd.DataFrame) -> None:
    st.dataframe(frame, hide_index=True)
    st.download_button(
        "Download CSV",
        frame.to_csv(index=False).encode("utf-8"),
        file_name="ulasan-predictions.csv",
        mime="text/csv",
    )
