"""The backoff every retry loop shares: its delays, its ceiling, its start-over, bad input."""

from __future__ import annotations

import itertools
import math

import pytest

from ulasan.core.retry import Backoff, backoff


def test_delays_double_up_to_the_ceiling_and_go_on() -> None:
    assert list(itertools.islice(backoff(0.5, 3.0), 6)) == [0.5, 1.0, 2.0, 3.0, 3.0, 3.0]


def test_without_a_ceiling_they_keep_doubling() -> None:
    assert list(itertools.islice(backoff(2.0), 5)) == [2.0, 4.0, 8.0, 16.0, 32.0]


def test_each_call_starts_over() -> None:
    first = backoff(1.0, 8.0)
    assert [next(first), next(first)] == [1.0, 2.0]
    assert next(backoff(1.0, 8.0)) == 1.0


@pytest.mark.parametrize(("initial_s", "max_s"), [(0.0, 1.0), (-1.0, 1.0), (2.0, 1.0)])
def test_a_wait_that_cannot_back_off_is_refused_at_once(initial_s: float, max_s: float) -> None:
    with pytest.raises(ValueError, match="0 < initial_s <= max_s"):
        backoff(initial_s, max_s)
    with pytest.raises(ValueError, match="0 < initial_s <= max_s"):
        Backoff(initial_s, max_s)


def test_backoff_doubles_to_its_ceiling_and_resets() -> None:
    b = Backoff(0.5, 3.0)
    assert [b.next() for _ in range(5)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    b.reset()
    assert b.next() == 0.5
    assert Backoff(1.0).max_s == math.inf
