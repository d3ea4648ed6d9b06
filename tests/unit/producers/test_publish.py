"""The publish API without a broker: configuration, routing, and clear errors when Kafka is down."""

from __future__ import annotations

import pytest

import producers
from producers.errors import KafkaUnavailable, PublishError
from producers.publish import DEFAULT_CONFIG, EVENT_TOPICS, Publisher
from schemas import topics
from schemas.events import LabelFeedback, ReviewReceived, SentimentScored
from ulasan.core.settings import KafkaSettings, Settings

# nothing listens on port 9 (discard) of the loopback interface
DOWN = Settings(kafka=KafkaSettings(bootstrap_servers="127.0.0.1:9"))
FAST_FAIL = {
    "delivery.timeout.ms": 1500,
    "socket.connection.setup.timeout.ms": 1000,
    "log_level": 2,  # keep the expected "connection refused" lines out of the test output
}


def test_package_exports_the_function_and_the_class():
    assert callable(producers.publish) and producers.publish.__name__ == "publish"
    assert producers.Publisher is Publisher


def test_producer_is_idempotent_and_acks_all():
    assert DEFAULT_CONFIG["enable.idempotence"] is True
    assert DEFAULT_CONFIG["acks"] == "all"
    assert DEFAULT_CONFIG["linger.ms"] > 0
    assert {ReviewReceived: topics.REVIEWS_RAW, LabelFeedback: topics.FEEDBACK} == EVENT_TOPICS


def test_unreachable_kafka_is_a_clear_error():
    pub = Publisher(DOWN, config=FAST_FAIL)
    with pytest.raises(KafkaUnavailable, match=r"127\.0\.0\.1:9.*ulasan stack up"):
        pub.check_connection(timeout_s=1.0)


def test_undelivered_events_fail_the_flush_naming_their_keys():
    pub = Publisher(DOWN, config=FAST_FAIL)
    pub.publish_review(ReviewReceived(review_id="r-1", source="test", text="bagus"))
    pub.publish_feedback(
        LabelFeedback(feedback_id="f-1", review_id="r-1", label="positive", source="human")
    )
    assert pub.queued == 2
    with pytest.raises(PublishError) as err:
        pub.flush(timeout_s=10)
    assert "2 event(s) were not delivered" in str(err.value)
    assert [key for key, _ in err.value.failures] == ["r-1", "r-1"]
    assert pub.delivered == 0


def test_publish_event_routes_by_type_and_refuses_others():
    pub = Publisher(DOWN, config=FAST_FAIL)
    scored = SentimentScored(
        event_id="e",
        review_id="r",
        label="neutral",
        confidence=0.5,
        probabilities={"negative": 0.25, "neutral": 0.5, "positive": 0.25},
        model_name="m",
        model_version="1",
    )
    with pytest.raises(TypeError, match="publish\\(topic, key, event\\)"):
        pub.publish_event(scored)
    assert pub.queued == 0


def test_topic_overrides_redirect_a_topic():
    pub = Publisher(DOWN, config=FAST_FAIL, topic_overrides={topics.REVIEWS_RAW: "bench.raw"})
    assert pub.topic_for(topics.REVIEWS_RAW) == "bench.raw"
    assert pub.topic_for(topics.FEEDBACK) == topics.FEEDBACK
