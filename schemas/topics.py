"""Kafka topic names of ulasan: constants with a version suffix, and the dead-letter rule."""

from __future__ import annotations

REVIEWS_RAW = "reviews.raw.v1"
REVIEWS_CLEAN = "reviews.clean.v1"
PREDICT_REQUESTS = "predict.requests.v1"
PREDICT_REPLIES = "predict.replies.v1"
SENTIMENT = "sentiment.v1"
FEEDBACK = "feedback.v1"
DRIFT_REPORTS = "drift.reports.v1"
RETRAIN_REQUESTS = "retrain.requests.v1"
MODEL_UPDATES = "model.updates.v1"
#: Internal: shadow (challenger) scores, written to prediction_logs with shadow=true only.
SENTIMENT_SHADOW = "sentiment.shadow.v1"
#: Internal: compact drift observations, one partition, consumed by the drift window agent.
DRIFT_OBSERVATIONS = "drift.observations.v1"

DLQ_SUFFIX = ".dlq"

#: Every topic the design names, in pipeline order.
ALL_TOPICS: tuple[str, ...] = (
    REVIEWS_RAW,
    REVIEWS_CLEAN,
    PREDICT_REQUESTS,
    PREDICT_REPLIES,
    SENTIMENT,
    FEEDBACK,
    DRIFT_REPORTS,
    RETRAIN_REQUESTS,
    MODEL_UPDATES,
)

#: Topics whose consumers route bad records to a dead-letter topic.
DLQ_SOURCES: tuple[str, ...] = (REVIEWS_RAW, REVIEWS_CLEAN, PREDICT_REQUESTS, FEEDBACK)


def dlq(topic: str) -> str:
    """The dead-letter topic of ``topic``: ``<topic>.dlq``."""
    if topic.endswith(DLQ_SUFFIX):
        raise ValueError(f"{topic!r} is already a dead-letter topic")
    return topic + DLQ_SUFFIX


def all_topics_with_dlq() -> tuple[str, ...]:
    """Every topic to create: the design's topics and the dead-letter topics."""
    return ALL_TOPICS + tuple(dlq(t) for t in DLQ_SOURCES)
