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
"""

from __future__ import annotations

from typing import Any

from faust.transport.drivers import aiokafka as driver
from faust.types.tuples import ack_lock


def ack_is_safe(*, flow_active: bool, message_generation: int, consumer_generation: int) -> bool:
    """Whether an ack may make the record's offset committable (see the module docstring)."""
    return flow_active and message_generation == consumer_generation


class Consumer(driver.Consumer):
    """faust's aiokafka consumer, refusing acks that could commit unprocessed records."""

    def ack(self, message: Any) -> bool:
        app = self.app
        safe = ack_is_safe(
            flow_active=app.flow_control.is_active(),
            message_generation=getattr(message, "generation_id", 0),
            consumer_generation=app.consumer_generation_id,
        )
        if safe:
            return bool(super().ack(message))
        with ack_lock:
            # Done as far as waiting goes (a shutdown or rebalance does not wait for it), but
            # never recorded as acked: the commit stops before it and it is consumed again.
            message.acked = True
            self._unacked_messages.discard(message)
        return False


class Transport(driver.Transport):
    """faust's aiokafka transport with :class:`Consumer`."""

    Consumer = Consumer


def install(app: Any) -> None:
    """Make ``app`` consume through :class:`Transport` (call before the app starts)."""
    app.transport = Transport(app.conf.broker_consumer, app)
