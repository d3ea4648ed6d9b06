"""The tests of one drift window (KS, chi-square, binomial, trend) and the multiple-test rule.

Each test gives a statistic and a p-value; the p-values of a window are corrected together
(Holm, or Bonferroni) at the family-wise level ``alpha``. The drift score is the share of
drifted signals; a window is drifted when that share exceeds ``score_threshold``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from scipy import stats

from schemas.events import DriftSignal
from stream_processors.drift.reference import BOOLEAN_FEATURES, NUMERIC_FEATURES

if TYPE_CHECKING:
    from stream_processors.drift.config import DriftConfig
    from stream_processors.drift.reference import Reference

DAY_S = 86400.0


@dataclass(frozen=True)
class DriftVerdict:
    """The signals of one window, its drift score and verdict, and its feedback accuracy."""

    signals: list[DriftSignal]
    drift_score: float
    drifted: bool
    n_events: int
    accuracy: float | None
    model_version: str


@dataclass(frozen=True)
class _Test:
    name: str
    test: Literal["ks", "chi2", "accuracy", "rate"]
    statistic: float
    p_value: float
    effect_ok: bool = True  # an effect-size floor some tests add to significance


def ks(window: Sequence[float], reference: Sequence[float]) -> tuple[float, float]:
    """Two-sample Kolmogorov-Smirnov: (D, p)."""
    res = stats.ks_2samp(np.asarray(window, float), np.asarray(reference, float))
    return float(res.statistic), float(res.pvalue)


def chi2(window: dict[str, int], reference: dict[str, int]) -> tuple[float, float]:
    """Chi-square test of homogeneity of two count vectors over the same categories: (X2, p).

    Categories empty in both are left out; with fewer than two left there is nothing to test
    (0.0, 1.0).
    """
    keys = [k for k in reference if window.get(k, 0) + reference.get(k, 0) > 0]
    if len(keys) < 2 or sum(window.get(k, 0) for k in keys) == 0:
        return 0.0, 1.0
    table = np.array([[window.get(k, 0) for k in keys], [reference[k] for k in keys]], float)
    res = stats.chi2_contingency(table, correction=False)
    return float(res.statistic), float(res.pvalue)


def correct(p_values: Sequence[float], alpha: float, method: str) -> list[tuple[float, bool]]:
    """Per test: (the threshold its p-value was held to, rejected?), in input order.

    ``bonferroni``: every p against alpha/m. ``holm``: sorted ascending, the i-th (0-based)
    against alpha/(m-i), stopping at the first that fails.
    """
    m = len(p_values)
    if m == 0:
        return []
    if method == "bonferroni":
        return [(alpha / m, p <= alpha / m) for p in p_values]
    out: list[tuple[float, bool]] = [(alpha / m, False)] * m
    failed = False
    for rank, i in enumerate(sorted(range(m), key=lambda k: p_values[k])):
        threshold = alpha / (m - rank)
        rejected = not failed and p_values[i] <= threshold
        failed = failed or not rejected
        out[i] = (threshold, rejected)
    return out


def holm(p_values: Sequence[float], alpha: float = 0.05) -> list[bool]:
    """Which hypotheses Holm's step-down procedure rejects at family-wise level ``alpha``."""
    return [r for _, r in correct(p_values, alpha, "holm")]


def trend(history: Sequence[tuple[float, float]]) -> tuple[float, float] | None:
    """Least-squares slope of accuracy per day and its two-sided p-value; None for < 3 points
    or no spread in time."""
    if len(history) < 3:
        return None
    t = np.array([h[0] for h in history], float) / DAY_S
    y = np.array([h[1] for h in history], float)
    if np.ptp(t) == 0:
        return None
    if np.ptp(y) == 0:
        return 0.0, 1.0
    res = stats.linregress(t, y)
    return float(res.slope), float(res.pvalue)


def _distribution_tests(
    state: dict[str, Any], reference: Reference, config: DriftConfig
) -> list[_Test]:
    """The window's features, confidence, labels and unknown-token rate against the reference."""
    tests: list[_Test] = []
    for name in NUMERIC_FEATURES:
        d, p = ks(state["numeric"][name]["sample"], reference.numeric[name])
        tests.append(_Test(f"feature.{name}", "ks", d, p))
    d, p = ks(state["confidence"]["sample"], reference.confidence)
    tests.append(_Test("confidence", "ks", d, p))
    x2, p = chi2(state["predicted"], reference.predicted)
    tests.append(_Test("predicted_label", "chi2", x2, p))
    for name in BOOLEAN_FEATURES:
        x2, p = chi2(state["categorical"][name], reference.categorical[name])
        tests.append(_Test(f"feature.{name}", "chi2", x2, p))
    total, unknown = state["tokens"]["total"], state["tokens"]["unknown"]
    if total:
        rate = unknown / total
        ref = reference.unknown_token_rate
        p0 = min(max(ref, 1e-6), 1 - 1e-6)
        p = float(stats.binomtest(unknown, total, p0, alternative="greater").pvalue)
        floor = rate >= ref * config.unk_min_ratio and rate - ref >= config.unk_min_delta
        tests.append(_Test("unknown_token_rate", "rate", rate, p, floor))
    return tests


def _feedback_tests(
    state: dict[str, Any],
    reference: Reference,
    config: DriftConfig,
    history: Sequence[tuple[float, float]],
) -> tuple[list[_Test], float | None]:
    """The window's accuracy against the baseline and the accuracy trend; and the accuracy."""
    tests: list[_Test] = []
    fb = state["feedback"]
    accuracy = fb["correct"] / fb["n"] if fb["n"] else None
    if accuracy is None or fb["n"] < config.min_feedback:
        return tests, accuracy
    if reference.baseline_accuracy is not None:
        base = min(max(reference.baseline_accuracy, 1e-6), 1 - 1e-6)
        p = float(stats.binomtest(fb["correct"], fb["n"], base, alternative="less").pvalue)
        tests.append(_Test("accuracy", "accuracy", accuracy, p, accuracy < base))
    slope = trend([*history, (float(state["end"]), accuracy)])
    if slope is not None:
        tests.append(_Test("accuracy_trend_per_day", "rate", slope[0], slope[1], slope[0] < 0))
    return tests, accuracy


def judge(
    state: dict[str, Any],
    reference: Reference,
    config: DriftConfig,
    history: Sequence[tuple[float, float]],
) -> DriftVerdict:
    """Run every test the window has data for, correct, score and decide."""
    n = int(state["n"])
    tests = _distribution_tests(state, reference, config) if n else []
    feedback, accuracy = _feedback_tests(state, reference, config, history)
    tests += feedback

    decisions = correct([t.p_value for t in tests], config.alpha, config.correction)
    signals = [
        DriftSignal(
            name=t.name,
            test=t.test,
            statistic=t.statistic,
            p_value=min(1.0, max(0.0, t.p_value)),
            threshold=threshold,
            drifted=rejected and t.effect_ok,
        )
        for t, (threshold, rejected) in zip(tests, decisions, strict=True)
    ]
    score = sum(s.drifted for s in signals) / len(signals) if signals else 0.0
    versions: dict[str, int] = state["versions"]
    version = max(versions, key=lambda v: versions[v]) if versions else reference.model_version
    return DriftVerdict(
        signals=signals,
        drift_score=score,
        drifted=score > config.score_threshold,
        n_events=n,
        accuracy=accuracy,
        model_version=version,
    )


__all__ = ["DriftVerdict", "chi2", "correct", "holm", "judge", "ks", "trend"]
