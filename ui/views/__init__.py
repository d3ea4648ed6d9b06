"""The Streamlit views; each module's ``page()`` draws one URL path (``ui.app`` lists them)."""
