"""The file Streamlit runs (kept alone in its folder: Streamlit puts the script's folder on
``sys.path``, and nothing else of the UI should become a top-level module)."""
