"""Kafka of the local stack: ulasan's topics exist; a consumer group resumes after its commit."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from schemas.topics import all_topics_with_dlq
from ulasan.core.kafka_admin import ensure_topics
from ulasan.core.settings import Settings


def produce(bootstrap: str, topic: str, values: list[str]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
    errors: list[str] = []
    for value in values:
        producer.produce(
            topic,
            key=value.encode(),
            value=value.encode(),
            on_delivery=lambda err, _msg: errors.append(err.str()) if err else None,
        )
    assert producer.flush(30) == 0
    assert errors == []


def consume(consumer: Consumer, expected: int, timeout_s: float = 60.0) -> list[str]:
    """Poll until ``expected`` records came (or the timeout); return their values in order."""
    values: list[str] = []
    deadline = time.monotonic() + timeout_s
    while len(values) < expected and time.monotonic() < deadline:
        msg = consumer.poll(0.5)
        if msg is None:
            continue
        assert msg.error() is None, msg.error()
        values.append(msg.value().decode())
    return values


def drain(consumer: Consumer, quiet_polls: int = 6) -> list[str]:
    """Whatever else arrives until ``quiet_polls`` polls in a row bring nothing."""
    extra: list[str] = []
    empty = 0
    while empty < quiet_polls:
        msg = consumer.poll(0.5)
        if msg is None:
            empty += 1
            continue
        empty = 0
        extra.append(msg.value().decode())
    return extra


def group_consumer(bootstrap: str, group: str) -> Consumer:
    return Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )


def test_every_ulasan_topic_exists_with_the_configured_partitions(settings: Settings) -> None:

    meta = AdminClient({"bootstrap.servers": settings.kafka.bootstrap_servers}).list_topics(
        timeout=10
    )
    for topic in all_topics_with_dlq():
        assert topic in meta.topics, f"{topic} is missing: `ulasan stack topics` creates it"
        assert len(meta.topics[topic].partitions) == settings.kafka.partitions


def test_group_resumes_after_committed_offset(
    settings: Settings, kafka_topics: Any, unique_name: Callable[[str], str]
) -> None:
    bootstrap = settings.kafka.bootstrap_servers
    topic = kafka_topics.new(partitions=3)
    group = unique_name("it-group")
    first = [f"first-{i}" for i in range(30)]
    second = [f"second-{i}" for i in range(20)]

    produce(bootstrap, topic, first)
    consumer = group_consumer(bootstrap, group)
    consumer.subscribe([topic])
    got = consume(consumer, len(first))
    assert sorted(got) == sorted(first)
    committed = consumer.commit(asynchronous=False)
    assert committed is not None and sum(tp.offset for tp in committed) == len(first)
    consumer.close()

    produce(bootstrap, topic, second)
    resumed = group_consumer(bootstrap, group)
    resumed.subscribe([topic])
    got = consume(resumed, len(second))
    got += drain(resumed)
    # exactly the records after the commit: nothing re-read, nothing lost, no duplicates
    assert sorted(got) == sorted(second)
    resumed.commit(asynchronous=False)
    parts = [TopicPartition(topic, p) for p in range(3)]
    offsets = resumed.committed(parts, timeout=10)
    resumed.close()
    assert sum(tp.offset for tp in offsets) == len(first) + len(second)


def test_fresh_topics_report_their_partitions(
    settings: Settings, kafka_topics: Any, unique_name: Callable[[str], str]
) -> None:
    """Right after a creation the broker may list a topic with no partitions; no false note."""

    bootstrap = settings.kafka.bootstrap_servers
    names = [unique_name("test.fresh") for _ in range(5)]
    kafka_topics.created.extend(names)  # deleted afterwards
    results = ensure_topics(bootstrap, names, 4, 1)
    assert [(r.topic, r.action, r.partitions, r.note) for r in results] == [
        (name, "created", 4, "") for name in names
    ]
    again = ensure_topics(bootstrap, names, 4, 1)
    assert {r.action for r in again} == {"exists"} and {r.note for r in again} == {""}
