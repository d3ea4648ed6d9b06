"""The pages' SQL builders: user text only as parameters, filters checked (their results are
checked against PostgreSQL in tests/integration/test_ui_queries.py)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from ui import queries


def test_like_pattern_matches_wildcards_literally() -> None:
    assert queries.like_pattern("50%_off\\") == "%50\\%\\_off\\\\%"


def test_search_and_filters_travel_as_parameters() -> None:
    f = queries.HistoryFilter(
        search="'; DROP TABLE reviews; --", labels=("negative",), apps=("x",), page=2, page_size=10
    )
    sql, params = queries.history(f)
    assert "DROP" not in sql and params["search"].startswith("%'; DROP")
    assert params["offset"] == 20 and params["limit"] == 10 and params["labels"] == ["negative"]
    assert "NOT p.shadow" in sql


@pytest.mark.parametrize(
    "kwargs",
    [
        {"min_confidence": 0.8, "max_confidence": 0.2},
        {"page": -1},
        {"labels": ("angry",)},
    ],
)
def test_bad_filters_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        queries.HistoryFilter(**kwargs)  # type: ignore[arg-type]


def test_window_checks_its_bounds() -> None:
    t = datetime(2026, 1, 1, tzinfo=UTC)
    with pytest.raises(ValueError):
        queries.Window(t, t)
    with pytest.raises(ValueError):
        queries.Window(t, t.replace(year=2027), bucket="fortnight")
