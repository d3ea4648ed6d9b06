"""Drift detection: windowed accumulators (pure reducers), statistical tests, the drift agent."""

from stream_processors.drift.accumulator import (
    DriftAccumulator,
    FeedbackObservation,
    ScoreObservation,
)
from stream_processors.drift.reference import Reference
from stream_processors.drift.stats import DriftVerdict, holm

__all__ = [
    "DriftAccumulator",
    "DriftVerdict",
    "FeedbackObservation",
    "Reference",
    "ScoreObservation",
    "holm",
]
