"""What every page shares: its settings, and errors shown as a sentence, never a traceback."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import altair as alt
import streamlit as st

from ui.errors import ServiceDown, UiError
from ui.queries import LABELS
from ui.settings import UiSettings
from ulasan.core.client import ClientError

log = logging.getLogger("ulasan.ui")
#: one colour per label on every chart
LABEL_COLOURS = alt.Scale(domain=list(LABELS), range=["#d62728", "#9e9e9e", "#2ca02c"])


def settings() -> UiSettings:
    """The UI's settings from the environment (``ULASAN_*``), built per script run."""
    return UiSettings()


def show_down(exc: ServiceDown) -> None:
    """Which service is down, why, and the command that starts it."""
    st.error(f"**{exc.service}** is not reachable: {exc.reason}", icon=":material/power_off:")
    st.info(f"Start it with `{exc.start}`, then reload this page.")


@contextmanager
def guarded() -> Iterator[None]:
    """Run a page's body: a service that is down, a refused request or bad input is shown as a
    message; anything unexpected is logged with its traceback and shown as one line."""
    try:
        yield
    except ServiceDown as exc:
        show_down(exc)
    except ClientError as exc:
        st.error(str(exc))
    except UiError as exc:
        st.warning(str(exc))
    except Exception as exc:  # noqa: BLE001 - a page shows a sentence, the log the traceback
        if type(exc).__module__.startswith("streamlit"):
            raise  # Streamlit's own control flow (rerun, stop)
        log.exception("page failed")
        st.error(f"Something went wrong: {exc.__class__.__name__}: {exc}. See the UI's log.")


def pct(value: float | None) -> str:
    return "–" if value is None else f"{value:.1%}"


def table_height(rows: int, most: int = 20) -> int:
    """Pixels that show ``rows`` rows of a dataframe (at most ``most``) without scrolling."""
    return 35 * (min(rows, most) + 1) + 3
