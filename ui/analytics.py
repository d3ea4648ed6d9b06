"""Shapes the analytics page draws, from query rows (pure: lists and dicts in, tables out)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from ui.queries import LABELS

Row = Mapping[str, Any]


def series_name(app: str, source: str | None) -> str:
    """How a (app, source) series is named in the legend."""
    return f"{app or '(no app)'} · {source or '(unknown)'}"


def sentiment_series(rows: Iterable[Row]) -> list[dict[str, Any]]:
    """Per bucket and (app, source) series: predictions, the share of each label and the net
    sentiment ``(positive - negative) / n`` in [-1, 1]; ordered by bucket, then series."""
    counts: dict[tuple[datetime, str], dict[str, int]] = defaultdict(
        lambda: dict.fromkeys(LABELS, 0)
    )
    for row in rows:
        key = (row["bucket"], series_name(row["app"], row["source"]))
        counts[key][row["label"]] += int(row["n"])
    out = []
    for (bucket, name), by_label in sorted(counts.items()):
        n = sum(by_label.values())
        out.append(
            {
                "bucket": bucket,
                "series": name,
                "n": n,
                "net": (by_label["positive"] - by_label["negative"]) / n,
                **{f"share_{k}": v / n for k, v in by_label.items()},
            }
        )
    return out


def shares(rows: Iterable[Row]) -> dict[str, float]:
    """Each label's share of the predictions (every label present, 0 when none)."""
    counts = dict.fromkeys(LABELS, 0)
    for row in rows:
        counts[row["label"]] += int(row["n"])
    total = sum(counts.values())
    return {k: (v / total if total else 0.0) for k, v in counts.items()}


def histogram(rows: Iterable[Row], bins: int = 20) -> list[dict[str, Any]]:
    """Every confidence bin ``[lo, hi)`` with its count (0 where the query had none)."""
    counts = {int(r["bin"]): int(r["n"]) for r in rows}
    return [
        {
            "confidence": f"{(i - 1) / bins:.2f}-{i / bins:.2f}",
            "lo": (i - 1) / bins,
            "hi": i / bins,
            "n": counts.get(i, 0),
        }
        for i in range(1, bins + 1)
    ]


def confusion(rows: Iterable[Row]) -> dict[str, dict[str, int]]:
    """``matrix[rating label][predicted label]`` counts, every cell present."""
    matrix = {a: dict.fromkeys(LABELS, 0) for a in LABELS}
    for row in rows:
        if row["rating_label"] in matrix and row["predicted"] in LABELS:
            matrix[row["rating_label"]][row["predicted"]] += int(row["n"])
    return matrix


def agreement(matrix: Mapping[str, Mapping[str, int]]) -> float | None:
    """The share of rated reviews whose prediction matches the rating's label (None: none)."""
    total = sum(sum(r.values()) for r in matrix.values())
    if not total:
        return None
    return sum(matrix[k][k] for k in LABELS) / total


def windows(last: datetime, size: timedelta) -> tuple[tuple[datetime, datetime], ...]:
    """``((previous start, previous end), (last start, last end))`` ending at ``last``
    (inclusive: the last window's end is just after it)."""
    end = last + timedelta(microseconds=1)
    return (end - 2 * size, end - size), (end - size, end)


BUCKET_SECONDS = {"minute": 60, "hour": 3600, "day": 86400, "week": 7 * 86400}


def pick_bucket(span: timedelta, points: int = 12) -> str:
    """The coarsest time bucket that still draws about ``points`` points over ``span``."""
    for name in ("week", "day", "hour"):
        if span.total_seconds() / BUCKET_SECONDS[name] >= points:
            return name
    return "minute"


def auto_window(first: datetime, last: datetime) -> timedelta:
    """The emerging-complaints window when none is chosen: half the span of the data (so both
    windows hold reviews), from one second to seven days."""
    half = (last - first) / 2
    return min(max(half, timedelta(seconds=1)), timedelta(days=7))
