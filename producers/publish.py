"""Publish ulasan events to Kafka from any Python program: an idempotent, batching producer.

>>> from producers import Publisher
>>> with Publisher(settings) as pub:            # flushes and checks deliveries on exit
...     pub.publish_review(ReviewReceived(review_id="r1", source="shop", text="Bagus"))

``producers.publish(events)`` does the same for an iterable in one call.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from producers.errors import KafkaUnavailable, PublishError
from schemas import codec, topics
from schemas.events import Event, LabelFeedback, ReviewReceived
from ulasan.core.settings import Settings

#: Producer settings that make delivery exactly-once per partition within a session, ordered,
#: and batched; callers may override any of them through ``config``.
DEFAULT_CONFIG: dict[str, Any] = {
    "enable.idempotence": True,
    "acks": "all",
    "linger.ms": 20,
    "batch.num.messages": 10_000,
    # no compression: faust's consumer (aiokafka) reads lz4/snappy/zstd only with extra
    # libraries installed, and on one machine compression costs more CPU than it saves
    "compression.type": "none",
    "delivery.timeout.ms": 60_000,
    "queue.buffering.max.messages": 200_000,
}

#: The topic each event type is published to by :meth:`Publisher.publish_event`.
EVENT_TOPICS: dict[type[Event], str] = {
    ReviewReceived: topics.REVIEWS_RAW,
    LabelFeedback: topics.FEEDBACK,
}

DeliveryCallback = Callable[[str | None, str, int, int], None]
"""Called for each delivered event with ``(key, topic, partition, offset)``."""


class Publisher:
    """A confluent-kafka producer for ulasan events; keys are the events' review ids.

    Delivery is asynchronous: :meth:`publish_review` queues, :meth:`flush` waits and raises
    :class:`PublishError` naming every event Kafka did not accept. Leaving the context manager
    flushes. ``on_delivery`` (optional) is told about every event Kafka acknowledged.
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        config: dict[str, Any] | None = None,
        on_delivery: DeliveryCallback | None = None,
        topic_overrides: dict[str, str] | None = None,
    ) -> None:
        self.settings = settings or Settings()
        self._conf: dict[str, Any] = {
            "bootstrap.servers": self.settings.kafka.bootstrap_servers,
            "client.id": f"{self.settings.kafka.client_id}-producer",
            **DEFAULT_CONFIG,
            **(config or {}),
            "error_cb": self._on_error,
        }
        self._producer = Producer(self._conf)
        self._on_delivery_user = on_delivery
        self._topics = topic_overrides or {}
        self._lock = threading.Lock()
        self._failures: list[tuple[str | None, str]] = []
        self._fatal: str | None = None
        self.queued = 0
        self.delivered = 0

    # -- callbacks (run inside poll/flush on this thread) --------------------------------
    def _on_error(self, err: KafkaError) -> None:
        if err.fatal():
            self._fatal = f"{err.name()}: {err.str()}"

    def _on_delivery(self, err: KafkaError | None, msg: Message) -> None:
        raw_key = msg.key()
        key = raw_key.decode("utf-8", "replace") if raw_key is not None else None
        if err is not None:
            with self._lock:
                self._failures.append((key, f"{err.name()}: {err.str()}"))
            return
        with self._lock:
            self.delivered += 1
        if self._on_delivery_user is not None:
            self._on_delivery_user(key, msg.topic() or "", msg.partition() or 0, msg.offset() or 0)

    # -- API -----------------------------------------------------------------------------
    def topic_for(self, topic: str) -> str:
        """The topic actually written for the design's ``topic`` (benchmarks redirect them)."""
        return self._topics.get(topic, topic)

    def check_connection(self, timeout_s: float = 10.0) -> None:
        """Raise :class:`KafkaUnavailable` unless the cluster answers within ``timeout_s``."""
        try:
            self._producer.list_topics(timeout=timeout_s)
        except KafkaException as exc:
            raise KafkaUnavailable(
                f"Kafka is not reachable at {self.settings.kafka.bootstrap_servers} ({exc}): "
                "start the local stack with `ulasan stack up` or set "
                "ULASAN_KAFKA__BOOTSTRAP_SERVERS"
            ) from exc

    def publish(self, topic: str, key: str, event: Event) -> None:
        """Queue ``event`` on ``topic`` with ``key``; serve delivery callbacks that are due."""
        if self._fatal is not None:
            raise PublishError(f"the Kafka producer failed fatally: {self._fatal}")
        value = codec.encode(event)
        target = self.topic_for(topic)
        while True:
            try:
                self._producer.produce(
                    target, value=value, key=key.encode("utf-8"), on_delivery=self._on_delivery
                )
                break
            except BufferError:
                # the local queue is full: let librdkafka send and acknowledge, then retry
                self._producer.poll(0.1)
            except KafkaException as exc:
                raise PublishError(f"Kafka refused the event with key {key!r}: {exc}") from exc
        self.queued += 1
        self._producer.poll(0)

    def publish_event(self, event: Event) -> None:
        """Queue a :class:`ReviewReceived` or :class:`LabelFeedback` on its topic."""
        topic = EVENT_TOPICS.get(type(event))
        if topic is None:
            raise TypeError(
                f"publish_event knows {', '.join(t.__name__ for t in EVENT_TOPICS)}; "
                f"use publish(topic, key, event) for {type(event).__name__}"
            )
        self.publish(topic, event.review_id, event)  # type: ignore[attr-defined]

    def publish_review(self, event: ReviewReceived) -> None:
        """Queue a review on reviews.raw.v1, keyed by its review id."""
        self.publish(topics.REVIEWS_RAW, event.review_id, event)

    def publish_feedback(self, event: LabelFeedback) -> None:
        """Queue a label on feedback.v1, keyed by the review id it labels."""
        self.publish(topics.FEEDBACK, event.review_id, event)

    def poll(self, timeout_s: float = 0.0) -> None:
        """Serve delivery callbacks (progress) without waiting for everything."""
        self._producer.poll(timeout_s)

    def pending(self) -> int:
        """Events queued but not yet acknowledged or failed."""
        return len(self._producer)

    def take_failures(self) -> list[tuple[str | None, str]]:
        """The ``(key, reason)`` of deliveries that failed since the last call, and reset."""
        with self._lock:
            failures, self._failures = self._failures, []
        return failures

    def flush(self, timeout_s: float = 60.0) -> None:
        """Wait until every queued event is acknowledged; raise :class:`PublishError` otherwise."""
        remaining = self._producer.flush(timeout_s)
        failures = self.take_failures()
        if self._fatal is not None:
            raise PublishError(f"the Kafka producer failed fatally: {self._fatal}", failures)
        if failures:
            shown = "; ".join(f"{k}: {r}" for k, r in failures[:5])
            more = f" (+{len(failures) - 5} more)" if len(failures) > 5 else ""
            raise PublishError(
                f"{len(failures)} event(s) were not delivered: {shown}{more}", failures
            )
        if remaining:
            raise KafkaUnavailable(
                f"{remaining} event(s) still unacknowledged after {timeout_s:.0f}s: is Kafka up "
                f"at {self.settings.kafka.bootstrap_servers}? (`ulasan stack status`)"
            )

    def close(self) -> None:
        """Flush; the producer is released by garbage collection (librdkafka has no close)."""
        self.flush()

    def __enter__(self) -> Publisher:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.flush()
        else:
            # an error is already on its way up: still try to deliver what was queued
            self._producer.flush(5.0)


def prefixed_topics(prefix: str) -> dict[str, str]:
    """Topic overrides that put ``prefix`` before every topic of the design (isolated runs)."""
    return {t: prefix + t for t in topics.ALL_TOPICS} if prefix else {}


def publish(
    events: Event | Iterable[Event],
    settings: Settings | None = None,
    *,
    timeout_s: float = 60.0,
) -> int:
    """Publish reviews and/or feedback, wait for Kafka to acknowledge all; return the count.

    Raises :class:`KafkaUnavailable` when Kafka cannot be reached and :class:`PublishError`
    when any event is not delivered.
    """
    batch = [events] if isinstance(events, Event) else list(events)
    pub = Publisher(settings)
    pub.check_connection()
    for event in batch:
        pub.publish_event(event)
    pub.flush(timeout_s)
    return len(batch)
