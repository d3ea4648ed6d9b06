"""load_postgres against the real PostgreSQL of the local stack (rows created and removed here)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from trainer.data import LABEL_SOURCE, load_postgres
from trainer.errors import DataError
from ulasan.core.settings import Settings

T0 = datetime(2024, 1, 1, tzinfo=UTC)


@pytest.fixture
def rows(settings: Settings) -> Iterator[str]:
    """Reviews and feedback under a unique id prefix; deleted afterwards. Yields the prefix."""
    prefix = f"test-data-{uuid.uuid4().hex[:10]}-"
    reviews = [
        # (suffix, text, rating, ingested_at)
        ("human", "pelayanan lambat sekali", 5, T0),  # human feedback beats rating feedback
        ("fb", "biasa saja", 1, T0),  # rating feedback beats the review's own rating
        ("own", "barang bagus, pengiriman cepat", 4, T0 + timedelta(days=2)),
        ("none", "belum dicoba", None, T0),  # no label at all: skipped
        ("latest", "lumayan", None, T0),  # two human labels: the latest wins
    ]
    feedback = [
        # (review suffix, label, source, time)
        ("human", "negative", "human", T0 + timedelta(days=1)),
        ("human", "positive", "rating", T0 + timedelta(days=3)),
        ("fb", "neutral", "rating", T0 + timedelta(days=1)),
        ("latest", "positive", "human", T0 + timedelta(days=1)),
        ("latest", "neutral", "human", T0 + timedelta(days=4)),
    ]
    with psycopg.connect(settings.postgres.dsn, autocommit=True) as conn:
        for suffix, text, rating, ingested in reviews:
            conn.execute(
                "INSERT INTO reviews (review_id, source, text, rating, ingested_at) "
                "VALUES (%s, 'test', %s, %s, %s)",
                (prefix + suffix, text, rating, ingested),
            )
        for i, (suffix, label, source, time) in enumerate(feedback):
            conn.execute(
                'INSERT INTO feedback (feedback_id, review_id, label, source, "time") '
                "VALUES (%s, %s, %s, %s, %s)",
                (f"{prefix}fb{i}", prefix + suffix, label, source, time),
            )
    try:
        yield prefix
    finally:
        with psycopg.connect(settings.postgres.dsn, autocommit=True) as conn:
            conn.execute("DELETE FROM feedback WHERE feedback_id LIKE %s", (prefix + "%",))
            conn.execute("DELETE FROM reviews WHERE review_id LIKE %s", (prefix + "%",))


def _mine(examples, prefix):  # type: ignore[no-untyped-def]
    return {e.id.removeprefix(prefix): e for e in examples if e.id and e.id.startswith(prefix)}


def test_label_priority_human_then_rating_feedback_then_rating(
    settings: Settings, rows: str
) -> None:
    got = _mine(load_postgres(settings.postgres.dsn), rows)
    assert sorted(got) == ["fb", "human", "latest", "own"]  # "none" has no label
    assert (got["human"].label, got["human"].meta[LABEL_SOURCE]) == ("negative", "human")
    assert (got["fb"].label, got["fb"].meta[LABEL_SOURCE]) == ("neutral", "rating_feedback")
    assert (got["own"].label, got["own"].meta[LABEL_SOURCE]) == ("positive", "rating")
    assert got["latest"].label == "neutral"
    assert got["own"].rating == 4 and got["own"].text == "barang bagus, pengiriman cepat"
    assert got["own"].source == "test"


def test_since_keeps_labels_that_arrived_from_then(settings: Settings, rows: str) -> None:
    got = _mine(load_postgres(settings.postgres.dsn, since=T0 + timedelta(days=2)), rows)
    # human: label at day 1; fb: day 1; own: ingested day 2; latest: chosen label at day 4
    assert sorted(got) == ["latest", "own"]


def test_naive_since_is_refused(settings: Settings) -> None:
    with pytest.raises(DataError, match="timezone-aware"):
        load_postgres(settings.postgres.dsn, since=datetime(2024, 1, 1))


def test_unreachable_database_is_a_data_error() -> None:
    with pytest.raises(DataError, match="stack up"):
        load_postgres("postgresql://ulasan@127.0.0.1:1/ulasan", connect_timeout=2)
