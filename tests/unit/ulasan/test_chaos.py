"""The soak's pure parts: the fault plan (seeded), --faults parsing, the recovery test on
offsets, and what makes a soak fail. The soak itself: tests/integration/test_chaos_soak.py."""

from __future__ import annotations

import random

import pytest

from ulasan.chaos import FAULT_KINDS, ChaosError, caught_up, failed, fault_plan, parse_faults


def test_the_plan_is_the_same_for_a_seed_and_differs_between_seeds() -> None:
    one = fault_plan(random.Random(7), 600.0, None)
    assert one == fault_plan(random.Random(7), 600.0, None)
    assert one != fault_plan(random.Random(8), 600.0, None)


def test_a_random_plan_leaves_gaps_and_fits_the_run() -> None:
    for seed in range(20):
        plan = fault_plan(random.Random(seed), 600.0, None)
        assert 5 <= len(plan) <= 12, plan
        first, *rest = (gap for gap, _ in plan)
        assert 15.0 <= first <= 30.0
        assert all(20.0 <= gap <= 60.0 for gap in rest)
        assert {kind for _, kind in plan} <= set(FAULT_KINDS)
        assert sum(gap + 30.0 for gap, _ in plan) - 30.0 < 600.0
    kinds = {k for seed in range(20) for _, k in fault_plan(random.Random(seed), 600.0, None)}
    assert kinds == set(FAULT_KINDS)


def test_a_short_run_gets_no_random_fault_but_forced_ones_come_in_order() -> None:
    assert fault_plan(random.Random(0), 30.0, None) == []
    forced = fault_plan(random.Random(0), 30.0, ["broker", "worker", "postgres"])
    assert [kind for _, kind in forced] == ["broker", "worker", "postgres"]
    assert all(3.0 * 0.5 <= gap <= 7.5 for gap, _ in forced), forced


def test_faults_parse_in_order_and_anything_else_is_a_clear_error() -> None:
    assert parse_faults("worker, broker,postgres") == ("worker", "broker", "postgres")
    assert parse_faults(None) == ()
    for bad in ("worker,disk", ",", "Worker"):
        with pytest.raises(ChaosError, match="--faults takes"):
            parse_faults(bad)


def test_caught_up_needs_every_partition_at_its_target() -> None:
    target = {("raw", 0): 10, ("raw", 1): 0, ("clean", 0): 5}
    assert caught_up({("raw", 0): (10, 12), ("raw", 1): (-1, 0), ("clean", 0): (7, 9)}, target)
    assert not caught_up({("raw", 0): (9, 12), ("raw", 1): (-1, 0), ("clean", 0): (7, 9)}, target)
    assert not caught_up({("raw", 0): (10, 12)}, target)  # a partition not reported


def test_a_soak_fails_on_a_loss_an_unrecovered_fault_or_offsets_short_of_the_end() -> None:
    ok = {"lost": 0, "unrecovered": 0, "committed_at_log_end": True}
    assert not failed(ok)
    assert failed({**ok, "lost": 1})
    assert failed({**ok, "unrecovered": 1})
    assert failed({**ok, "committed_at_log_end": False})
