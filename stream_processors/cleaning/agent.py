"""The clean agent: a shell around ``cleaning.logic.clean`` (reviews.raw.v1 -> reviews.clean.v1).

With a next stage (``worker.clean_and_score``, the default) the agent hands each batch it has
cleaned to that stage (the infer stage: score, store, publish, observe) from memory, after
publishing it to reviews.clean.v1 for downstream consumers. A review then crosses Kafka once
on its way to a score instead of twice: no consume, decode and per-record faust path of
reviews.clean.v1. The guarantees are those of the infer agent: the raw batch is acked only
after both stages are done; a crash replays it, and every write is idempotent.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import faust

from schemas.codec import encode
from schemas.events import ReviewCleaned, ReviewReceived
from stream_processors.cleaning.logic import clean
from stream_processors.dlq import Rejection
from stream_processors.kafka.guard import BatchGuard
from stream_processors.records import Decoded, Rejected, decode_records, records_of
from stream_processors.wiring import Deps, Outputs, raw_topic

STAGE = "clean"
#: The stage a next stage counts its events as (the infer stage's name).
NEXT_STAGE = "infer"
#: Records taken per loop: cleaning is per record, batching only saves event-loop round trips.
BATCH = 256
WITHIN_S = 0.05


class NextStage(Protocol):
    """What the clean agent hands a cleaned batch to (``InferStage`` in the worker)."""

    async def handle(self, good: list[Decoded[ReviewCleaned]]) -> None: ...


def register(app: faust.App, deps: Deps, outputs: Outputs, *, then: NextStage | None = None) -> Any:
    """Attach the clean agent to ``app``; return it. With ``then``, each cleaned batch also
    goes to ``then.handle`` (decoded, with the raw records it came from), in batches of the
    worker's ``max_batch`` / ``max_wait_ms`` instead of the clean agent's own."""
    source = raw_topic(app, deps.topics.raw)
    target = deps.topics.clean
    metrics = deps.metrics
    cfg = deps.settings.worker
    size, within = (BATCH, WITHIN_S) if then is None else (cfg.max_batch, cfg.max_wait_ms / 1e3)

    guard = BatchGuard(STAGE, outputs, metrics)

    async def process(events: Sequence[Any]) -> None:
        good, bad = decode_records(records_of(events), ReviewReceived)
        for rejected in bad:
            await outputs.dead_letter(rejected, stage=STAGE)
        out: list[tuple[bytes | None, bytes]] = []
        cleaned_batch: list[Decoded[ReviewCleaned]] = []
        for item in good:
            try:
                cleaned = clean(item.event)
            except Exception as exc:  # process() must not raise; if it does, keep the record
                rejection = Rejection("clean_failed", f"{type(exc).__name__}: {exc}")
                await outputs.dead_letter(Rejected(item.record, rejection), stage=STAGE)
                continue
            out.append((item.record.key, encode(cleaned)))
            cleaned_batch.append(Decoded(item.record, cleaned))
        # one hand-over to the producer for the batch (the order of the records is kept)
        await outputs.send_many(target, out)
        if then is not None:
            metrics.events.labels(NEXT_STAGE).inc(len(cleaned_batch))
            await then.handle(cleaned_batch)

    @app.agent(source, name=f"{app.conf.id}.clean")
    async def clean_reviews(stream: Any) -> None:
        # take_events acks a batch once this body moves on, i.e. after every output was handed
        # to the producer (faust flushes the producer before committing offsets); the guard
        # makes sure that is never before the batch was processed (see kafka/guard.py).
        async for events in stream.take_events(size, within=within):
            metrics.events.labels(STAGE).inc(len(events))
            await guard.run(events, process)

    return clean_reviews
