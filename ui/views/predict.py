"""/predict: one text through the gateway, and why (occlusion on the served model)."""

from __future__ import annotations

import re
import time

import altair as alt
import pandas as pd
import streamlit as st

from ui import occlusion
from ui.queries import LABELS
from ui.services import via_gateway
from ui.views.common import LABEL_COLOURS, guarded, settings, table_height
from ulasan.core.client import PredictResult

EXAMPLE = "Aplikasinya bagus, pengiriman cepat, tapi kadang error waktu bayar."
KEY = "predict_result"


def page() -> None:
    st.title("Predict")
    st.caption("One text, scored by the stream workers through the gateway's HTTP API.")
    cfg = settings()
    with st.form("predict"):
        text = st.text_area("Review text", value=EXAMPLE, height=120, max_chars=5000)
        submitted = st.form_submit_button("Predict", type="primary")
    with guarded():
        if submitted:
            if not text.strip():
                st.warning("Type a review first.")
                return
            started = time.perf_counter()
            with via_gateway(cfg) as gw:
                result = gw.predict(text)
            st.session_state[KEY] = (text, result, (time.perf_counter() - started) * 1000)
            st.session_state.pop("explanation", None)
        if KEY not in st.session_state:
            return
        text, result, round_trip = st.session_state[KEY]
        show_result(result, round_trip)
        explain_section(text, result)


def show_result(result: PredictResult, round_trip_ms: float) -> None:
    p = result.prediction
    cols = st.columns([1, 1, 2, 1])
    cols[0].metric("Label", p.label)
    cols[1].metric("Confidence", f"{p.confidence:.1%}")
    cols[2].metric("Model", f"{p.model_name} v{p.model_version}")
    cols[3].metric(
        "Latency", f"{result.latency_ms:.0f} ms", help=f"round trip {round_trip_ms:.0f} ms"
    )
    probs = pd.DataFrame(
        {"label": list(p.probabilities), "probability": list(p.probabilities.values())}
    )
    chart = (
        alt.Chart(probs)
        .mark_bar()
        .encode(
            y=alt.Y("label:N", sort=list(LABELS), title=None),
            x=alt.X("probability:Q", scale=alt.Scale(domain=[0, 1]), axis=alt.Axis(format="%")),
            color=alt.Color("label:N", scale=LABEL_COLOURS, legend=None),
            tooltip=["label", alt.Tooltip("probability:Q", format=".1%")],
        )
        .properties(height=140)
    )
    st.altair_chart(chart)
    st.caption(
        f"request `{result.request_id}` · inference {p.inference_ms:.1f} ms · "
        f"queue {p.queue_ms:.1f} ms"
    )


def explain_section(text: str, result: PredictResult) -> None:
    st.subheader("Why")
    words = occlusion.words_of(text)
    st.caption(
        f"Occlusion: each of the {min(len(words), occlusion.MAX_WORDS)} words is dropped in turn "
        "and the shortened texts are scored by the same served model (batched /predict/batch "
        "calls; they are logged like any request)."
    )
    if len(words) < 2:
        st.info("A single word: nothing to drop.")
        return
    if st.button("Explain"):
        p = result.prediction
        with via_gateway(settings()) as gw:

            def score(texts: list[str]) -> list[dict[str, float]]:
                return [s.probabilities for s in gw.predict_batch(texts).predictions]

            st.session_state["explanation"] = occlusion.explain(
                text, p.label, p.probabilities, score
            )
    explanation = st.session_state.get("explanation")
    if explanation is None:
        return
    st.markdown(highlight(explanation), unsafe_allow_html=False)
    top = occlusion.ranked(explanation, 12)
    keys = sorted(top[0].changes) if top else []
    st.dataframe(
        pd.DataFrame(
            {
                "word": [w.word for w in top],
                f"change in P({explanation.label})": [round(w.effect, 4) for w in top],
                **{f"Δ {k}": [round(w.changes[k], 4) for w in top] for k in keys},
            }
        ),
        hide_index=True,
        height=table_height(len(top)),
    )
    note = " (only the first words were explained)" if explanation.truncated else ""
    st.caption(f"{explanation.calls} batched call(s){note}.")


_MARKDOWN = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$:])")


def markdown_escape(word: str) -> str:
    """``word`` with every character Markdown (or Streamlit's colour and LaTeX markup) would
    interpret escaped."""
    return _MARKDOWN.sub(r"\\\1", word)


def highlight(explanation: occlusion.Explanation) -> str:
    """The text with each word coloured by its effect: green raised the label's probability,
    red lowered it (Streamlit's colour markup, strong effects in bold)."""
    strongest = max((abs(w.effect) for w in explanation.words), default=0.0) or 1.0
    parts = []
    for w in explanation.words:
        word = markdown_escape(w.word)
        share = abs(w.effect) / strongest
        if share < 0.15:
            parts.append(word)
            continue
        colour = "green" if w.effect > 0 else "red"
        parts.append(f":{colour}[**{word}**]" if share > 0.6 else f":{colour}[{word}]")
    return " ".join(parts)
