"""Drift accumulators and tests against scipy: no drift stays quiet, shifted windows alarm."""

from __future__ import annotations

import json
from dataclasses import asdict

import numpy as np
import pytest
from scipy import stats

from schemas.events import LABELS
from stream_processors.drift import reservoir
from stream_processors.drift.accumulator import (
    DriftAccumulator,
    FeedbackObservation,
    ScoreObservation,
    observation_from_json,
)
from stream_processors.drift.config import DriftConfig
from stream_processors.drift.errors import ReferenceUnavailable, StateError
from stream_processors.drift.reference import BOOLEAN_FEATURES, NUMERIC_FEATURES, Reference
from stream_processors.drift.stats import chi2, correct, holm, ks, trend


def observe(rng: np.random.Generator, *, shift: float = 0.0, unk: float = 0.01) -> ScoreObservation:
    """One synthetic scored review; ``shift`` moves every numeric feature and the labels."""
    words = int(rng.poisson(12 * (1 + shift)))
    numeric = {name: float(rng.poisson(3 * (1 + shift))) for name in NUMERIC_FEATURES}
    numeric["word_count"] = float(words)
    numeric["uppercase_ratio"] = float(min(1.0, rng.beta(2, 20 * (1 - shift / 2))))
    p_pos = 0.4 + 0.4 * shift
    label = rng.choice(LABELS, p=[0.4 - 0.3 * shift, 0.2 - 0.1 * shift, p_pos])
    tokens = max(1, words + 2)
    return ScoreObservation(
        numeric=numeric,
        flags={"has_url": bool(rng.random() < 0.02), "has_emoji": bool(rng.random() < 0.1 + shift)},
        label=str(label),
        confidence=float(rng.beta(8 * (1 - shift / 2), 2)),
        tokens=tokens,
        unknown_tokens=int(rng.binomial(tokens, unk)),
        model_version="1",
    )


def test_score_observation_json_is_every_field_and_reads_back() -> None:
    obs = observe(np.random.default_rng(3))
    out = obs.to_json()
    assert out == {"kind": "score", **asdict(obs)}
    assert out["numeric"] is not obs.numeric  # a copy: folding never aliases the event's dicts
    assert observation_from_json(json.loads(json.dumps(out))) == obs


def reference_from(rng: np.random.Generator, n: int = 2000, accuracy: float = 0.85) -> Reference:
    obs = [observe(rng) for _ in range(n)]
    profile = {
        "created_at": "2025-01-01T00:00:00+00:00",
        "numeric_features": {
            name: {"sample": [o.numeric[name] for o in obs]} for name in NUMERIC_FEATURES
        },
        "categorical_features": {
            name: {
                "true": sum(o.flags[name] for o in obs),
                "false": sum(not o.flags[name] for o in obs),
            }
            for name in BOOLEAN_FEATURES
        },
        "predicted_labels": {lab: sum(o.label == lab for o in obs) for lab in LABELS},
        "confidence": {"sample": [o.confidence for o in obs]},
        "unknown_token_rate": sum(o.unknown_tokens for o in obs) / sum(o.tokens for o in obs),
    }
    return Reference.from_profile(profile, model_version="1", baseline_accuracy=accuracy)


def window(acc: DriftAccumulator, observations, feedback=()):  # noqa: ANN001, ANN201
    state = acc.initialize(0.0, 60.0)
    for o in [*observations, *feedback]:
        state = acc.agg(state, o)
    return state


def test_reservoir_is_bounded_deterministic_and_uniform() -> None:
    a, b = reservoir.initialize(), reservoir.initialize()
    for i in range(10_000):
        reservoir.agg(a, float(i), size=200, seed=3)
        reservoir.agg(b, float(i), size=200, seed=3)
    assert a == b
    assert a["n"] == 10_000 and len(a["sample"]) == 200
    # a uniform sample of 0..9999 has mean ~5000 (sd of the mean ~204)
    assert abs(np.mean(a["sample"]) - 5000) < 4 * 2887 / np.sqrt(200)
    # KS against the uniform distribution of the stream does not reject
    assert stats.kstest(np.array(a["sample"]) / 10_000, "uniform").pvalue > 0.01


def test_state_survives_a_json_round_trip() -> None:
    acc = DriftAccumulator(DriftConfig(sample_size=50))
    rng = np.random.default_rng(1)
    obs = [observe(rng) for _ in range(300)]
    whole = window(acc, obs)
    half = window(acc, obs[:150])
    half = json.loads(json.dumps(half))  # what the changelog does to it
    for o in obs[150:]:
        half = acc.agg(half, observation_from_json(json.loads(json.dumps(o.to_json()))))
    assert half == whole


def test_ks_and_chi2_are_scipys() -> None:
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=300), rng.normal(0.3, size=500)
    d, p = ks(x, y)
    res = stats.ks_2samp(x, y)
    assert (d, p) == pytest.approx((res.statistic, res.pvalue))
    w, r = {"a": 30, "b": 50, "c": 20}, {"a": 300, "b": 300, "c": 400}
    x2, p2 = chi2(w, r)
    ref = stats.chi2_contingency(np.array([[30, 50, 20], [300, 300, 400]]), correction=False)
    assert (x2, p2) == pytest.approx((ref.statistic, ref.pvalue))
    assert chi2({"a": 5}, {"a": 10, "b": 0}) == (0.0, 1.0)  # one category: nothing to test


def test_holm_and_bonferroni() -> None:
    p = [0.01, 0.04, 0.03, 0.005]
    # sorted 0.005 <= .0125, 0.01 <= .0167, 0.03 > .025 -> stop
    assert holm(p, 0.05) == [True, False, False, True]
    assert [r for _, r in correct(p, 0.05, "bonferroni")] == [True, False, False, True]
    assert correct([], 0.05, "holm") == []


def test_no_drift_keeps_quiet_at_the_configured_rate() -> None:
    rng = np.random.default_rng(3)
    reference = reference_from(rng)
    acc = DriftAccumulator(DriftConfig(sample_size=300, alpha=0.05))
    alarms = 0
    windows = 40
    for _ in range(windows):
        verdict = acc.result(window(acc, [observe(rng) for _ in range(300)]), reference)
        alarms += any(s.drifted for s in verdict.signals)
        assert not verdict.drifted
    # family-wise level 0.05 per window: well under 15% of windows may raise any signal
    assert alarms / windows <= 0.15


def test_shifted_window_alarms() -> None:
    rng = np.random.default_rng(4)
    reference = reference_from(rng)
    acc = DriftAccumulator(DriftConfig(sample_size=300))
    verdict = acc.result(
        window(acc, [observe(rng, shift=0.5, unk=0.05) for _ in range(300)]), reference
    )
    drifted = {s.name for s in verdict.signals if s.drifted}
    assert verdict.drifted and verdict.drift_score > 0.3
    assert {"feature.word_count", "predicted_label", "confidence", "unknown_token_rate"} <= drifted
    assert all(
        s.p_value is not None and s.p_value <= s.threshold for s in verdict.signals if s.drifted
    )


def test_accuracy_below_baseline_is_a_signal_and_trend_slopes() -> None:
    rng = np.random.default_rng(5)
    reference = reference_from(rng, accuracy=0.9)
    acc = DriftAccumulator(DriftConfig(sample_size=100, min_feedback=30))
    fb = [FeedbackObservation(correct=i % 2 == 0, model_version="1") for i in range(200)]
    state = window(acc, [observe(rng) for _ in range(200)], fb)
    history = [(day * 86400.0, 0.9 - 0.05 * day) for day in range(5)]
    state["end"] = 5 * 86400.0
    verdict = acc.result(state, reference, history)
    signals = {s.name: s for s in verdict.signals}
    assert verdict.accuracy == pytest.approx(0.5)
    assert signals["accuracy"].drifted and signals["accuracy"].statistic == pytest.approx(0.5)
    assert signals["accuracy_trend_per_day"].statistic < 0
    good = window(acc, [observe(rng) for _ in range(200)], [FeedbackObservation(True, "1")] * 200)
    assert not {s.name: s for s in acc.result(good, reference).signals}["accuracy"].drifted


def test_trend_needs_three_points() -> None:
    assert trend([(0.0, 0.9), (86400.0, 0.8)]) is None
    slope, p = trend([(0.0, 0.9), (86400.0, 0.8), (2 * 86400.0, 0.7)]) or (0, 1)
    assert slope == pytest.approx(-0.1)


def test_bad_state_and_profile_are_refused() -> None:
    acc = DriftAccumulator(DriftConfig())
    with pytest.raises(StateError):
        acc.agg({"v": 99}, FeedbackObservation(True, "1"))
    with pytest.raises(StateError):
        observation_from_json({"kind": "other"})
    with pytest.raises(ReferenceUnavailable):
        Reference.from_profile({"numeric_features": {}}, model_version="1")
