"""ulasan.loop_watch.Timeline: the closed loop's steps, and the time from trigger to hot reload."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from schemas.events import DriftReport, DriftSignal, ModelPromoted, RetrainRequested
from ulasan.loop_watch import Timeline, duration

T0 = datetime(2026, 12, 5, 9, 0, 0, tzinfo=UTC)
MODEL = "ulasan-sentiment"


def _report(*, drifted: bool) -> DriftReport:
    signals = [
        DriftSignal(name="confidence", test="ks", statistic=0.4, threshold=0.1, drifted=drifted),
        DriftSignal(name="word_count", test="ks", statistic=0.05, threshold=0.1, drifted=False),
    ]
    return DriftReport(
        report_id="r1",
        window_start=T0,
        window_end=T0 + timedelta(seconds=20),
        n_events=812,
        model_version="1",
        signals=signals,
        drift_score=0.5 if drifted else 0.0,
        drifted=drifted,
    )


def _promoted(version: str, *, model: str = MODEL, alias: str = "champion") -> ModelPromoted:
    return ModelPromoted(
        model_name=model,
        version=version,
        alias=alias,
        previous_version="1",
        model_uri=f"models:/{model}/{version}",
    )


def _run(status: str, **extra: object) -> dict[str, object]:
    return {"run_id": "rt-1", "reasons": ["drift", "feedback"], "status": status, **extra}


def test_the_loop_from_drift_to_hot_reload_with_its_time() -> None:
    tl = Timeline(MODEL)
    tl.drift(_report(drifted=False), T0)  # a quiet window does not start the clock
    assert tl.started_at is None
    tl.drift(_report(drifted=True), T0 + timedelta(seconds=30))
    request = RetrainRequested(
        request_id="q1", dedupe_key="d1", reasons=["drift", "feedback"], model_version="1"
    )
    tl.request(request, T0 + timedelta(seconds=31))
    tl.run(_run("running"), T0 + timedelta(seconds=33))
    tl.run(_run("running"), T0 + timedelta(seconds=35))  # no change: no new step
    finished = _run("succeeded", duration_s=200.0, decision="promoted: 0.80 >= 0.71")
    tl.run(finished | {"promoted_version": "2"}, T0 + timedelta(seconds=240))
    tl.promoted(_promoted("2", model="another-model"), T0 + timedelta(seconds=241))
    tl.promoted(_promoted("3", alias="challenger"), T0 + timedelta(seconds=241))
    tl.promoted(_promoted("2"), T0 + timedelta(seconds=242))
    tl.answered("1", T0 + timedelta(seconds=244))  # still the old version: not reloaded yet
    tl.answered("2", T0 + timedelta(seconds=294))

    stages = [e.stage for e in tl.events]
    assert stages == [
        "drift",
        "drift",
        "request",
        "training",
        "gate",
        "promotion",
        "promotion",
        "reload",
        "loop",
    ]
    texts = [e.text for e in tl.events]
    assert "812 events, score 0.50, DRIFTED (confidence)" in texts[1]
    assert texts[2] == "retrain requested of champion version 1: drift, feedback"
    assert texts[4].startswith("run rt-1 succeeded after 3 min 20 s: promoted version 2;")
    assert texts[5] == "version 3 is challenger (was 1)"
    assert texts[7] == "the workers serve version 2"
    assert tl.loop_seconds == 264.0
    assert texts[8].startswith("closed loop complete in 4 min 24 s")
    assert tl.pending_version is None


def test_without_a_drifted_report_the_request_starts_the_clock() -> None:
    tl = Timeline(MODEL)
    tl.request(RetrainRequested(request_id="q", dedupe_key="d", reasons=["data"]), T0)
    tl.run(_run("failed", error="MLflow unreachable"), T0 + timedelta(seconds=5))
    assert [e.stage for e in tl.events] == ["request", "training", "gate"]
    assert tl.events[-1].text == "run rt-1 failed: not promoted; MLflow unreachable"
    tl.promoted(_promoted("4"), T0 + timedelta(seconds=60))
    tl.answered("4", T0 + timedelta(seconds=70))
    assert tl.loop_seconds == 70.0


def test_duration_reads_like_speech() -> None:
    assert duration(38.4) == "38 s"
    assert duration(264) == "4 min 24 s"
