"""Settings of drift detection (``ULASAN_DRIFT__*``): windows, samples, test level, verdicts."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class DriftConfig(BaseModel):
    """How windows are cut and judged; defaults follow the design (1 h windows, p < 0.05)."""

    enabled: bool = Field(True, description="run the drift and trigger agents in this worker")
    window_s: float = Field(3600.0, ge=1.0, description="tumbling window length (seconds)")
    grace_s: float = Field(
        5.0, ge=0.0, description="a window closes this long after its end (late events still count)"
    )
    tick_s: float | None = Field(
        None, gt=0, description="how often closed windows are looked for; None = window_s/4, <= 10"
    )
    min_events: int = Field(200, ge=1, description="scored events a window needs for a verdict")
    sample_size: int = Field(500, ge=10, le=100_000, description="reservoir size per feature")
    alpha: float = Field(0.05, gt=0, lt=1, description="family-wise level of each window's tests")
    correction: Literal["holm", "bonferroni"] = "holm"
    score_threshold: float = Field(
        0.3, ge=0, le=1, description="a window with a larger share of drifted signals is drifted"
    )
    min_feedback: int = Field(30, ge=1, description="labelled predictions for the accuracy test")
    unk_min_ratio: float = Field(
        1.5, ge=1.0, description="unknown-token rate must also be >= this times the reference"
    )
    unk_min_delta: float = Field(0.005, ge=0.0, description="... and this much above it")
    trend_days: float = Field(30.0, gt=0, description="accuracy trend look-back (days)")
    trend_max_points: int = Field(1000, ge=3, description="window accuracies kept for the trend")
    error_window: int = Field(500, ge=10, description="feedback outcomes in the rolling error")
    feedback_reconcile_s: float = Field(
        5.0, gt=0, description="how often feedback that arrived before its prediction is re-joined"
    )
    seed: int = 0

    @property
    def effective_tick_s(self) -> float:
        return self.tick_s if self.tick_s is not None else min(self.window_s / 4.0, 10.0)
