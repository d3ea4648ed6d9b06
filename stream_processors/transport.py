"""The workers' Kafka transport: faust's aiokafka driver, with acks that cannot skip records.

faust's ``Stream`` *acks* a record it skips: one read while a rebalance (or a shutdown) has
suspended the flow, or one fetched in an earlier consumer generation. On a revoke faust also
forgets the partition's committed offset and acked list, so such an ack lands in a fresh list
that nothing guards, right after the acks of the batch that was in flight: contiguous, hence
committable. The commit timer then moves the group past records nobody processed, and the
next owner of the partition (this worker or another) starts after them. The two-worker and
SIGKILL fault tests lost 2 and 31 of 2,000 reviews this way (committed offset == log end,
reviews missing, no errors logged).

``Consumer.ack`` here refuses an ack while the flow is suspended or for a record of an older
generation: the record is marked done for faust's bookkeeping (so nothing waits for it) but its
offset never becomes committable, so it is read again from the last committed offset. A batch
that happens to finish inside a rebalance is therefore processed twice, which every step
tolerates (rows upsert, events keep their ids); a record is never lost.

Two more holes of the same family, both seen in the two-worker test:

- After an assignment faust starts its fetcher early (to restore the tables) and seeks the
  stream partitions to their committed offsets only at the end of recovery; in between the
  stream partitions were fetched from wherever the consumer stood and delivered, then
  delivered again after the seek, and the acks of the first copies were recorded while the
  committed offset was forgotten: commits skipped records (6 to 73 reviews lost in the fault
  tests). The stream partitions are therefore paused as soon as they are assigned (recovery
  resumes them right before its seek), and acks are refused until this generation's seek is
  done.
- A partition can be left with its committed offset below the log end and nothing coming:
  records fetched, dropped by faust's rebalance handling, never delivered, never re-read.
  :class:`StallWatch` (run by the lag timer) seeks such a partition back to its committed offset
  once the worker has had nothing in flight for a while: duplicates at worst, never a hole.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from faust.transport.drivers import aiokafka as driver
from faust.types.tuples import ack_lock

log = logging.getLogger(__name__)

#: How often a partition is sought back to the same missing offset before the gap is accepted
#: (a gap that survives refetching is real: retention deleted the records, or a compaction).
MAX_REWINDS = 3
#: Seconds between two seeks back to the same offset.
REWIND_INTERVAL_S = 1.0


def ack_is_safe(
    *,
    flow_active: bool,
    message_generation: int,
    consumer_generation: int,
    sought_generation: int | None,
) -> bool:
    """Whether an ack may make the record's offset committable (see the module docstring)."""
    return (
        flow_active
        and message_generation == consumer_generation
        and sought_generation == consumer_generation
    )


class Consumer(driver.Consumer):
    """faust's aiokafka consumer, refusing acks that could commit unprocessed records."""

    #: the consumer generation whose seek to the committed offsets has completed
    sought_generation: int | None = None

    async def on_partitions_assigned(self, assigned: Any, generation_id: int = 0) -> None:
        # Hold the stream partitions until faust's recovery resumes them, right before it seeks
        # them to their committed offsets: otherwise the fetcher (started early to restore the
        # tables) delivers them from wherever it stands and the same records flow twice.
        self._changelogs = frozenset(self.app.tables.changelog_topics)
        self.pause_partitions({tp for tp in assigned if tp.topic not in self._changelogs})
        await super().on_partitions_assigned(assigned, generation_id)

    async def perform_seek(self) -> None:
        self.sought_generation = None
        await super().perform_seek()
        # From here each stream partition must be delivered in order from its committed offset.
        # faust's changelog_topics builds a new set per call: keep one for the per-record check
        self._changelogs = frozenset(self.app.tables.changelog_topics)
        self._expected = {
            tp: offset
            for tp, offset in self._committed_offset.items()
            if offset is not None and tp.topic not in self._changelogs
        }
        self._rewinds: dict[Any, tuple[int, int, float]] = {}
        self.sought_generation = self.app.consumer_generation_id

    async def getmany(self, timeout: float) -> Any:
        """faust's records, with each stream partition's offsets contiguous from the last seek.

        A record beyond the next expected offset means records were fetched and not delivered
        (or the fetch position ran ahead of a seek): it is dropped and the partition sought back
        to the expected offset, so nothing is skipped. A record below it is a re-delivery after
        a seek and is passed on (duplicates are harmless here, holes are not).
        """
        expected: dict[Any, int] = getattr(self, "_expected", {})
        changelogs: frozenset[str] = getattr(self, "_changelogs", frozenset())
        rewinds: dict[Any, tuple[int, int, float]] = getattr(self, "_rewinds", {})
        async for tp, message in super().getmany(timeout):
            want = expected.get(tp)
            if want is not None and message.offset > want:
                target, count, at = rewinds.get(tp, (want, 0, 0.0))
                if target != want:
                    count = 0
                now = time.monotonic()
                if target == want and count and now - at < REWIND_INTERVAL_S:
                    continue  # already sought back; records fetched before the seek still drain
                if count < MAX_REWINDS:
                    log.warning(
                        "%s[%d]: offset %d delivered where %d was expected; seeking back",
                        tp.topic,
                        tp.partition,
                        message.offset,
                        want,
                    )
                    rewinds[tp] = (want, count + 1, now)
                    await self.seek(tp, want)
                    continue
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
            rewinds.pop(tp, None)
            if tp.topic not in changelogs:
                expected[tp] = message.offset + 1
            yield tp, message

    def ack(self, message: Any) -> bool:
        app = self.app
        safe = ack_is_safe(
            flow_active=app.flow_control.is_active(),
            message_generation=getattr(message, "generation_id", 0),
            consumer_generation=app.consumer_generation_id,
            sought_generation=self.sought_generation,
        )
        if safe:
            return bool(super().ack(message))
        with ack_lock:
            # Done as far as waiting goes (a shutdown or rebalance does not wait for it), but
            # never recorded as acked: the commit stops before it and it is consumed again.
            message.acked = True
            self._unacked_messages.discard(message)
        return False


@dataclass
class StallWatch:
    """Which partitions to seek back: committed offset below the log end, unchanged for
    ``after_s`` seconds while the worker had nothing in flight (``idle``) the whole time."""

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


class Transport(driver.Transport):
    """faust's aiokafka transport with :class:`Consumer`."""

    Consumer = Consumer


def install(app: Any) -> None:
    """Make ``app`` consume through :class:`Transport` (call before the app starts)."""
    app.transport = Transport(app.conf.broker_consumer, app)
