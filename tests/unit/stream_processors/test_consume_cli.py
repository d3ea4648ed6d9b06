"""``ulasan consume sentiment``: in a narrow terminal the label and the confidence stay, the
text is shortened instead."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from schemas.events import SentimentScored
from stream_processors.cli import _cells, _row, _sentiment_table

LONG_TEXT = (
    "barang sampai dengan selamat, pengiriman cepat sekali dan penjual sangat ramah, "
    "kualitasnya juga sesuai dengan deskripsi, pasti akan belanja lagi di toko ini"
)


def _event() -> SentimentScored:
    return SentimentScored(
        event_id="e1",
        review_id="run20261205T090000-prdect-000123",
        label="positive",
        confidence=0.93,
        probabilities={"negative": 0.02, "neutral": 0.05, "positive": 0.93},
        model_name="ulasan-sentiment",
        model_version="12",
        text=LONG_TEXT,
    )


def _render(width: int) -> list[str]:
    console = Console(width=width, record=True, color_system=None, file=io.StringIO())
    table = _sentiment_table(show_header=True, width=console.width)
    table.add_row(*_cells(table, _row(7, _event(), 2, 4711)))
    console.print(table)
    return console.export_text().rstrip("\n").splitlines()


@pytest.mark.parametrize("width", [80, 100])
def test_a_narrow_terminal_keeps_label_and_confidence(width: int) -> None:
    header, row = _render(width)
    assert all(len(line) <= width for line in (header, row))
    for column in ("label", "conf", "text"):
        assert column in header
    assert "positive" in row and "0.93" in row
    assert "barang sampai" in row and row.endswith("…")  # the text, shortened
    assert LONG_TEXT not in row


def test_a_wide_terminal_shows_every_column() -> None:
    header, row = _render(160)
    assert "p@offset" in header and "2@4711" in row
    assert "run20261205T090000-" in row and "ulasan-sentiment:12" in row
    assert "positive" in row and "0.93" in row
