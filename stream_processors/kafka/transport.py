"""The workers' Kafka transport: faust's aiokafka driver, with acks that cannot skip records.

faust's ``Stream`` *acks* a record it skips: one read while a rebalance (or a shutdown) has
suspended the flow, or one fetched in an earlier consumer generation (the skip is faust's answer
to faust-streaming#221, PR #223; the ack that comes with it is ours to refuse). On a revoke
faust also forgets the partition's committed offset and acked list, so such an ack lands in a
fresh list that nothing guards, right after the acks of the batch that was in flight:
contiguous, hence committable. The commit timer then moves the group past records nobody
processed, and the next owner of the partition (this worker or another) starts after them. The
two-worker and SIGKILL fault tests lost 2 and 31 of 2,000 reviews this way (committed offset ==
log end, reviews missing, no errors logged).

``Consumer.ack`` here refuses an ack while the flow is suspended or for a record of an older
generation: the record is marked done for faust's bookkeeping (so nothing waits for it) but its
offset never becomes committable, so it is read again from the last committed offset. A batch
that happens to finish inside a rebalance is therefore processed twice, which every step
tolerates (rows upsert, events keep their ids); a record is never lost.

Holes of the same family, each seen in the fault tests:

- After an assignment faust starts its fetcher early (to restore the tables) and seeks the
  stream partitions to their committed offsets only at the end of recovery (the family of
  faust-streaming#216, "recovery resumes from kafka before seeking to committed offsets"); in
  between the stream partitions were fetched from wherever the consumer stood and delivered,
  then delivered again after the seek, and the acks of the first copies were recorded while
  the committed offset was forgotten: commits skipped records (6 to 73 reviews lost in the
  fault tests). The stream partitions are therefore paused as soon as they are assigned
  (recovery resumes them right before its seek), and acks are refused until this generation's
  seek is done.
- A partition can be left with its committed offset below the log end and nothing coming:
  records fetched, dropped by faust's rebalance handling, never delivered, never re-read.
  :class:`StallWatch` (run by the lag timer) seeks such a partition back to its committed offset
  once the record that offset names has not been in flight for a while: duplicates at worst,
  never a hole.
- faust counts offsets it skipped in delivery as done (``_add_gap``, meant for compacted topics
  and transaction markers: robinhood/faust#401, faust-streaming PR #282 and #378). A CI run of
  the SIGKILL test lost one review that way: its raw record was never cleaned, yet the raw
  partition was committed past it. On stream partitions a gap is now only logged; the commit
  stops before it and the stall watch reads it again. faust also commits past a single
  missing record right at the committed offset (faust-streaming#312, PR #313 allow the lowest
  acked offset to be one past it): :meth:`Consumer._new_offset` does not.
- Table recovery can wait for ever on a changelog partition that gets no record
  (faust-streaming#155, robinhood/faust#218): :class:`RecoveryWatch`.

Every faust private name used here goes through :mod:`stream_processors.kafka.compat`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from faust.transport.drivers import aiokafka as driver
from mode import Service

from stream_processors.kafka import compat, delivery

log = logging.getLogger(__name__)

#: How often a partition is sought back to the same missing offset before the gap is accepted
#: (a gap that survives refetching is real: retention deleted the records, or a compaction).
MAX_REWINDS = 3
#: Seconds between two seeks back to the same offset.
REWIND_INTERVAL_S = 1.0


def ack_is_safe(
    *,
    flow_active: bool,
    message_generation: int | None,
    consumer_generation: int,
    sought_generation: int | None,
) -> bool:
    """Whether an ack may make the record's offset committable (see the module docstring)."""
    return (
        flow_active
        and message_generation == consumer_generation
        and sought_generation == consumer_generation
    )


@dataclass
class SeekState:
    """What :class:`Consumer` knows of its stream partitions' positions since its last seek."""

    #: the changelog topics (tables' own: faust restores them, none of this applies there)
    changelogs: frozenset[str] = frozenset()
    #: true while :meth:`Consumer.perform_seek` runs: stream records fetched meanwhile drop
    seeking: bool = False
    #: stream partitions whose records were dropped while seeking
    dropped: set[Any] = field(default_factory=set)
    #: the next offset each stream partition must deliver
    expected: dict[Any, int] = field(default_factory=dict)
    #: per partition: (offset sought back to, how often, when last)
    rewinds: dict[Any, tuple[int, int, float]] = field(default_factory=dict)


class Consumer(driver.Consumer):
    """faust's aiokafka consumer, refusing acks that could commit unprocessed records.

    Its own seeks go through ``seek_wait``, which runs in the consumer's thread (aiokafka lives
    there, with its own event loop) and also moves faust's read offset. faust's ``seek`` calls
    aiokafka straight from the app's thread; after such a seek a partition once stayed unread
    until the stall watch sought it again (suspected, not proven, to be that thread crossing).
    """

    #: the consumer generation whose seek to the committed offsets has completed
    sought_generation: int | None = None
    seek_state: SeekState

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.seek_state = SeekState()
        super().__init__(*args, **kwargs)

    @Service.task
    async def _watch_recovery(self) -> None:
        """Run :class:`RecoveryWatch` (from :func:`install`) from the consumer's start: the
        app's own timers only start after the first recovery, which can stall too."""
        transport = self.transport
        watch = transport.recovery_watch if isinstance(transport, Transport) else None
        if watch is None:
            return
        while not self.should_stop:
            await self.sleep(min(5.0, watch.after_s / 2))
            try:
                stuck = await unstick_recovery(self.app, watch)
            except RecoveryStalled as exc:
                log.error("%s", exc)
                raise  # mode crashes the service: the worker exits non-zero
            except Exception as exc:  # faust's internals moved under it: the next turn retries
                log.warning("recovery watch failed: %r", exc)
                continue
            if stuck and watch.on_stuck is not None:
                watch.on_stuck(len(stuck))

    async def on_partitions_assigned(self, assigned: Any, generation_id: int = 0) -> None:
        # Hold the stream partitions until faust's recovery resumes them, right before it seeks
        # them to their committed offsets: otherwise the fetcher (started early to restore the
        # tables) delivers them from wherever it stands and the same records flow twice.
        state = self.seek_state
        state.changelogs = frozenset(self.app.tables.changelog_topics)
        self.pause_partitions({tp for tp in assigned if tp.topic not in state.changelogs})
        await super().on_partitions_assigned(assigned, generation_id)

    async def perform_seek(self) -> None:
        self.sought_generation = None
        state = self.seek_state
        # Stream records fetched before or during the seek must not reach faust: its read
        # offset would run ahead of the seek and faust would then silently drop the refetched
        # records below it (seen in the SIGKILL test: raw partition at 59 delivered right after
        # the seek to 29, then 29-58 dropped). getmany drops them while seeking.
        state.seeking = True
        state.dropped = set()
        committed = compat.committed_offsets(self)
        try:
            await super().perform_seek()
            # faust seeks only partitions with a committed offset. One the group never
            # committed is read from its beginning, as a new group would: records delivered
            # before (acks refused, or dropped above) are read again, never skipped.
            # faust's changelog_topics builds a new set per call: keep one for getmany
            state.changelogs = frozenset(self.app.tables.changelog_topics)
            fresh = {
                tp
                for tp in self.assignment()
                if tp.topic not in state.changelogs and committed.get(tp) is None
            }
            starts = await self._seek_to_start(fresh) if fresh else {}
        finally:
            state.seeking = False
        # From here each stream partition must be delivered in order from its committed offset.
        state.expected = {
            tp: offset
            for tp, offset in committed.items()
            if offset is not None and tp.topic not in state.changelogs
        }
        state.expected.update(starts)
        # Records dropped while seeking may have been fetched from the new position (a fetch
        # sent after faust's seek, returned before this method ended): read them again.
        again = {tp: state.expected[tp] for tp in state.dropped if tp in state.expected}
        if again:
            await self.seek_wait(again)
        state.rewinds = {}
        self.sought_generation = compat.consumer_generation(self.app)

    async def _seek_to_start(self, partitions: set[Any]) -> dict[Any, int]:
        """Seek ``partitions`` to their earliest offsets; return them (none when it failed)."""
        try:
            earliest = await self.earliest_offsets(*partitions)
            starts = {tp: off for tp, off in earliest.items() if off is not None}
            await self.seek_wait(starts)
        except Exception as exc:  # a rebalance moved the assignment: it seeks again
            log.warning("seeking never-committed partitions to the start: %r", exc)
            return {}
        return starts

    async def getmany(self, timeout: float) -> Any:
        """faust's records, with each stream partition's offsets contiguous from the last seek.

        A record beyond the next expected offset means records were fetched and not delivered
        (or the fetch position ran ahead of a seek): it is dropped and the partition sought back
        to the expected offset, so nothing is skipped. A record below it is a re-delivery after
        a seek and is passed on (duplicates are harmless here, holes are not). Stream records
        arriving while :meth:`perform_seek` runs are dropped: the seek positions every stream
        partition again. The expected offsets are looked up per record: a fetch can
        span a seek, and its records must be checked against the offsets the seek set.
        """
        state = self.seek_state
        async for tp, message in super().getmany(timeout):
            stream = tp.topic not in state.changelogs
            if stream and state.seeking:
                state.dropped.add(tp)  # positioned again once the seek is done
                continue
            want = state.expected.get(tp)
            if want is not None and message.offset > want and await self._rewind(tp, want, message):
                continue
            state.rewinds.pop(tp, None)
            if stream:
                state.expected[tp] = message.offset + 1
            yield tp, message

    async def _rewind(self, tp: Any, want: int, message: Any) -> bool:
        """``message`` came where ``want`` was expected: True when it is dropped (sought back,
        or still draining from before the seek back), False once the gap is accepted."""
        rewinds = self.seek_state.rewinds
        target, count, at = rewinds.get(tp, (want, 0, 0.0))
        if target != want:
            count = 0
        now = time.monotonic()
        if target == want and count and now - at < REWIND_INTERVAL_S:
            return True  # already sought back; records fetched before the seek still drain
        if count < MAX_REWINDS:
            log.warning(
                "%s[%d]: offset %d delivered where %d was expected; seeking back",
                tp.topic,
                tp.partition,
                message.offset,
                want,
            )
            rewinds[tp] = (want, count + 1, now)
            await self.seek_wait({tp: want})
            return True
        log.error(
            "%s[%d]: offsets %d-%d are still missing after %d refetches; going on "
            "from %d (deleted by retention?)",
            tp.topic,
            tp.partition,
            want,
            message.offset - 1,
            MAX_REWINDS,
            message.offset,
        )
        return False

    async def _add_gap(self, tp: Any, offset_from: int, offset_to: int) -> None:
        """faust counts offsets it never delivered as done (meant for compacted topics and
        transaction markers): on a stream partition that commits past a record nobody
        processed. There a gap is logged and left open: the commit stops before it, and the
        stall watch reads the partition again from there once nothing of it is in flight."""
        if tp.topic in self.seek_state.changelogs:
            await super()._add_gap(tp, offset_from, offset_to)
            return
        log.warning(
            "%s[%d]: offsets %d-%d were not delivered before %d; the commit waits for them",
            tp.topic,
            tp.partition,
            offset_from,
            offset_to - 1,
            offset_to,
        )

    def _new_offset(self, tp: Any) -> int | None:
        """The offset to commit for ``tp``, never past the committed offset's own record.

        faust keeps the committed offset as the *next* offset to read but only refuses to
        commit when the lowest acked offset is more than one past it (faust-streaming#312):
        with 41 committed and 42, 43 acked it commits 44, skipping record 41 (refused ack, or
        never delivered). On a stream partition the commit waits until the committed offset's
        record is acked.
        """
        acked = compat.acked_offsets(self, tp)
        committed = compat.committed_offsets(self)[tp]
        if (
            acked
            and committed is not None
            and min(acked) > committed
            and tp.topic not in self.seek_state.changelogs
        ):
            return None
        return super()._new_offset(tp)

    def ack(self, message: Any) -> bool:
        app = self.app
        safe = ack_is_safe(
            flow_active=app.flow_control.is_active(),
            message_generation=compat.message_generation(message),
            consumer_generation=compat.consumer_generation(app),
            sought_generation=self.sought_generation,
        )
        if safe:
            return bool(super().ack(message))
        compat.withhold(self, message)
        return False


compat.check_overrides(Consumer, driver.Consumer)


@dataclass
class StallWatch:
    """Which partitions to seek back: committed offset below the log end, unchanged for
    ``after_s`` seconds while the record it waits for was not in flight (``idle``: not being
    processed; never delivered, or delivered and dropped) the whole time."""

    after_s: float = 20.0
    clock: Callable[[], float] = time.monotonic
    _since: dict[Any, tuple[int, float]] = field(default_factory=dict)

    def stalled(self, tp: Any, *, committed: int | None, end: int, idle: bool) -> bool:
        """True when ``tp`` should be sought back to ``committed`` now."""
        if committed is None or end <= committed or not idle:
            self._since.pop(tp, None)
            return False
        now = self.clock()
        seen = self._since.get(tp)
        if seen is None or seen[0] != committed:
            self._since[tp] = (committed, now)
            return False
        if now - seen[1] < self.after_s:
            return False
        self._since[tp] = (committed, now)  # give the seek a full period before another
        return True

    def forget(self, keep: set[Any]) -> None:
        """Drop partitions no longer assigned."""
        for tp in set(self._since) - keep:
            del self._since[tp]


class RecoveryStalled(RuntimeError):
    """Table recovery waits for changelog records that seeking again did not bring."""


@dataclass
class RecoveryWatch:
    """Which active changelog partitions faust's table recovery waits on in vain.

    Recovery reads each active changelog partition up to its high-water mark and only then
    resumes the streams. Once (in CI, the two-worker test) a worker that took over the drift
    table's changelog partition got no changelog record at all after the rebalance: recovery
    waited, and with it every stream partition, for minutes. A partition is stuck when it still
    has records to read and none has arrived for ``after_s`` seconds since recovery started or
    since its last record; it is then sought again (see :func:`unstick_recovery`), at most once
    per ``after_s``. After ``max_attempts`` seeks with no record in between, :meth:`stuck`
    raises :class:`RecoveryStalled`: the consumer's task crashes the worker, so that its
    supervisor restarts it, rather than hold every partition paused for good.
    """

    after_s: float = 20.0
    clock: Callable[[], float] = time.monotonic
    #: called with the number of partitions sought again (the worker counts them)
    on_stuck: Callable[[int], None] | None = None
    max_attempts: int = 3
    _nudged: dict[Any, float] = field(default_factory=dict)
    _attempts: dict[Any, int] = field(default_factory=dict)
    _started: float | None = None

    def stuck(
        self,
        *,
        remaining: Mapping[Any, int],
        last_event: Mapping[Any, float],
        started_at: float | None,
    ) -> list[Any]:
        """The partitions to seek again now (``remaining``: records left per partition)."""
        if started_at != self._started:  # recovery ended, or a new one began: start over
            self._started = started_at
            self._nudged.clear()
            self._attempts.clear()
        if started_at is None:
            return []
        now = self.clock()
        out = []
        for tp, left in remaining.items():
            if left <= 0:
                continue
            event = last_event.get(tp, started_at)
            nudged = self._nudged.get(tp)
            if nudged is None or event > nudged:
                self._attempts.pop(tp, None)  # records came after the last seek
            if now - max(event, nudged or started_at) < self.after_s:
                continue
            attempts = self._attempts.get(tp, 0)
            if attempts >= self.max_attempts:
                raise RecoveryStalled(
                    f"{tp}: table recovery got no record after {attempts} seeks "
                    f"{self.after_s:.0f}s apart; restart the worker"
                )
            self._attempts[tp] = attempts + 1
            self._nudged[tp] = now
            out.append(tp)
        return out


async def unstick_recovery(app: Any, watch: RecoveryWatch) -> list[Any]:
    """Seek and resume the active changelog partitions recovery waits on in vain.

    Logs what the consumer knew about each (its fetch position, faust's read offset, paused or
    active) so the cause can be told apart, seeks it to the last offset recovery applied (faust
    re-reads that one and skips it; -1 means from the start), resumes it and the flow. Returns
    the partitions sought. Never raises: a rebalance can pull the partitions away meanwhile.
    """
    recovery = app.tables.recovery
    if not recovery.in_recovery:
        watch.stuck(remaining={}, last_event={}, started_at=None)
        return []
    stuck = watch.stuck(
        remaining=recovery.active_remaining(),
        last_event=compat.recovery_events_received_at(recovery),
        started_at=compat.recovery_started_at(recovery),
    )
    if not stuck:
        return []
    consumer = app.consumer
    offsets = {}
    for tp in stuck:
        seen = recovery.active_offsets.get(tp)
        offsets[tp] = 0 if seen is None or seen < 0 else seen
        try:
            position = await consumer.position(tp)
        except Exception as exc:  # revoked meanwhile
            position = repr(exc)
        read_offset, paused, active = compat.fetch_state(consumer, tp)
        log.warning(
            "%s[%d]: table recovery has had no record for %.0fs (applied up to %s, high-water "
            "%s; fetch position %s, read offset %s, paused %s, active %s, consumer flow %s, "
            "app flow %s, changelog queue %s); seeking it to %d and resuming it",
            tp.topic,
            tp.partition,
            watch.after_s,
            recovery.active_offsets.get(tp),
            recovery.active_highwaters.get(tp),
            position,
            read_offset,
            paused,
            active,
            consumer.flow_active,
            app.flow_control.is_active(),
            app.tables.changelog_queue.qsize(),
            offsets[tp],
        )
    try:
        await consumer.seek_wait(offsets)
        consumer.resume_partitions(stuck)
        app.flow_control.resume()
        consumer.resume_flow()
    except Exception as exc:  # a rebalance took the partitions: the next recovery seeks anyway
        log.warning("seeking the changelog partitions again failed: %r", exc)
    return stuck


class Producer(driver.Producer):
    """faust's aiokafka producer; each send's delivery future is handed to
    :func:`delivery.track`, so a guarded batch waits for its outputs to be on Kafka (faust
    itself only logs a failed delivery, and the batch's offsets would commit anyway)."""

    async def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        partition: int | None,
        timestamp: float | None,
        headers: Any,
        *,
        transactional_id: str | None = None,
    ) -> Any:
        future = await super().send(
            topic, key, value, partition, timestamp, headers, transactional_id=transactional_id
        )
        delivery.track(future)
        return future


compat.check_overrides(Producer, driver.Producer)


class Transport(driver.Transport):
    """faust's aiokafka transport with :class:`Consumer` (and its :class:`RecoveryWatch`) and
    :class:`Producer` (delivery futures tracked)."""

    Consumer = Consumer
    Producer = Producer
    recovery_watch: RecoveryWatch | None = None


def install(app: Any, recovery_watch: RecoveryWatch | None = None) -> None:
    """Make ``app`` consume through :class:`Transport` (call before the app starts), with
    ``recovery_watch`` run by its consumer."""
    app.transport = Transport(app.conf.broker_consumer, app)
    app.transport.recovery_watch = recovery_watch
