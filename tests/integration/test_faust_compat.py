"""faust's real classes on the real broker: what the workers' workarounds assume still holds.

A faust app runs in this process on the workers' transport
(:mod:`stream_processors.kafka.transport`); records go through a real ``Stream`` and its
batching (``take_ready``, ``take_events``), are acked, and faust's commit timer commits them.
The assertion is the group's committed offset, read back from Kafka: it must reach the log end
of every partition (nothing left uncommitted) and never pass a record that was withheld (the
guard's way of keeping a batch for the next owner). A faust upgrade that changes how acks turn
into commits fails here instead of losing records.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import faust
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from stream_processors.kafka import transport
from stream_processors.kafka.guard import withhold
from stream_processors.requests.take import take_ready
from tests.integration.conftest import TopicFactory, unique
from ulasan.core.settings import Settings

pytestmark = pytest.mark.slow

PARTITIONS = 3
PER_PARTITION = 120
TIMEOUT_S = 90.0


def produce(bootstrap: str, topic: str, partitions: int, per_partition: int) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all"})
    for p in range(partitions):
        for i in range(per_partition):
            producer.produce(topic, key=f"k{i}".encode(), value=f"{p}:{i}".encode(), partition=p)
    assert producer.flush(30) == 0


def committed(bootstrap: str, group: str, topic: str, partitions: int) -> dict[int, int]:
    """The group's committed offset per partition, as Kafka has it (-1001: none)."""
    reader = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        return {tp.partition: tp.offset for tp in reader.committed(tps, timeout=10)}
    finally:
        reader.close()


def make_app(app_id: str, bootstrap: str, datadir: Path) -> faust.App:
    """An app configured like the workers' (see ``stream_processors.app.create_app``); its
    data folder under ``datadir`` (faust's default is ``<app id>-data`` in the working
    directory, which would litter the repository)."""
    app = faust.App(
        app_id,
        broker=f"kafka://{bootstrap}",
        datadir=str(datadir / "faust-data"),
        store="memory://",
        web_enabled=False,
        autodiscover=False,
        topic_replication_factor=1,
        broker_commit_interval=0.5,
        broker_session_timeout=6.0,
        broker_heartbeat_interval=1.0,
        consumer_auto_offset_reset="earliest",
        stream_wait_empty=False,
        key_serializer="raw",
        value_serializer="raw",
    )
    transport.install(app, transport.RecoveryWatch(after_s=20.0))
    return app


async def run_until(app: faust.App, done: Callable[[], Any], what: str) -> None:
    """Start ``app``, wait for ``done()`` (polled in a thread: it may block), stop ``app``."""
    await app.start()
    try:
        deadline = time.monotonic() + TIMEOUT_S
        last: Any = None
        while time.monotonic() < deadline:
            last = await asyncio.to_thread(done)
            if last is True:
                return
            await asyncio.sleep(0.5)
        raise AssertionError(f"timed out waiting for {what} (last: {last!r})")
    finally:
        await app.stop()


def seen_all(seen: Iterable[tuple[int, int]], partitions: int, per_partition: int) -> None:
    expected = {(p, o) for p in range(partitions) for o in range(per_partition)}
    assert set(seen) == expected


@pytest.fixture
def source(kafka_topics: TopicFactory, settings: Settings) -> tuple[str, str]:
    """A fresh topic with records in every partition, and a fresh app id (consumer group)."""
    topic = kafka_topics.new(partitions=PARTITIONS, prefix="faust-compat")
    app_id = unique("ulasan-faust-compat")
    kafka_topics.delete_later(app_id)  # faust's own topics, if any
    produce(settings.kafka.bootstrap_servers, topic, PARTITIONS, PER_PARTITION)
    return topic, app_id


def test_take_ready_acks_reach_the_log_end_in_the_groups_commits(
    source: tuple[str, str], settings: Settings, tmp_path: Path
) -> None:
    topic, app_id = source
    bootstrap = settings.kafka.bootstrap_servers
    seen: list[tuple[int, int]] = []
    sizes: list[int] = []

    async def main() -> None:
        app = make_app(app_id, bootstrap, tmp_path)

        @app.agent(app.topic(topic, key_type=bytes, value_type=bytes))  # type: ignore[untyped-decorator]
        async def consume(stream: Any) -> None:
            async for batch in take_ready(stream, 50):
                sizes.append(len(batch))
                seen.extend((e.message.partition, e.message.offset) for e in batch)

        want = dict.fromkeys(range(PARTITIONS), PER_PARTITION)
        await run_until(
            app,
            lambda: committed(bootstrap, app_id, topic, PARTITIONS) == want or False,
            f"committed offsets {want}",
        )

    asyncio.run(main())
    seen_all(seen, PARTITIONS, PER_PARTITION)
    assert max(sizes) <= 50
    assert committed(bootstrap, app_id, topic, PARTITIONS) == dict.fromkeys(
        range(PARTITIONS), PER_PARTITION
    )


def test_withheld_events_are_never_committed_while_the_rest_is(
    source: tuple[str, str], settings: Settings, tmp_path: Path
) -> None:
    """Partition 0 from offset 40 is withheld (as the guard does with a cancelled batch): the
    group's commit for it must stop at exactly 40 while the other partitions reach their end,
    although faust's ``take_events`` acks every batch on its way out."""
    topic, app_id = source
    bootstrap = settings.kafka.bootstrap_servers
    first_withheld = 40
    seen: list[tuple[int, int]] = []
    want = {0: first_withheld, **{p: PER_PARTITION for p in range(1, PARTITIONS)}}

    async def main() -> None:
        app = make_app(app_id, bootstrap, tmp_path)

        @app.agent(app.topic(topic, key_type=bytes, value_type=bytes))  # type: ignore[untyped-decorator]
        async def consume(stream: Any) -> None:
            async for events in stream.take_events(25, 0.2):
                seen.extend((e.message.partition, e.message.offset) for e in events)
                withhold(
                    [
                        e
                        for e in events
                        if e.message.partition == 0 and e.message.offset >= first_withheld
                    ]
                )

        def settled() -> bool | dict[int, int]:
            now = committed(bootstrap, app_id, topic, PARTITIONS)
            if now != want or len(seen) < PARTITIONS * PER_PARTITION:
                return now
            time.sleep(2.0)  # four more commit intervals: it must not move past the hole
            return committed(bootstrap, app_id, topic, PARTITIONS) == want or now

        await run_until(app, settled, f"committed offsets {want}")

    asyncio.run(main())
    seen_all(seen, PARTITIONS, PER_PARTITION)
    assert committed(bootstrap, app_id, topic, PARTITIONS) == want
