"""/history: prediction_logs with filters (time, app, label, confidence, source), text search
and pagination, read over a read-only connection."""

from __future__ import annotations

import math
from datetime import UTC, datetime, time, timedelta

import pandas as pd
import streamlit as st

from ui import queries
from ui.services import many, rows
from ui.views.common import guarded, settings, table_height

RANGES = {
    "last hour": timedelta(hours=1),
    "last 24 hours": timedelta(days=1),
    "last 7 days": timedelta(days=7),
    "everything": None,
    "between dates": None,
}


def page() -> None:
    st.title("History")
    cfg = settings()
    with guarded():
        options = rows(cfg, queries.choices())
        apps = sorted({str(r["app"]) for r in options})
        sources = sorted({str(r["source"]) for r in options if r["source"]})
        f = filters(apps, sources, cfg.ui.page_size)
        page_rows, count = many(cfg, [queries.history(f), queries.history_count(f)])
        total = int(count[0]["n"])
        pages = max(1, math.ceil(total / f.page_size))
        st.caption(f"{total} prediction(s) match · page {f.page + 1} of {pages}")
        if page_rows:
            frame = pd.DataFrame(page_rows)
            frame["confidence"] = frame["confidence"].astype(float).round(4)
            st.dataframe(frame, hide_index=True, height=table_height(len(frame), 50))
        else:
            st.info("No prediction matches these filters.")


def filters(apps: list[str], sources: list[str], page_size: int) -> queries.HistoryFilter:
    """The filter widgets (sidebar) and the search box, as a :class:`HistoryFilter`."""
    side = st.sidebar
    side.header("Filters")
    choice = side.selectbox("Time", list(RANGES), index=3)
    since: datetime | None = None
    until: datetime | None = None
    if choice == "between dates":
        today = datetime.now(UTC).date()
        picked = side.date_input("From / to", (today - timedelta(days=7), today))
        # while the second date is being picked the widget holds one date
        dates = list(picked) if isinstance(picked, tuple) else [picked]
        start = dates[0] or today
        end = dates[-1] or start
        since = datetime.combine(start, time.min, UTC)
        until = datetime.combine(end, time.min, UTC) + timedelta(days=1)
    elif RANGES[choice] is not None:
        since = datetime.now(UTC) - RANGES[choice]  # type: ignore[operator]
    picked_apps = side.multiselect("App", apps, format_func=lambda a: a or "(no app)")
    labels = side.multiselect("Label", list(queries.LABELS))
    picked_sources = side.multiselect("Source", sources)
    low, high = side.slider("Confidence", 0.0, 1.0, (0.0, 1.0), step=0.01)
    search = st.text_input("Search the text", placeholder="e.g. lambat")
    page = int(st.number_input("Page", min_value=1, value=1, step=1)) - 1
    return queries.HistoryFilter(
        since=since,
        until=until,
        apps=tuple(picked_apps),
        labels=tuple(labels),
        sources=tuple(picked_sources),
        min_confidence=float(low),
        max_confidence=float(high),
        search=search,
        page=page,
        page_size=page_size,
    )
