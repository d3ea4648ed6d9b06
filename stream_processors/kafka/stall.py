"""The consumer's stall watch: consumer lag per partition, and a seek back to the committed offset
for a partition whose commit stopped moving while nothing of it is in flight."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import faust

from stream_processors.kafka import compat, transport
from stream_processors.metrics import WorkerMetrics

log = logging.getLogger(__name__)


async def measure_lag(
    app: faust.App, metrics: WorkerMetrics, watch: transport.StallWatch | None = None
) -> None:
    """Set ``ulasan_consumer_lag`` for every assigned partition: log end minus committed offset.

    With ``watch``, also seek a stalled partition (committed offset below the end, nothing in
    flight, see ``transport.StallWatch``) back to its committed offset. Never raises: the
    assignment can change under it (a rebalance), and a lost measurement must not stop the
    worker. Partitions no longer assigned are dropped from the gauge.
    """
    consumer = app.consumer
    try:
        assigned = set(consumer.assignment())
        ends = await consumer.highwaters(*assigned) if assigned else {}
    except Exception as exc:  # a rebalance or a broker hiccup; the next tick retries
        log.debug("consumer lag not measured this time: %r", exc)
        return
    committed = app.monitor.tp_committed_offsets
    metrics.consumer_lag.clear()
    current = assigned & set(consumer.assignment())
    for tp in current:
        end = ends.get(tp)
        if end is None:
            continue
        done = committed.get(tp)
        if done is None:  # nothing committed by this worker yet: where its consumer stands
            try:
                done = await consumer.position(tp)
            except Exception as exc:  # revoked meanwhile
                log.debug("no position for %s: %r", tp, exc)
                continue
            if done is None:
                continue
        metrics.consumer_lag.labels(tp.topic, str(tp.partition)).set(max(0, end - done))
    if watch is not None and not compat.rebalancing(app):
        await _seek_stalled(app, metrics, watch, current, ends)


async def _seek_stalled(
    app: faust.App,
    metrics: WorkerMetrics,
    watch: transport.StallWatch,
    assigned: set[Any],
    ends: Mapping[Any, int],
) -> None:
    consumer = app.consumer
    # faust's own view of the group's committed offsets (read at the seek, moved by commits)
    committed = compat.committed_offsets(consumer)
    in_flight = compat.in_flight(consumer)
    for tp, offsets in compat.queued(app).items():  # waiting behind a busy agent: not stalled
        in_flight.setdefault(tp, set()).update(offsets)
    watch.forget(assigned)
    for tp in assigned:
        end = ends.get(tp)
        if end is None or tp.topic.endswith("-changelog"):  # tables' own; faust restores them
            continue
        offset = committed.get(tp)
        if offset is None:
            continue
        # "idle": the record the commit waits for is neither being processed nor waiting in a
        # channel's buffer (a slow batch holding it, or holding the records ahead of it, is not
        # a stall; a record never delivered, or delivered and dropped, is). Seeking back a
        # partition whose records wait in the buffer delivered them again: during a PostgreSQL
        # outage the infer agent waits on the sink, and every stall period added another copy
        # of the backlog to the buffer, each published once the sink was back.
        flying = in_flight.get(tp, set())
        if not watch.stalled(tp, committed=offset, end=end, idle=offset not in flying):
            continue
        log.warning(
            "%s[%d]: committed offset %s is below the end (%d), has not moved for %.0fs and "
            "its record is not in flight (%d later records are); seeking back to it",
            tp.topic,
            tp.partition,
            offset,
            end,
            watch.after_s,
            len(flying),
        )
        metrics.stream_errors.labels("consumer", "stalled_partition").inc()
        try:
            await consumer.seek_wait({tp: offset})  # in the consumer's thread (transport.py)
        except Exception as exc:  # revoked meanwhile: the new owner seeks anyway
            log.debug("seeking %s failed: %r", tp, exc)
