"""Streamlit's entry script for ``ulasan ui``: draws the page the URL names (``ui.app``)."""

from ui.app import main

if __name__ == "__main__":
    main()
