"""The label queue's ordering (pure): reviews the model is least sure of, or that drifted most.

"Drifted most" is judged on the newest drift report that found drift: for each of its drifted
signals that is a review feature (word counts, lexicon hits, ...) or the confidence, a
review's distance from the previous window's mean in standard deviations; a review's score is
the sum of those distances, so the reviews that carry the drift come first.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ui.queries import FEATURE_COLUMNS

Row = Mapping[str, Any]
#: the drift signals a single review has a value for
RANKABLE = (*FEATURE_COLUMNS, "confidence")


def drifted_columns(signals: Iterable[Mapping[str, Any]]) -> list[str]:
    """The drifted signals (of one report's ``signals``) a review can be ranked on."""
    return [str(s["name"]) for s in signals if s.get("drifted") and s.get("name") in RANKABLE]


def mean_std(rows: Sequence[Row], column: str) -> tuple[float, float]:
    """Mean and standard deviation of ``column`` (std 1.0 when it is 0 or undefined)."""
    values = [float(r[column]) for r in rows if r.get(column) is not None]
    if not values:
        return 0.0, 1.0
    mean = sum(values) / len(values)
    var = sum((v - mean) ** 2 for v in values) / len(values)
    return mean, math.sqrt(var) or 1.0


def drift_scores(
    rows: Sequence[Row], baseline: Sequence[Row], columns: Sequence[str]
) -> list[tuple[float, Row]]:
    """``(score, row)`` for each row, highest score first: the sum over ``columns`` of
    ``|value - baseline mean| / baseline std``. With no baseline rows the window's own
    statistics stand in."""
    ref = baseline if baseline else rows
    stats = {c: mean_std(ref, c) for c in columns}
    scored = []
    for row in rows:
        score = sum(
            abs(float(row[c]) - stats[c][0]) / stats[c][1]
            for c in columns
            if row.get(c) is not None
        )
        scored.append((score, row))
    scored.sort(key=lambda s: (-s[0], float(s[1].get("confidence", 1.0))))
    return scored
