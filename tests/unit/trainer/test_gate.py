"""trainer.gate: the pure rule and decision records (the registry round trip: integration)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from trainer.errors import GateError
from trainer.gate import (
    GateConfig,
    GateDecision,
    decide,
    guard_scores_from_tags,
    guard_tags,
    guard_verdict,
    sourced_hash,
)
from trainer.registry import EvalScores, _plain, dataset_hash


def scores(acc: float, f1: float, h: str = "h1") -> EvalScores:
    return EvalScores(accuracy=acc, macro_f1=f1, n=500, dataset_hash=h, dataset_name="smsa-test")


@pytest.mark.parametrize(
    ("candidate", "champion", "config", "promoted", "reason"),
    [
        (scores(0.80, 0.70), None, GateConfig(), True, "no champion yet"),
        (scores(0.74, 0.70), None, GateConfig(), False, "below the minimum"),
        (scores(0.74, 0.70), None, GateConfig(min_accuracy=0.7), True, "no champion"),
        (scores(0.80, 0.70), scores(0.82, 0.71), GateConfig(), False, "below the champion"),
        (scores(0.80, 0.70), scores(0.82, 0.71), GateConfig(tolerance=0.02), True, ">= champion"),
        (scores(0.80, 0.71), scores(0.82, 0.71), GateConfig(), True, ">= champion"),
        (scores(0.70, 0.90), scores(0.60, 0.50), GateConfig(), False, "below the minimum"),
    ],
)
def test_decide(
    candidate: EvalScores,
    champion: EvalScores | None,
    config: GateConfig,
    promoted: bool,
    reason: str,
) -> None:
    ok, why = decide(candidate, champion, config)
    assert ok is promoted
    assert reason in why


def guard(cand_f1: float, champ_f1: float | None, tolerance: float = 0.01):  # noqa: ANN201
    champ = None if champ_f1 is None else scores(0.8, champ_f1, "base")
    return guard_verdict("smsa-valid-dedup", scores(0.8, cand_f1, "base"), champ, tolerance)


@pytest.mark.parametrize(
    ("cand_f1", "champ_f1", "tolerance", "passed"),
    [
        (0.8312, 0.8520, 0.01, False),  # lost 2.1 points: forgetting
        (0.8430, 0.8520, 0.01, True),  # lost 0.9 points: within the tolerance
        (0.8420, 0.8520, 0.01, True),  # lost exactly the tolerance
        (0.8419, 0.8520, 0.01, False),
        (0.8600, 0.8520, 0.0, True),  # gained
        (0.8312, 0.8520, 0.05, True),
        (0.10, None, 0.0, True),  # no champion: nothing to forget
    ],
)
def test_guard_verdict(
    cand_f1: float, champ_f1: float | None, tolerance: float, passed: bool
) -> None:
    assert guard(cand_f1, champ_f1, tolerance).passed is passed


def test_a_failed_guard_refuses_a_pooled_gain_and_names_the_set() -> None:
    pooled_cand, pooled_champ = scores(0.82, 0.78), scores(0.80, 0.72)  # +6 points pooled
    ok, why = decide(pooled_cand, pooled_champ, GateConfig(), [guard(0.8312, 0.8520)])
    assert not ok
    assert why == "forgetting: smsa-valid-dedup macro-F1 0.8312 < champion 0.8520 - 0.0100"
    ok, why = decide(pooled_cand, pooled_champ, GateConfig(), [guard(0.8430, 0.8520)])
    assert ok and "no forgetting: smsa-valid-dedup macro-F1 0.8430 >= champion 0.8520" in why
    # no guards: the pooled rule alone, as before
    assert decide(pooled_cand, pooled_champ, GateConfig()) == (
        True,
        decide(pooled_cand, pooled_champ, GateConfig(), [])[1],
    )


def test_guards_do_not_block_without_a_champion_nor_hide_a_pooled_refusal() -> None:
    ok, why = decide(scores(0.8, 0.7), None, GateConfig(), [guard(0.1, None)])
    assert ok and "no champion yet" in why
    ok, why = decide(scores(0.8, 0.6), scores(0.8, 0.7), GateConfig(), [guard(0.9, 0.8)])
    assert not ok and "below the champion's" in why  # the pooled loss is reported first
    two = [guard(0.70, 0.80), guard(0.80, 0.80)]
    two[1] = guard_verdict("nusax", scores(0.8, 0.5, "n"), scores(0.8, 0.6, "n"), 0.01)
    ok, why = decide(scores(0.8, 0.7), scores(0.8, 0.7), GateConfig(), two)
    assert not ok and why.count("forgetting:") == 2 and "nusax macro-F1 0.5000" in why


def test_guard_scores_from_different_sets_are_not_compared() -> None:
    with pytest.raises(GateError, match="guard g: scores from different evaluation sets"):
        guard_verdict("g", scores(0.8, 0.8, "a"), scores(0.8, 0.8, "b"), 0.01)


def test_guard_scores_round_trip_through_their_own_tags() -> None:
    s = scores(0.81, 0.7731, "base")
    tags = guard_tags("smsa-valid-dedup", s)
    assert all(k.startswith("ulasan.guard.smsa-valid-dedup.") for k in tags)
    assert not set(tags) & set(s.to_tags())  # never over the pooled ulasan.eval.* scores
    back = guard_scores_from_tags("smsa-valid-dedup", tags)
    assert back is not None and back.macro_f1 == pytest.approx(0.7731)
    assert back.dataset_hash == "base" and back.dataset_name == "smsa-valid-dedup"
    assert guard_scores_from_tags("other", tags) is None


def test_scores_from_different_sets_are_not_compared() -> None:
    with pytest.raises(GateError, match="different evaluation sets"):
        decide(scores(0.8, 0.8, "a"), scores(0.8, 0.8, "b"), GateConfig())


def test_config_bounds() -> None:
    with pytest.raises(ValueError):
        GateConfig(min_accuracy=1.5)
    with pytest.raises(ValueError):
        GateConfig(tolerance=-0.1)
    with pytest.raises(ValueError):
        GateConfig(base_tolerance=1.1)
    assert GateConfig().base_tolerance == 0.01


def test_decision_tags_and_event() -> None:
    decision = GateDecision(
        promoted=True,
        reason="fine",
        model_name="ulasan-sentiment",
        candidate_version="4",
        candidate=scores(0.8, 0.75),
        champion_version="3",
        champion=scores(0.79, 0.74),
        config=GateConfig(),
    )
    tags = decision.to_tags()
    assert tags["ulasan.gate.decision"] == "promoted"
    assert tags["ulasan.gate.champion_version"] == "3"
    assert float(tags["ulasan.gate.champion_macro_f1"]) == pytest.approx(0.74)
    event = decision.to_event()
    assert event is not None
    assert (event.version, event.previous_version, event.alias) == ("4", "3", "champion")
    assert event.metrics == {"accuracy": 0.8, "macro_f1": 0.75}
    assert decision.as_dict()["candidate"]["macro_f1"] == 0.75
    rejected = GateDecision(**{**decision.__dict__, "promoted": False})
    assert rejected.to_event() is None
    assert rejected.to_tags()["ulasan.gate.decision"] == "rejected"
    assert decision.as_dict()["guards"] == [] and "guard" not in tags["ulasan.gate.rule"]


def test_decision_carries_the_guards() -> None:
    forgot = guard(0.8312, 0.8520)
    decision = GateDecision(
        promoted=False,
        reason="forgetting: " + forgot.reason,
        model_name="ulasan-sentiment",
        candidate_version="4",
        candidate=scores(0.8, 0.75),
        champion_version="3",
        champion=scores(0.79, 0.74),
        config=GateConfig(base_tolerance=0.01),
        guards=(forgot,),
    )
    out = json.loads(json.dumps(decision.as_dict()))
    assert out["base_tolerance"] == 0.01
    (g,) = out["guards"]
    assert (g["name"], g["passed"], g["tolerance"]) == ("smsa-valid-dedup", False, 0.01)
    assert g["candidate"]["macro_f1"] == 0.8312 and g["champion"]["macro_f1"] == 0.8520
    tags = decision.to_tags()
    assert tags["ulasan.gate.guard.smsa-valid-dedup"].startswith("failed: smsa-valid-dedup")
    assert "on each of smsa-valid-dedup, macro_f1 >= champion - 0.01" in tags["ulasan.gate.rule"]


def test_scores_round_trip_through_tags() -> None:
    s = scores(0.812345, 0.7)
    back = EvalScores.from_tags(s.to_tags())
    assert back is not None and back.accuracy == pytest.approx(0.812345)
    assert back.dataset_hash == "h1" and back.n == 500
    assert EvalScores.from_tags({"ulasan.eval.accuracy": "0.8"}) is None


def test_dataset_hash() -> None:
    a = dataset_hash([("bagus", "positive"), ("jelek", "negative")])
    assert a == dataset_hash([("bagus", "POSITIVE "), ("jelek", "negative")])
    assert a != dataset_hash([("jelek", "negative"), ("bagus", "positive")])
    assert a != dataset_hash([("bagus", "neutral"), ("jelek", "negative")])
    with pytest.raises(Exception, match="empty"):
        dataset_hash([])


def test_the_sources_of_a_set_are_part_of_its_hash() -> None:
    # a model with domain tags scores the same texts differently with their sources, so a
    # score recorded without them is never taken for one with them
    pairs = [("bagus", "positive"), ("jelek", "negative")]
    assert sourced_hash(pairs, None) == dataset_hash(pairs) == sourced_hash(pairs, [None, None])
    with_source = sourced_hash(pairs, [None, "prdect"])
    assert with_source != dataset_hash(pairs)
    assert with_source == sourced_hash(pairs, [None, "prdect"])
    assert with_source != sourced_hash(pairs, ["prdect", None])


def test_reports_become_plain_json() -> None:

    @dataclasses.dataclass
    class Report:
        n: int
        path: Path

    plain = _plain({"a": Report(3, Path("/x")), "b": (1, 2.5, None), "c": scores(0.8, 0.7)})
    assert plain == {
        "a": {"n": 3, "path": "/x"},
        "b": [1, 2.5, None],
        "c": {
            "accuracy": 0.8,
            "macro_f1": 0.7,
            "n": 500,
            "dataset_hash": "h1",
            "dataset_name": "smsa-test",
        },
    }
    json.dumps(plain)
