"""Feedback: true labels joined with predictions by review_id, and the rolling error rate."""

from stream_processors.feedback.logic import Outcome, RollingError

__all__ = ["Outcome", "RollingError"]
