"""The workers' consumer refuses acks that could commit a record skipped during a rebalance.

Everything runs on faust's real classes (an app, its consumer, messages and recovery), with
only the calls that would reach the broker replaced.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from faust.transport import consumer as base
from faust.types.tuples import TP

from stream_processors.app import create_app
from stream_processors.inference.batching import PredictorHolder
from stream_processors.kafka import compat
from stream_processors.kafka.stall import _seek_stalled
from stream_processors.kafka.transport import (
    Consumer,
    RecoveryStalled,
    RecoveryWatch,
    SeekState,
    StallWatch,
    Transport,
    ack_is_safe,
    unstick_recovery,
)
from stream_processors.metrics import WorkerMetrics
from stream_processors.settings import WorkerConfig, WorkerSettings
from stream_processors.wiring import Deps
from tests.helpers import faust_objects


@pytest.mark.parametrize(
    ("flow_active", "message_generation", "consumer_generation", "sought", "safe"),
    [
        (True, 3, 3, 3, True),  # normal operation
        (False, 3, 3, 3, False),  # a rebalance or shutdown suspended the flow: faust skips
        (True, 2, 3, 3, False),  # fetched before the last rebalance: read again from the commit
        (True, 3, 3, None, False),  # assigned, not yet sought to the committed offsets
        (True, 3, 3, 2, False),  # the seek done is the previous generation's
        (False, 2, 3, None, False),
    ],
)
def test_ack_is_safe(
    flow_active: bool,
    message_generation: int,
    consumer_generation: int,
    sought: int | None,
    safe: bool,
) -> None:
    assert (
        ack_is_safe(
            flow_active=flow_active,
            message_generation=message_generation,
            consumer_generation=consumer_generation,
            sought_generation=sought,
        )
        is safe
    )


def test_a_refused_ack_marks_the_record_done_but_never_committable() -> None:
    app = faust_objects.app()
    consumer = faust_objects.consumer(app)
    app.consumer_generation_id = 3
    consumer.sought_generation = 3
    tp = TP("t.reviews.raw.v1", 0)

    def refused(msg: Any) -> None:
        consumer.track_message(msg)  # delivered: in flight
        assert consumer.ack(msg) is False
        # done for faust's waits, never recorded as acked: nothing to commit
        assert msg.acked and compat.in_flight(consumer) == {}
        assert compat.acked_offsets(consumer, tp) == []

    refused(stale := faust_objects.message(tp, 10, generation_id=2))  # an older generation
    app.flow_control.suspend()  # a rebalance or shutdown suspended the flow: faust skips
    refused(skipped := faust_objects.message(tp, 11, generation_id=3))
    app.flow_control.resume()
    consumer.sought_generation = None  # assigned, not yet sought to the committed offsets
    refused(early := faust_objects.message(tp, 12, generation_id=3))
    # the ack faust sends for them later (take_events' closing ack) is a no-op too
    assert not any(base.Consumer.ack(consumer, m) for m in (stale, skipped, early))
    assert compat.acked_offsets(consumer, tp) == []


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_stall_watch_fires_after_a_quiet_period_below_the_end_and_then_waits_again() -> None:
    clock = Clock()
    watch = StallWatch(after_s=20, clock=clock)
    assert not watch.stalled("p3", committed=243, end=341, idle=True)  # first sight
    clock.now = 19
    assert not watch.stalled("p3", committed=243, end=341, idle=True)
    clock.now = 20
    assert watch.stalled("p3", committed=243, end=341, idle=True)
    clock.now = 30  # the seek gets a full period before another
    assert not watch.stalled("p3", committed=243, end=341, idle=True)
    clock.now = 40
    assert watch.stalled("p3", committed=243, end=341, idle=True)


def test_stall_watch_restarts_on_progress_work_in_flight_or_caught_up() -> None:
    clock = Clock()
    watch = StallWatch(after_s=20, clock=clock)
    watch.stalled("p", committed=10, end=50, idle=True)
    clock.now = 15
    assert not watch.stalled("p", committed=12, end=50, idle=True)  # progress: start over
    clock.now = 30
    assert not watch.stalled("p", committed=12, end=50, idle=True)
    assert not watch.stalled("p", committed=12, end=50, idle=False)  # busy: start over
    clock.now = 45
    assert not watch.stalled("p", committed=12, end=50, idle=True)
    clock.now = 70
    assert not watch.stalled("p", committed=50, end=50, idle=True)  # caught up
    assert not watch.stalled("p", committed=None, end=50, idle=True)  # nothing committed yet
    watch.stalled("q", committed=1, end=5, idle=True)
    watch.forget({"p"})
    assert set(watch._since) == set()


def test_workers_consume_through_the_safe_transport() -> None:
    app = create_app(WorkerSettings(worker=WorkerConfig()), _deps())
    assert isinstance(app.transport, Transport)
    assert app.transport.Consumer is Consumer


def _deps() -> Any:
    class NoSink:
        async def write(self, batch: Any) -> set[int]:
            raise AssertionError("not used")

    settings = WorkerSettings(worker=WorkerConfig())
    return Deps(settings, WorkerMetrics(), PredictorHolder(None), NoSink())


def test_getmany_delivers_each_partition_contiguously_and_seeks_back_over_a_hole(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    raw = TP("t.reviews.raw.v1", 0)
    fetched = [(raw, faust_objects.message(raw, o)) for o in [10, 11, 15, 16, 12, 12]]

    async def parent_getmany(self: Any, timeout: float) -> Any:
        for item in fetched:
            yield item

    monkeypatch.setattr(base.Consumer, "getmany", parent_getmany)
    consumer = faust_objects.consumer(faust_objects.app())
    consumer.seek_state = SeekState(expected={raw: 10})
    seeks: list[tuple[TP, int]] = []

    async def seek_wait(offsets: dict[TP, int]) -> None:
        seeks.extend(offsets.items())

    monkeypatch.setattr(consumer, "seek_wait", seek_wait)

    async def collect() -> list[int]:
        return [m.offset async for _, m in consumer.getmany(1.0)]

    # 15 and 16 skip 12-14: dropped, one seek back to 12; the refetched 12 passes, and a
    # re-delivery below the expected offset passes too (duplicates, never holes)
    assert asyncio.run(collect()) == [10, 11, 12, 12]
    assert seeks == [(raw, 12)]


def test_recovery_watch_seeks_a_changelog_partition_that_gets_no_records() -> None:
    clock = Clock()
    watch = RecoveryWatch(after_s=20, clock=clock)
    remaining = {"drift-changelog/0": 10, "other-changelog/0": 0}
    clock.now = 100
    assert watch.stuck(remaining=remaining, last_event={}, started_at=90) == []
    clock.now = 110  # 20 s since recovery started and nothing arrived: seek it again
    assert watch.stuck(remaining=remaining, last_event={}, started_at=90) == ["drift-changelog/0"]
    clock.now = 125  # a full period before the next seek
    assert watch.stuck(remaining=remaining, last_event={}, started_at=90) == []
    clock.now = 130
    assert watch.stuck(remaining=remaining, last_event={}, started_at=90) == ["drift-changelog/0"]
    # records arriving hold it off; a partition with nothing left is never sought
    clock.now = 160
    assert (
        watch.stuck(remaining=remaining, last_event={"drift-changelog/0": 150}, started_at=90) == []
    )
    # seeks that bring nothing: after max_attempts (3) in a row the worker gives up loudly
    clock.now = 180
    assert watch.stuck(remaining=remaining, last_event={"drift-changelog/0": 150}, started_at=90)
    clock.now = 200
    assert watch.stuck(remaining=remaining, last_event={"drift-changelog/0": 150}, started_at=90)
    clock.now = 220
    assert watch.stuck(remaining=remaining, last_event={"drift-changelog/0": 150}, started_at=90)
    clock.now = 240
    with pytest.raises(RecoveryStalled, match="no record after 3 seeks"):
        watch.stuck(remaining=remaining, last_event={"drift-changelog/0": 150}, started_at=90)
    # a new recovery starts the count again
    assert watch.stuck(remaining=remaining, last_event={}, started_at=200) == ["drift-changelog/0"]
    # recovery over: everything forgotten
    assert watch.stuck(remaining=remaining, last_event={}, started_at=None) == []
    assert watch._nudged == {}


def test_unstick_recovery_seeks_to_the_last_applied_offset_and_resumes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app = faust_objects.app(tables=("drift", "x"))
    consumer = faust_objects.consumer(app)
    fresh, resumed = TP(f"{app.conf.id}-drift-changelog", 0), TP(f"{app.conf.id}-x-changelog", 1)
    recovery = app.tables.recovery
    calls: list[Any] = []

    async def position(tp: TP) -> int:
        return 10

    async def seek_wait(offsets: dict[TP, int]) -> None:
        calls.append(dict(offsets))

    monkeypatch.setattr(consumer, "position", position)
    monkeypatch.setattr(consumer, "seek_wait", seek_wait)
    watch = RecoveryWatch(after_s=20, clock=lambda: time.monotonic() + 30)

    async def scenario() -> list[Any]:
        recovery._set_recovery_started()  # faust's own start of a recovery
        recovery.active_offsets.update({fresh: -1, resumed: 4})
        recovery.active_highwaters.update({fresh: 10, resumed: 9})
        consumer.pause_partitions({fresh, resumed})
        app.flow_control.suspend()
        consumer.stop_flow()
        return await unstick_recovery(app, watch)

    assert set(asyncio.run(scenario())) == {fresh, resumed}
    # -1 (nothing applied) reads from the start; otherwise the last applied record is re-read
    # (faust skips it) so nothing after it can be missed
    assert calls == [{fresh: 0, resumed: 4}]
    assert compat.fetch_state(consumer, fresh)[1:] == (False, True)  # resumed: active again
    assert consumer.flow_active and app.flow_control.is_active()
    # not in recovery: nothing happens
    recovery._set_recovery_ended()
    assert asyncio.run(unstick_recovery(app, watch)) == []
    assert len(calls) == 1


def test_the_consumer_runs_the_recovery_watch_installed_with_the_app() -> None:
    app = create_app(WorkerSettings(worker=WorkerConfig(recovery_stall_s=7)), _deps())
    watch = app.transport.recovery_watch
    assert isinstance(watch, RecoveryWatch) and watch.after_s == 7
    assert "_watch_recovery" in Consumer._tasks[f"{Consumer.__module__}.Consumer"]


def test_a_gap_in_a_stream_partition_is_never_counted_as_done() -> None:
    app = faust_objects.app(tables=("drift",))
    consumer = faust_objects.consumer(app)
    changelog_topic = f"{app.conf.id}-drift-changelog"
    consumer.seek_state = SeekState(changelogs=frozenset({changelog_topic}))
    committed = compat.committed_offsets(consumer)
    raw, changelog = TP("t.reviews.raw.v1", 2), TP(changelog_topic, 0)
    for tp in (raw, changelog):
        committed[tp] = 40
        compat.acked_offsets(consumer, tp).extend([40, 41, 44])
    asyncio.run(consumer._add_gap(raw, 42, 43))
    asyncio.run(consumer._add_gap(changelog, 42, 43))  # faust's gap handling for compaction
    # the stream partition's commit stops before the records that were not delivered; faust
    # counts the changelog's gap as done
    assert consumer._new_offset(raw) == 42
    assert consumer._new_offset(changelog) == 45
    # faust alone would commit 44 here, past record 41 (the next one to read, never acked)
    acked = compat.acked_offsets(consumer, raw)
    acked[:] = [42, 43]
    committed[raw] = 41
    assert consumer._new_offset(raw) is None
    acked[:] = [41, 42, 43]
    assert consumer._new_offset(raw) == 44


def _app_recording_seeks(
    monkeypatch: pytest.MonkeyPatch,
) -> tuple[Any, Consumer, list[tuple[TP, int]]]:
    """An app whose consumer records the seeks the stall watch asks for instead of seeking."""
    app = faust_objects.app()
    consumer = faust_objects.consumer(app)
    seeks: list[tuple[TP, int]] = []

    async def seek_wait(offsets: dict[TP, int]) -> None:
        seeks.extend(offsets.items())

    monkeypatch.setattr(consumer, "seek_wait", seek_wait)
    return app, consumer, seeks


def test_the_stall_watch_seeks_back_when_the_committed_record_is_not_in_flight(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app, consumer, seeks = _app_recording_seeks(monkeypatch)
    held, hole = TP("t.reviews.clean.v1", 1), TP("t.reviews.clean.v1", 2)
    compat.committed_offsets(consumer).update({held: 10, hole: 41})
    # held: its committed record is being processed; hole: later records are, 41 is not
    flying = [faust_objects.message(held, 10)] + [faust_objects.message(hole, o) for o in (45, 46)]
    for m in flying:
        consumer.track_message(m)
    clock = Clock()
    watch = StallWatch(after_s=20, clock=clock)
    metrics = WorkerMetrics()
    ends = {held: 50, hole: 351}
    asyncio.run(_seek_stalled(app, metrics, watch, {held, hole}, ends))
    clock.now = 25
    asyncio.run(_seek_stalled(app, metrics, watch, {held, hole}, ends))
    assert seeks == [(hole, 41)]


def test_records_waiting_in_a_channel_buffer_are_not_a_stall(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The infer agent holds a batch while PostgreSQL is away; the records behind it wait in the
    # topic channel's buffer, which faust does not count as in flight. Seeking such a partition
    # back delivered its backlog again every stall period (CI: up to 658 of 1,500 scores
    # published twice after the outage).
    app, consumer, seeks = _app_recording_seeks(monkeypatch)
    waiting, hole = TP("t.reviews.clean.v1", 1), TP("t.reviews.clean.v1", 2)
    channel = app.topic("t.reviews.clean.v1", value_serializer="raw")
    app.topics.add(channel)
    compat.committed_offsets(consumer).update({waiting: 10, hole: 41})
    clock = Clock()
    watch = StallWatch(after_s=20, clock=clock)
    metrics = WorkerMetrics()
    ends = {waiting: 50, hole: 351}

    async def scenario() -> dict[TP, set[int]]:
        await app.topics.on_partitions_assigned({waiting, hole})
        app.flow_control.resume()
        for offset in range(10, 14):  # delivered by the conductor, read by no stream yet
            await app.topics.on_message(faust_objects.message(waiting, offset))
        await app.topics.on_message(faust_objects.message(hole, 45))
        await _seek_stalled(app, metrics, watch, {waiting, hole}, ends)
        clock.now = 25
        await _seek_stalled(app, metrics, watch, {waiting, hole}, ends)
        return compat.queued(app)

    queued = asyncio.run(scenario())
    assert queued == {waiting: {10, 11, 12, 13}, hole: {45}}
    assert compat.in_flight(consumer) == {}  # faust's own in-flight set does not see them
    assert seeks == [(hole, 41)]  # 41 was never delivered: that one is a stall


def test_perform_seek_drops_stream_records_meanwhile_and_starts_never_committed_ones_over(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app = faust_objects.app(tables=("drift",))
    app.consumer_generation_id = 4
    consumer = faust_objects.consumer(app)
    raw, fresh = TP("t.raw", 0), TP("t.raw", 1)
    changelog = TP(f"{app.conf.id}-drift-changelog", 0)
    delivered: list[tuple[TP, int]] = []
    # records a fetch returns while the seek runs: the stream ones must not reach faust
    during = [(tp, faust_objects.message(tp, o, generation_id=4)) for tp, o in
              [(raw, 59), (fresh, 7), (changelog, 3)]]  # fmt: skip

    async def parent_getmany(self: Any, timeout: float) -> Any:
        for item in during:
            yield item

    async def parent_perform_seek(self: Any) -> None:
        compat.committed_offsets(self)[raw] = 29  # faust: seek_to_committed; fresh has none
        async for tp, m in consumer.getmany(1.0):
            delivered.append((tp, m.offset))

    monkeypatch.setattr(base.Consumer, "getmany", parent_getmany)
    monkeypatch.setattr(base.Consumer, "perform_seek", parent_perform_seek)
    monkeypatch.setattr(consumer, "assignment", lambda: {raw, fresh, changelog})
    consumer.seek_state = SeekState(changelogs=frozenset({changelog.topic}))
    seeks: list[dict[TP, int]] = []

    async def earliest_offsets(*tps: TP) -> dict[TP, int]:
        return {tp: 0 for tp in tps}

    async def seek_wait(offsets: dict[TP, int]) -> None:
        seeks.append(dict(offsets))

    monkeypatch.setattr(consumer, "earliest_offsets", earliest_offsets)
    monkeypatch.setattr(consumer, "seek_wait", seek_wait)
    asyncio.run(consumer.perform_seek())
    assert delivered == [(changelog, 3)]
    # never committed: from the start, not from where it stood; then the partitions whose
    # records were dropped meanwhile go back to where the seek put them
    assert seeks == [{fresh: 0}, {raw: 29, fresh: 0}]
    assert consumer.seek_state.expected == {raw: 29, fresh: 0}
    assert consumer.sought_generation == 4
