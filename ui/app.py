"""The UI's pages (``ulasan ui`` serves them): one page per URL path.

``ui/script/ulasan_ui.py`` is the script Streamlit runs; it calls :func:`main`.
"""

from __future__ import annotations

import streamlit as st

from ui.views import analytics, batch, history, home, label, loop, predict

#: (draw, title, URL path, icon) of every page
PAGES = (
    (predict.page, "Predict", "predict", "🔮"),
    (batch.page, "Batch", "batch", "📄"),
    (history.page, "History", "history", "🕘"),
    (analytics.page, "Analytics", "analytics", "📈"),
    (loop.page, "Closed loop", "loop", "🔁"),
    (label.page, "Label queue", "label", "🏷️"),
)


def main() -> None:
    st.set_page_config(page_title="ulasan", page_icon="💬", layout="wide")
    pages = [st.Page(home.page, title="Home", icon="🏠", url_path="home", default=True)]
    pages += [st.Page(fn, title=t, url_path=path, icon=icon) for fn, t, path, icon in PAGES]
    st.navigation(pages).run()
