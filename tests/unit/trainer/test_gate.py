"""trainer.gate: the pure rule and decision records (the registry round trip: integration)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from trainer.errors import GateError
from trainer.gate import GateConfig, GateDecision, decide
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


def test_scores_from_different_sets_are_not_compared() -> None:
    with pytest.raises(GateError, match="different evaluation sets"):
        decide(scores(0.8, 0.8, "a"), scores(0.8, 0.8, "b"), GateConfig())


def test_config_bounds() -> None:
    with pytest.raises(ValueError):
        GateConfig(min_accuracy=1.5)
    with pytest.raises(ValueError):
        GateConfig(tolerance=-0.1)


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
