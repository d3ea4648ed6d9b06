"""Reading a batch from a CSV or pasted lines; the events a large batch is replayed as."""

from __future__ import annotations

import pytest

from schemas.events import MAX_TEXT_CHARS
from ui import batch
from ui.errors import BadInput


def test_csv_with_a_known_text_column_and_ratings() -> None:
    raw = b"id;Customer Review;Customer Rating\n1;Barang bagus;5\n2;  ;1\n3;Rusak;x\n"
    table = batch.read_table(raw)
    assert table.columns == ["id", "Customer Review", "Customer Rating"]
    assert table.text_column == "Customer Review"
    b = batch.texts_of(table)
    assert b.texts == ["Barang bagus", "Rusak"] and b.row_numbers == [1, 3]
    assert b.ratings == [5, None]
    assert b.skipped == [(2, "empty text")]


def test_pasted_lines_are_one_review_each() -> None:
    table = batch.read_table("mantap sekali\n\njelek banget\n", pasted=True)
    assert batch.texts_of(table).texts == ["mantap sekali", "jelek banget"]


def test_pasted_csv_is_read_as_csv() -> None:
    table = batch.read_table('text,rating\n"bagus, cepat",5\n', pasted=True)
    assert batch.texts_of(table).texts == ["bagus, cepat"]


def test_over_long_texts_are_skipped_with_the_reason() -> None:
    table = batch.read_table("text\n" + "a" * (MAX_TEXT_CHARS + 1) + "\nok\n")
    b = batch.texts_of(table)
    assert b.texts == ["ok"] and b.skipped[0][0] == 1 and "more than" in b.skipped[0][1]


@pytest.mark.parametrize(
    ("raw", "message"),
    [(b"", "empty"), (b"\xff\xfe\x00bad", "not UTF-8")],
)
def test_unreadable_input_is_a_clear_error(raw: bytes, message: str) -> None:
    with pytest.raises(BadInput, match=message):
        batch.read_table(raw)


def test_unknown_column_is_named() -> None:
    with pytest.raises(BadInput, match="no column 'nope'"):
        batch.texts_of(batch.read_table("text\nx\n"), "nope")


def test_replay_ids_are_stable_and_distinct() -> None:
    b = batch.texts_of(batch.read_table("text,rating\nbagus,5\nbagus,5\njelek,1\n"))
    first, again = batch.replay_events(b), batch.replay_events(b)
    assert [e.review_id for e in first] == [e.review_id for e in again]
    assert len({e.review_id for e in first}) == 3
    assert all(e.source == "ui" for e in first) and first[2].rating == 1
    other = batch.texts_of(batch.read_table("text\nlain\n"))
    assert batch.replay_events(other)[0].review_id != first[0].review_id
