"""Emerging complaints: the smoothed log-odds rise of a term's share among negative reviews."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ui import emerging


def test_log_odds_is_smoothed_and_checked() -> None:
    assert emerging.log_odds(0, 10) == pytest.approx(math.log(0.5 / 10.5))
    assert emerging.log_odds(10, 10) == pytest.approx(math.log(10.5 / 0.5))
    with pytest.raises(ValueError):
        emerging.log_odds(11, 10)


def test_rise_matches_the_formula() -> None:
    delta, z = emerging.rise(2, 100, 30, 100)
    expected = math.log(30.5 / 70.5) - math.log(2.5 / 98.5)
    var = 1 / 30.5 + 1 / 70.5 + 1 / 2.5 + 1 / 98.5
    assert delta == pytest.approx(expected) and z == pytest.approx(expected / math.sqrt(var))


def test_terms_keep_negations_and_drop_function_words() -> None:
    got = emerging.terms("Aplikasi tidak bisa login dan lambat")
    assert {"aplikasi", "tidak", "login", "lambat", "tidak bisa", "bisa login"} <= got
    assert "dan" not in got and "bisa" not in got


def test_the_new_complaint_ranks_first_with_examples() -> None:
    steady = ["pengiriman lama sekali", "barang rusak parah", "harga mahal banget"] * 10
    previous = steady
    last = steady + ["tidak bisa login setelah update"] * 12 + ["login gagal terus"] * 3
    found = emerging.emerging(previous, last, top=5)
    assert found, "a rising term must be found"
    assert found[0].term in {"login", "tidak bisa", "bisa login", "update", "setelah update"}
    login = next(t for t in found if "login" in t.term)
    assert login.previous == 0 and login.last >= 12
    assert login.examples and all("login" in e for e in login.examples)
    # terms whose share stayed the same are not "emerging"
    assert not any(t.term in {"rusak", "mahal", "lama"} for t in found)


def test_a_share_that_fell_is_never_reported() -> None:
    previous = ["aplikasi lambat"] * 20
    last = ["aplikasi lambat"] * 2 + ["bagus"] * 18
    assert all(t.term != "lambat" for t in emerging.emerging(previous, last, min_count=1))


def test_empty_windows_give_nothing() -> None:
    assert emerging.emerging([], ["a b c"] * 5) == []
    assert emerging.emerging(["a b c"] * 5, []) == []


@given(st.integers(0, 50), st.integers(0, 50), st.integers(1, 50), st.integers(1, 50))
def test_more_reviews_with_the_term_never_lower_the_rise(
    a0: int, a1: int, extra0: int, extra1: int
) -> None:
    n0, n1 = a0 + extra0, a1 + extra1
    d, _ = emerging.rise(a0, n0, a1, n1)
    if a1 + 1 <= n1:
        d_more, _ = emerging.rise(a0, n0, a1 + 1, n1)
        assert d_more > d
