"""Feedback: rolling error rate, outcome rows, the retrain consumer's fixed hold-out split."""

from __future__ import annotations

import json

import pytest

from stream_processors.feedback.logic import JOIN_BY_IDS, RECONCILE, Outcome, RollingError, outcomes
from trainer.data import Example
from trainer.retrain.split import SELECTION_SALT, holdout, split_labelled


def test_rolling_error_keeps_the_last_n() -> None:
    r = RollingError(4)
    state = r.initialize()
    assert r.result(state) == (None, 0)
    for correct in (False, False, True, True, True, True):
        state = r.agg(state, correct)
    assert r.result(state) == (0.0, 4)
    state = r.agg(json.loads(json.dumps(state)), False)
    assert r.result(state) == (0.25, 4)
    with pytest.raises(ValueError, match="size"):
        RollingError(0)


def test_outcomes_from_join_rows() -> None:
    rows = [("r1", "positive", "negative", "3", False), ("r1", "negative", "negative", "4", True)]
    got = outcomes(rows)
    assert got == [
        Outcome("r1", "positive", "negative", "3", False),
        Outcome("r1", "negative", "negative", "4", True),
    ]
    assert [o.correct for o in got] == [False, True]


def test_join_sql_prefers_human_then_latest() -> None:
    for sql in (JOIN_BY_IDS, RECONCILE):
        assert "(f.source = 'human') DESC" in sql and 'f."time" DESC' in sql
        assert "IS DISTINCT FROM" in sql  # a relabel updates, a replay does not


def test_holdout_is_fixed_and_near_its_share() -> None:
    ids = [f"prdect/{i}" for i in range(5000)]
    held = [i for i in ids if holdout(i, 0.2)]
    assert held == [i for i in ids if holdout(i, 0.2)]
    assert 0.17 < len(held) / len(ids) < 0.23
    examples = [Example(text=f"t{i}", label="positive", id=i) for i in ids[:100]]
    train, out = split_labelled(examples, 0.2)
    assert len(train) + len(out) == 100 and not {e.id for e in train} & {e.id for e in out}


def test_the_selection_split_is_fixed_and_independent_of_the_holdout() -> None:
    ids = [f"prdect/{i}" for i in range(5000)]
    rest = [i for i in ids if not holdout(i, 0.2)]
    chosen = [i for i in rest if holdout(i, 0.15, salt=SELECTION_SALT)]
    assert chosen == [i for i in rest if holdout(i, 0.15, salt=SELECTION_SALT)]
    assert 0.12 < len(chosen) / len(rest) < 0.18
    # another hash: the same share of the held-out ids would be drawn too (not a subset of it)
    held = [i for i in ids if holdout(i, 0.2)]
    salted_held = [i for i in held if holdout(i, 0.15, salt=SELECTION_SALT)]
    assert 0.10 < len(salted_held) / len(held) < 0.20
    examples = [Example(text=f"t{i}", label="positive", id=i) for i in rest[:200]]
    train, selection = split_labelled(examples, 0.15, salt=SELECTION_SALT)
    assert len(train) + len(selection) == 200 and selection
    assert not {e.id for e in train} & {e.id for e in selection}
