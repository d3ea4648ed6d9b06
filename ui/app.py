"""The UI's pages (``ulasan ui`` serves them): one page per URL path.

``ui/script/ulasan_ui.py`` is the script Streamlit runs; it calls :func:`main`.
"""

from __future__ import annotations

import streamlit as st

from ui.views import analytics, batch, history, home, label, loop, predict

#: (draw, title, URL path, icon) of every page; Material icons ship with Streamlit's own
#: fonts (emoji need a system emoji font, which a server or a headless browser may lack)
PAGES = (
    (predict.page, "Predict", "predict", ":material/psychology:"),
    (batch.page, "Batch", "batch", ":material/table_view:"),
    (history.page, "History", "history", ":material/history:"),
    (analytics.page, "Analytics", "analytics", ":material/monitoring:"),
    (loop.page, "Closed loop", "loop", ":material/autorenew:"),
    (label.page, "Label queue", "label", ":material/label:"),
)


def main() -> None:
    st.set_page_config(page_title="ulasan", page_icon=":material/reviews:", layout="wide")
    pages = [
        st.Page(home.page, title="Home", icon=":material/home:", url_path="home", default=True)
    ]
    pages += [st.Page(fn, title=t, url_path=path, icon=icon) for fn, t, path, icon in PAGES]
    st.navigation(pages).run()
