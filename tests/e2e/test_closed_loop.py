"""The closed loop, fast: tiny SmSA champion, PRDECT-ID stream, drift, retrain, promote, reload."""

from __future__ import annotations

from ulasan.scenario import ScenarioConfig, run
from ulasan.settings import PROJECT_ROOT, Settings


def test_domain_shift_loop_completes_and_the_promoted_version_serves() -> None:
    cfg = ScenarioConfig(
        train_config=PROJECT_ROOT / "configs" / "tiny.yaml",
        reviews=400,
        window_s=4.0,
        min_events=40,
        gate_tolerance=1.0,  # the tiny model is plumbing, not quality: the gate must let it pass
        timeout_s=600.0,
    )
    result = run(Settings(), cfg)
    assert result["promoted_version"] != result["champion_version"]
    assert int(result["promoted_version"]) > int(result["champion_version"])
    assert result["drift_reports"] >= 1
    assert result["retrain_run"]["status"] == "done"
    # later events were scored by the promoted version (the worker hot-reloaded it)
    assert result["served_by_promoted"] > 0
    assert result["loop_seconds"] is not None and result["loop_seconds"] > 0
    assert 0.0 <= result["macro_f1_before"] <= 1.0 and 0.0 <= result["macro_f1_after"] <= 1.0
