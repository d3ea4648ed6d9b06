"""The workers' consumer refuses acks that could commit a record skipped during a rebalance."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from stream_processors.app import create_app
from stream_processors.settings import WorkerConfig, WorkerSettings
from stream_processors.transport import (
    Consumer,
    RecoveryStalled,
    RecoveryWatch,
    StallWatch,
    Transport,
    ack_is_safe,
    unstick_recovery,
)


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


@dataclass
class Flow:
    active: bool

    def is_active(self) -> bool:
        return self.active


@dataclass
class App:
    flow_control: Flow
    consumer_generation_id: int = 3


@dataclass(eq=False)
class Message:
    generation_id: int
    acked: bool = False


@dataclass
class FakeConsumer:
    app: App
    _unacked_messages: set[Any] = field(default_factory=set)
    sought_generation: int | None = 3


def test_a_refused_ack_marks_the_record_done_but_never_committable() -> None:
    stale = Message(generation_id=2)
    consumer = FakeConsumer(App(Flow(active=True)))
    consumer._unacked_messages.add(stale)
    # refused before faust's bookkeeping is reached: no acked list, no offset recorded
    assert Consumer.ack(consumer, stale) is False  # type: ignore[arg-type]
    assert stale.acked and consumer._unacked_messages == set()

    skipped = Message(generation_id=3)
    suspended = FakeConsumer(App(Flow(active=False)))
    suspended._unacked_messages.add(skipped)
    assert Consumer.ack(suspended, skipped) is False  # type: ignore[arg-type]
    assert skipped.acked and suspended._unacked_messages == set()

    early = Message(generation_id=3)
    unsought = FakeConsumer(App(Flow(active=True)), sought_generation=None)
    assert Consumer.ack(unsought, early) is False  # type: ignore[arg-type]
    assert early.acked


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
    from stream_processors.inference.batching import PredictorHolder
    from stream_processors.metrics import WorkerMetrics
    from stream_processors.wiring import Deps

    class NoSink:
        async def write(self, batch: Any) -> set[int]:
            raise AssertionError("not used")

    settings = WorkerSettings(worker=WorkerConfig())
    return Deps(settings, WorkerMetrics(), PredictorHolder(None), NoSink())


@dataclass(frozen=True)
class TP:
    topic: str
    partition: int


def test_getmany_delivers_each_partition_contiguously_and_seeks_back_over_a_hole(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import asyncio

    import faust.transport.consumer as base

    raw = TP("t.reviews.raw.v1", 0)
    fetched = [(raw, Message(generation_id=1)) for _ in range(6)]
    for (_, m), offset in zip(fetched, [10, 11, 15, 16, 12, 12], strict=True):
        m.offset = offset  # type: ignore[attr-defined]

    async def parent_getmany(self: Any, timeout: float) -> Any:
        for item in fetched:
            yield item

    monkeypatch.setattr(base.Consumer, "getmany", parent_getmany)
    consumer = object.__new__(Consumer)
    consumer._expected = {raw: 10}  # type: ignore[attr-defined]
    consumer._rewinds = {}  # type: ignore[attr-defined]
    consumer._changelogs = frozenset()  # type: ignore[attr-defined]
    seeks: list[tuple[TP, int]] = []

    async def seek_wait(offsets: dict[TP, int]) -> None:
        seeks.extend(offsets.items())

    consumer.seek_wait = seek_wait  # type: ignore[method-assign]

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


@dataclass
class FakeRecovery:
    in_recovery: bool
    active_offsets: dict[Any, int | None]
    active_highwaters: dict[Any, int]
    _recovery_started_at: float | None
    _active_events_received_at: dict[Any, float] = field(default_factory=dict)

    def active_remaining(self) -> dict[Any, int]:
        return {
            tp: hw - (self.active_offsets.get(tp) or -1)
            for tp, hw in self.active_highwaters.items()
        }


@dataclass
class RecoveringConsumer:
    calls: list[Any] = field(default_factory=list)
    _read_offset: dict[Any, int] = field(default_factory=dict)
    _paused_partitions: set[Any] = field(default_factory=set)
    _active_partitions: set[Any] = field(default_factory=set)
    flow_active: bool = True

    async def position(self, tp: Any) -> int:
        return 10

    async def seek_wait(self, offsets: dict[Any, int]) -> None:
        self.calls.append(("seek_wait", dict(offsets)))

    def resume_partitions(self, tps: Any) -> None:
        self.calls.append(("resume_partitions", list(tps)))

    def resume_flow(self) -> None:
        self.calls.append(("resume_flow",))


def test_unstick_recovery_seeks_to_the_last_applied_offset_and_resumes() -> None:
    import asyncio
    from types import SimpleNamespace

    clock = Clock()
    clock.now = 50
    fresh, resumed = TP("drift-changelog", 0), TP("x-changelog", 1)
    recovery = FakeRecovery(
        in_recovery=True,
        active_offsets={fresh: -1, resumed: 4},
        active_highwaters={fresh: 10, resumed: 9},
        _recovery_started_at=10,
    )
    consumer = RecoveringConsumer()
    resumed_flow: list[bool] = []
    app = SimpleNamespace(
        tables=SimpleNamespace(recovery=recovery, changelog_queue=asyncio.Queue()),
        consumer=consumer,
        flow_control=SimpleNamespace(
            resume=lambda: resumed_flow.append(True), is_active=lambda: True
        ),
    )
    watch = RecoveryWatch(after_s=20, clock=clock)
    stuck = asyncio.run(unstick_recovery(app, watch))
    assert set(stuck) == {fresh, resumed}
    # -1 (nothing applied) reads from the start; otherwise the last applied record is re-read
    # (faust skips it) so nothing after it can be missed
    assert consumer.calls[0] == ("seek_wait", {fresh: 0, resumed: 4})
    assert set(consumer.calls[1][1]) == {fresh, resumed}
    assert consumer.calls[2] == ("resume_flow",)
    assert resumed_flow == [True]
    # not in recovery: nothing happens
    recovery.in_recovery = False
    assert asyncio.run(unstick_recovery(app, watch)) == []
    assert len(consumer.calls) == 3


def test_the_consumer_runs_the_recovery_watch_installed_with_the_app() -> None:
    app = create_app(WorkerSettings(worker=WorkerConfig(recovery_stall_s=7)), _deps())
    watch = app.transport.recovery_watch
    assert isinstance(watch, RecoveryWatch) and watch.after_s == 7
    assert "_watch_recovery" in Consumer._tasks[f"{Consumer.__module__}.Consumer"]


def test_a_gap_in_a_stream_partition_is_never_counted_as_done() -> None:
    import asyncio
    from collections import defaultdict

    from intervaltree import IntervalTree

    consumer = object.__new__(Consumer)
    consumer._changelogs = frozenset({"app-drift-changelog"})  # type: ignore[attr-defined]
    consumer._gap = defaultdict(IntervalTree)  # type: ignore[attr-defined]
    consumer._committed_offset = defaultdict(lambda: None)  # type: ignore[attr-defined]
    consumer._acked = defaultdict(list)  # type: ignore[attr-defined]
    consumer._acked_index = defaultdict(set)  # type: ignore[attr-defined]
    raw, changelog = TP("t.reviews.raw.v1", 2), TP("app-drift-changelog", 0)
    asyncio.run(consumer._add_gap(raw, 42, 43))
    asyncio.run(consumer._add_gap(changelog, 5, 7))  # faust's gap handling for compaction
    assert not consumer._gap[raw]
    assert sorted((i.begin, i.end) for i in consumer._gap[changelog]) == [(5, 8)]
    # so the commit stops before the record that was not delivered
    consumer._acked[raw] = [40, 41, 43, 44]
    consumer._committed_offset[raw] = 40
    assert consumer._new_offset(raw) == 42
    # faust alone would commit 44 here, past record 41 (the next one to read, never acked)
    consumer._acked[raw] = [42, 43]
    consumer._committed_offset[raw] = 41
    assert consumer._new_offset(raw) is None
    consumer._acked[raw] = [41, 42, 43]
    assert consumer._new_offset(raw) == 44


@dataclass(frozen=True)
class InFlight:
    tp: TP
    offset: int


def test_the_stall_watch_seeks_back_when_the_committed_record_is_not_in_flight() -> None:
    import asyncio
    from types import SimpleNamespace

    from stream_processors.metrics import WorkerMetrics
    from stream_processors.stall import _seek_stalled

    held, hole = TP("t.reviews.clean.v1", 1), TP("t.reviews.clean.v1", 2)
    seeks: list[tuple[TP, int]] = []

    async def seek_wait(offsets: dict[TP, int]) -> None:
        seeks.extend(offsets.items())

    consumer = SimpleNamespace(
        _committed_offset={held: 10, hole: 41},
        # held: its committed record is being processed; hole: later records are, 41 is not
        _unacked_messages={InFlight(held, 10), InFlight(hole, 45), InFlight(hole, 46)},
        seek_wait=seek_wait,
    )
    app = SimpleNamespace(consumer=consumer)
    clock = Clock()
    watch = StallWatch(after_s=20, clock=clock)
    metrics = WorkerMetrics()
    ends = {held: 50, hole: 351}
    asyncio.run(_seek_stalled(app, metrics, watch, {held, hole}, ends))
    clock.now = 25
    asyncio.run(_seek_stalled(app, metrics, watch, {held, hole}, ends))
    assert seeks == [(hole, 41)]


def test_perform_seek_drops_stream_records_meanwhile_and_starts_never_committed_ones_over(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import asyncio
    from collections import defaultdict
    from types import SimpleNamespace

    import faust.transport.consumer as base

    raw, fresh, changelog = TP("t.raw", 0), TP("t.raw", 1), TP("app-drift-changelog", 0)
    delivered: list[tuple[TP, int]] = []

    def message(offset: int) -> Message:
        m = Message(generation_id=4)
        m.offset = offset  # type: ignore[attr-defined]
        return m

    # records a fetch returns while the seek runs: the stream ones must not reach faust
    during = [(raw, message(59)), (fresh, message(7)), (changelog, message(3))]

    async def parent_getmany(self: Any, timeout: float) -> Any:
        for item in during:
            yield item

    consumer = object.__new__(Consumer)

    async def parent_perform_seek(self: Any) -> None:
        self._committed_offset[raw] = 29  # faust: seek_to_committed, fresh has no commit
        async for tp, m in consumer.getmany(1.0):
            delivered.append((tp, m.offset))

    monkeypatch.setattr(base.Consumer, "getmany", parent_getmany)
    monkeypatch.setattr(base.Consumer, "perform_seek", parent_perform_seek)
    consumer.app = SimpleNamespace(  # type: ignore[attr-defined]
        tables=SimpleNamespace(changelog_topics={"app-drift-changelog"}),
        consumer_generation_id=4,
    )
    consumer._committed_offset = defaultdict(lambda: None)  # type: ignore[attr-defined]
    consumer._changelogs = frozenset({"app-drift-changelog"})  # type: ignore[attr-defined]
    consumer.assignment = lambda: {raw, fresh, changelog}  # type: ignore[method-assign]
    seeks: list[dict[TP, int]] = []

    async def earliest_offsets(*tps: TP) -> dict[TP, int]:
        return {tp: 0 for tp in tps}

    async def seek_wait(offsets: dict[TP, int]) -> None:
        seeks.append(dict(offsets))

    consumer.earliest_offsets = earliest_offsets  # type: ignore[method-assign]
    consumer.seek_wait = seek_wait  # type: ignore[method-assign]
    asyncio.run(consumer.perform_seek())
    assert delivered == [(changelog, 3)]
    # never committed: from the start, not from where it stood; then the partitions whose
    # records were dropped meanwhile go back to where the seek put them
    assert seeks == [{fresh: 0}, {raw: 29, fresh: 0}]
    assert consumer._expected == {raw: 29, fresh: 0}  # type: ignore[attr-defined]
    assert consumer.sought_generation == 4
