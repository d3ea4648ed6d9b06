"""/analytics: sentiment over time per app and source, label shares, confidence distribution,
rating-versus-prediction confusion, and emerging complaints (smoothed log-odds)."""

from __future__ import annotations

from datetime import datetime, timedelta

import altair as alt
import pandas as pd
import streamlit as st

from ui import analytics, emerging, queries
from ui.services import many, rows
from ui.settings import UiSettings
from ui.views.common import LABEL_COLOURS, guarded, pct, settings

SPANS = {
    "last hour": timedelta(hours=1),
    "last 24 hours": timedelta(days=1),
    "last 7 days": timedelta(days=7),
    "last 30 days": timedelta(days=30),
}
AUTO = "half the data"
WINDOWS = {
    AUTO: None,
    "1 hour": timedelta(hours=1),
    "1 day": timedelta(days=1),
    "7 days": timedelta(days=7),
}
FLAT = alt.Axis(labelAngle=0)


def page() -> None:
    st.title("Analytics")
    cfg = settings()
    with guarded():
        bounds = rows(cfg, queries.time_range())[0]
        if bounds["last"] is None:
            st.info("No predictions yet: replay some reviews (`ulasan run` or `/batch`).")
            return
        span = st.selectbox("Range (ending at the last prediction)", list(SPANS), index=1)
        size = SPANS[span]
        first: datetime = bounds["first"]
        last: datetime = bounds["last"]
        bucket = analytics.pick_bucket(min(size, last - first))
        window = queries.Window(last - size, last + timedelta(seconds=1), bucket)
        over_time, shares, conf, matrix = many(
            cfg,
            [
                queries.sentiment_over_time(window),
                queries.label_shares(window),
                queries.confidence_histogram(window),
                queries.rating_confusion(window),
            ],
        )
        sentiment_chart(analytics.sentiment_series(over_time))
        left, right = st.columns(2)
        with left:
            shares_chart(analytics.shares(shares))
        with right:
            confidence_chart(analytics.histogram(conf))
        confusion_chart(analytics.confusion(matrix))
        complaints(cfg, first, last)


def sentiment_chart(series: list[dict[str, object]]) -> None:
    st.subheader("Sentiment over time")
    if not series:
        st.info("No predictions in this range.")
        return
    frame = pd.DataFrame(series)
    chart = (
        alt.Chart(frame)
        .mark_line(point=True)
        .encode(
            x=alt.X("bucket:T", title="time (UTC)"),
            y=alt.Y(
                "net:Q",
                title="net sentiment (positive − negative share)",
                scale=alt.Scale(domain=[-1, 1]),
            ),
            color=alt.Color("series:N", title="app · source"),
            tooltip=[
                "bucket:T",
                "series:N",
                "n:Q",
                alt.Tooltip("net:Q", format=".2f"),
                alt.Tooltip("share_negative:Q", format=".1%"),
            ],
        )
        .properties(height=300)
    )
    st.altair_chart(chart)


def shares_chart(shares: dict[str, float]) -> None:
    st.subheader("Label shares")
    frame = pd.DataFrame({"label": list(shares), "share": list(shares.values())})
    chart = (
        alt.Chart(frame)
        .mark_bar()
        .encode(
            x=alt.X("label:N", sort=list(queries.LABELS), axis=FLAT),
            y=alt.Y("share:Q", axis=alt.Axis(format="%")),
            color=alt.Color("label:N", scale=LABEL_COLOURS, legend=None),
            tooltip=["label", alt.Tooltip("share:Q", format=".1%")],
        )
        .properties(height=250)
    )
    st.altair_chart(chart)


def confidence_chart(bins: list[dict[str, object]]) -> None:
    st.subheader("Confidence")
    chart = (
        alt.Chart(pd.DataFrame(bins))
        .mark_bar()
        .encode(
            x=alt.X("lo:Q", bin=alt.Bin(binned=True, step=0.05), title="confidence"),
            x2="hi:Q",
            y=alt.Y("n:Q", title="predictions"),
            tooltip=["confidence", "n"],
        )
        .properties(height=250)
    )
    st.altair_chart(chart)


def confusion_chart(matrix: dict[str, dict[str, int]]) -> None:
    st.subheader("Rating versus prediction")
    agreement = analytics.agreement(matrix)
    if agreement is None:
        st.info("No rated review in this range.")
        return
    st.caption(
        f"Rated reviews: 4-5 stars positive, 3 neutral, 1-2 negative; the prediction agrees "
        f"on {pct(agreement)} of them."
    )
    frame = pd.DataFrame(
        [{"rating": a, "predicted": b, "n": n} for a, row in matrix.items() for b, n in row.items()]
    )
    base = alt.Chart(frame).encode(
        x=alt.X("predicted:N", sort=list(queries.LABELS), axis=FLAT),
        y=alt.Y("rating:N", sort=list(queries.LABELS), title="label of the rating"),
    )
    heat = base.mark_rect().encode(color=alt.Color("n:Q", scale=alt.Scale(scheme="blues")))
    text = base.mark_text().encode(text="n:Q")
    st.altair_chart((heat + text).properties(height=220))


def complaints(cfg: UiSettings, first: datetime, last: datetime) -> None:
    st.subheader("Emerging complaints")
    choice = st.selectbox("Window", list(WINDOWS), index=0)
    size = WINDOWS[choice] or analytics.auto_window(first, last)
    (p0, p1), (l0, l1) = analytics.windows(last, size)
    found = rows(cfg, queries.negative_texts(p0, l1))
    previous = [str(r["text"]) for r in found if r["time"] < l0]
    latest = [str(r["text"]) for r in found if r["time"] >= l0]
    st.caption(
        f"Negative reviews: {len(previous)} in the previous window, {len(latest)} in the last "
        f"({_duration(size)} each, ending at the last prediction). Ranked by the rise of each "
        "term's smoothed log-odds among them (z-score); a term must appear in at least 3 "
        "reviews of the last window."
    )
    terms = emerging.emerging(previous, latest)
    if not terms:
        st.info("No term rose among the negative reviews (or one window has none).")
        return
    st.dataframe(
        pd.DataFrame(
            [
                {
                    "term": t.term,
                    "previous": f"{t.previous} ({t.previous_share:.1%})",
                    "last": f"{t.last} ({t.last_share:.1%})",
                    "log-odds rise": round(t.log_odds_rise, 2),
                    "z": round(t.z, 2),
                }
                for t in terms
            ]
        ),
        hide_index=True,
    )
    for t in terms[:5]:
        with st.expander(f"“{t.term}”: example reviews"):
            for example in t.examples:
                st.text(example[:400])


def _duration(size: timedelta) -> str:
    minutes = size.total_seconds() / 60
    if minutes < 2:
        return f"{size.total_seconds():.0f} s"
    if minutes < 120:
        return f"{minutes:.0f} min"
    hours = minutes / 60
    return f"{hours:.0f} h" if hours < 48 else f"{hours / 24:.0f} days"
