"""The analytics page's tables from query rows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ui import analytics

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def test_sentiment_series_per_app_and_source() -> None:
    rows = [
        {"bucket": T0, "app": "a", "source": "replay", "label": "positive", "n": 3},
        {"bucket": T0, "app": "a", "source": "replay", "label": "negative", "n": 1},
        {"bucket": T0, "app": "", "source": "gateway", "label": "neutral", "n": 2},
    ]
    out = {(r["bucket"], r["series"]): r for r in analytics.sentiment_series(rows)}
    a = out[(T0, "a · replay")]
    assert a["n"] == 4 and a["net"] == pytest.approx(0.5) and a["share_positive"] == 0.75
    assert out[(T0, "(no app) · gateway")]["net"] == 0


def test_shares_histogram_and_confusion() -> None:
    assert analytics.shares([{"label": "negative", "n": 1}, {"label": "positive", "n": 3}]) == {
        "negative": 0.25,
        "neutral": 0.0,
        "positive": 0.75,
    }
    bins = analytics.histogram([{"bin": 20, "n": 5}, {"bin": 1, "n": 1}])
    assert len(bins) == 20 and bins[0]["n"] == 1 and bins[1]["n"] == 0
    assert bins[-1] == {"confidence": "0.95-1.00", "lo": 0.95, "hi": 1.0, "n": 5}
    m = analytics.confusion(
        [
            {"rating_label": "positive", "predicted": "positive", "n": 8},
            {"rating_label": "negative", "predicted": "positive", "n": 2},
        ]
    )
    assert m["negative"]["positive"] == 2 and m["neutral"]["neutral"] == 0
    assert analytics.agreement(m) == pytest.approx(0.8)
    assert analytics.agreement(analytics.confusion([])) is None


def test_windows_end_at_the_last_prediction() -> None:
    (p0, p1), (l0, l1) = analytics.windows(T0, timedelta(hours=1))
    assert p1 == l0 and l1 - l0 == timedelta(hours=1) and p1 - p0 == timedelta(hours=1)
    assert l0 <= T0 < l1


def test_bucket_and_window_follow_the_data() -> None:
    assert analytics.pick_bucket(timedelta(minutes=20)) == "minute"
    assert analytics.pick_bucket(timedelta(days=1)) == "hour"
    assert analytics.pick_bucket(timedelta(days=30)) == "day"
    assert analytics.pick_bucket(timedelta(days=365)) == "week"
    assert analytics.auto_window(T0, T0 + timedelta(hours=4)) == timedelta(hours=2)
    assert analytics.auto_window(T0, T0) == timedelta(seconds=1)
    assert analytics.auto_window(T0, T0 + timedelta(days=90)) == timedelta(days=7)
