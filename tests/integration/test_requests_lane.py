"""The requests lane on the real stack: ``ulasan worker --lane requests`` answers the gateway's
requests while a review backlog drains beside it, and goes on answering with the reviews lane
stopped (a backlog nobody drains), because it shares nothing with it but the broker.

The requests are published to ``predict.requests.v1`` as the gateway publishes them and the
replies read from ``predict.replies.v1`` (the gateway's reply path is unchanged by the lane).
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta

from confluent_kafka import Consumer, TopicPartition

from schemas import topics
from schemas.codec import decode, encode
from schemas.events import PredictionRequested, SentimentScored
from stream_processors.settings import requests_group
from tests.helpers.stream_checks import committed_and_end
from tests.helpers.stream_env import StreamEnv, Worker, wait_until
from tests.integration.stream_fixtures import stream_env_fixture  # noqa: F401 - fixture

#: Reviews in the backlog: several seconds of work for the worker with the tiny model.
BACKLOG = 4000
REPLY_TO = "gw-lane-test"


class Replies:
    """Reads predict.replies.v1 from its current end; the replies by request id."""

    def __init__(self, env: StreamEnv) -> None:
        self.topic = env.topic(topics.PREDICT_REPLIES)
        self.consumer = Consumer(
            {"bootstrap.servers": env.bootstrap, "group.id": f"r-{uuid.uuid4().hex[:8]}"}
        )
        meta = self.consumer.list_topics(self.topic, timeout=10).topics[self.topic]
        ends = []
        for p in meta.partitions:
            _, high = self.consumer.get_watermark_offsets(TopicPartition(self.topic, p), timeout=10)
            ends.append(TopicPartition(self.topic, p, high))
        self.consumer.assign(ends)
        self.seen: dict[str, SentimentScored] = {}

    def poll(self) -> dict[str, SentimentScored]:
        for msg in self.consumer.consume(100, timeout=0.2):
            if msg.error() is None:
                event = decode(msg.value(), SentimentScored)
                assert event.request_id is not None and event.reply_to == REPLY_TO
                self.seen[event.request_id] = event
        return self.seen

    def close(self) -> None:
        self.consumer.close()


def send_request(env: StreamEnv, request_id: str) -> None:
    request = PredictionRequested(
        request_id=request_id,
        texts=["aplikasinya bagus sekali"],
        reply_to=REPLY_TO,
        deadline=datetime.now(UTC) + timedelta(seconds=5),
    )
    env.produce_to(env.topic(topics.PREDICT_REQUESTS), [(request_id.encode(), encode(request))])


def review_lag(env: StreamEnv) -> int:
    """The reviews group's uncommitted records on reviews.raw (never committed: all of them)."""
    offsets = committed_and_end(env.bootstrap, env.app_id, [env.topic(topics.REVIEWS_RAW)])
    return sum(end - max(committed, 0) for committed, end in offsets.values())


def start_lanes(env: StreamEnv) -> tuple[Worker, Worker]:
    reviews = env.start_worker("reviews", ULASAN_WORKER__LANE="reviews")
    lane = env.start_worker("requests", ULASAN_WORKER__LANE="requests")
    env.wait_assigned(reviews)
    env.wait_assigned(lane)  # from here on it sees every new request (it starts at the end)
    return reviews, lane


def test_requests_are_answered_during_a_backlog_and_with_the_reviews_lane_stopped(
    stream_env: StreamEnv,
) -> None:
    env = stream_env
    reviews, lane = start_lanes(env)
    replies = Replies(env)
    try:
        # 1. a backlog drains in the reviews lane; requests sent meanwhile are all answered
        env.produce_reviews(0, BACKLOG)
        sent_during_backlog = []
        for n in range(20):
            if review_lag(env) == 0:
                break
            rid = f"during-{n}"
            send_request(env, rid)
            sent_during_backlog.append(rid)
            time.sleep(0.1)
        assert sent_during_backlog, "the backlog drained before a request was sent"
        print(f"{len(sent_during_backlog)} requests sent while the backlog drained")
        wait_until(
            lambda: set(sent_during_backlog) <= set(replies.poll()),
            30,
            f"replies to the {len(sent_during_backlog)} requests sent during the backlog",
        )
        assert {replies.seen[r].model_version for r in sent_during_backlog} == {"local"}

        # 2. the reviews lane stops: reviews pile up unread, requests are still answered
        assert reviews.stop() == 0, reviews.log()[-3000:]
        env.produce_reviews(BACKLOG, BACKLOG + 200)
        send_request(env, "after-stop")
        wait_until(lambda: "after-stop" in replies.poll(), 30, "the reply after the stop")
        assert review_lag(env) >= 200, "nothing but the stopped reviews lane reads reviews"
        assert lane.alive(), lane.log()[-3000:]
    finally:
        replies.close()
    # the lane's own consumer group: it committed the requests, and never read a review
    lane_group = requests_group(env.app_id)
    requests_topic = env.topic(topics.PREDICT_REQUESTS)
    on_reviews = committed_and_end(env.bootstrap, lane_group, [env.topic(topics.REVIEWS_RAW)])
    assert all(committed < 0 for committed, _ in on_reviews.values()), on_reviews  # none

    def committed_requests() -> int:
        offsets = committed_and_end(env.bootstrap, lane_group, [requests_topic])
        return sum(max(committed, 0) for committed, _ in offsets.values())

    wait_until(
        lambda: committed_requests() >= len(sent_during_backlog) + 1,
        15,
        "the lane's committed offsets on predict.requests.v1",
    )
    metrics = env.metrics(lane)
    assert 'ulasan_stream_events_total{stage="requests"}' in metrics
    assert 'stage="clean"' not in metrics, "the requests lane ran a review agent"
    assert lane.stop() == 0, lane.log()[-3000:]
