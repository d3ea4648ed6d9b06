"""The clean agent: a shell around ``cleaning.logic.clean`` (reviews.raw.v1 -> reviews.clean.v1)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import faust

from schemas.codec import encode
from schemas.events import ReviewReceived
from stream_processors.cleaning.logic import clean
from stream_processors.dlq import Rejection
from stream_processors.kafka.guard import BatchGuard
from stream_processors.records import Rejected, decode_records, records_of
from stream_processors.wiring import Deps, Outputs, raw_topic

STAGE = "clean"
#: Records taken per loop: cleaning is per record, batching only saves event-loop round trips.
BATCH = 256
WITHIN_S = 0.05


def register(app: faust.App, deps: Deps, outputs: Outputs) -> Any:
    """Attach the clean agent to ``app``; return it."""
    source = raw_topic(app, deps.topics.raw)
    target = deps.topics.clean
    metrics = deps.metrics

    guard = BatchGuard(STAGE, outputs, metrics)

    async def process(events: Sequence[Any]) -> None:
        good, bad = decode_records(records_of(events), ReviewReceived)
        for rejected in bad:
            await outputs.dead_letter(rejected, stage=STAGE)
        out: list[tuple[bytes | None, bytes]] = []
        for item in good:
            try:
                cleaned = clean(item.event)
            except Exception as exc:  # process() must not raise; if it does, keep the record
                rejection = Rejection("clean_failed", f"{type(exc).__name__}: {exc}")
                await outputs.dead_letter(Rejected(item.record, rejection), stage=STAGE)
                continue
            out.append((item.record.key, encode(cleaned)))
        # one hand-over to the producer for the batch (the order of the records is kept)
        await outputs.send_many(target, out)

    @app.agent(source, name=f"{app.conf.id}.clean")
    async def clean_reviews(stream: Any) -> None:
        # take_events acks a batch once this body moves on, i.e. after every output was handed
        # to the producer (faust flushes the producer before committing offsets); the guard
        # makes sure that is never before the batch was processed (see kafka/guard.py).
        async for events in stream.take_events(BATCH, within=WITHIN_S):
            metrics.events.labels(STAGE).inc(len(events))
            await guard.run(events, process)

    return clean_reviews
