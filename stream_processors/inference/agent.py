"""The infer agent: micro-batches of reviews.clean.v1 scored, stored and published.

One batch goes through every step before its offsets can commit: score (the shared
``BatchScorer``), write reviews + text_features + prediction_logs to PostgreSQL in one
transaction (the sink stage, ``stream_processors.sink``), publish sentiment.v1, hand the
scores to the drift windows (one observations message per batch). Doing the sink here, not in
agents that re-read reviews.clean.v1 and sentiment.v1, saves two consumes and three decodes per
review; the guarantees are the same (a crash replays the batch; every write is idempotent).
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any, cast

import faust

from schemas.codec import encode
from schemas.events import MAX_TEXT_CHARS, ReviewCleaned, SentimentScored
from stream_processors.dlq import INFERENCE_FAILED, Rejection
from stream_processors.inference.batching import ScoreItem
from stream_processors.kafka.guard import BatchGuard
from stream_processors.records import Decoded, Rejected, decode_records, records_of
from stream_processors.sink.stage import SinkStage
from stream_processors.wiring import (
    Deps,
    Outputs,
    ScoresObserver,
    ShadowScorer,
    TokenCounts,
    raw_topic,
)
from ulasan.core.text import FEATURE_VERSION

log = logging.getLogger(__name__)

STAGE = "infer"


def score_item(item: Decoded[ReviewCleaned]) -> ScoreItem:
    """What the scorer needs from a cleaned review: the raw text, and the cleaned one where
    this worker's cleaning made it (the same feature version) and did not cut it."""
    event, arrived = item.event, item.record.timestamp
    same = event.feature_version == FEATURE_VERSION and len(event.cleaned_text) < MAX_TEXT_CHARS
    return ScoreItem(
        text=event.text,
        arrived_at=arrived if arrived is not None else time.time(),
        review_id=event.review_id,
        cleaned=event.cleaned_text if same else None,
        source=event.source,
    )


class InferStage:
    """One batch of cleaned reviews: scored, stored, published, handed to the observer.

    ``shadow`` scores each batch beside the champion (see shadow.py); ``observer`` gets each
    stored batch's scores (the drift windows).
    """

    def __init__(
        self,
        deps: Deps,
        outputs: Outputs,
        shadow: ShadowScorer | None,
        observer: ScoresObserver | None,
    ) -> None:
        self.deps = deps
        self.outputs = outputs
        self.shadow = shadow
        self.observer = observer
        self.sink = SinkStage(deps, outputs)

    async def send_shadow(self, scored: SentimentScored) -> None:
        topic = self.deps.topics.shadow
        await self.outputs.send(topic, (scored.review_id or "").encode(), scored)

    async def score(
        self, good: list[Decoded[ReviewCleaned]]
    ) -> tuple[list[SentimentScored | None], TokenCounts | None]:
        """One score per review, None where the model failed on it (dead-lettered); each
        review's token counts where the predictor counted them while scoring."""
        items = [score_item(g) for g in good]
        try:
            batch = await self.deps.scorer.score(items)
            if self.shadow is not None:
                await self.shadow.after_batch(items, batch.events, self.send_shadow)
            return list(batch.events), batch.token_counts
        except Exception as exc:
            log.exception("scoring a batch of %d failed; scoring its texts one by one", len(items))
            self.deps.metrics.stream_errors.labels(STAGE, type(exc).__name__).inc()
        out: list[SentimentScored | None] = []
        for g, item in zip(good, items, strict=True):
            try:
                out.extend((await self.deps.scorer.score([item])).events)
            except Exception as exc:
                rejection = Rejection(INFERENCE_FAILED, f"{type(exc).__name__}: {exc}")
                await self.outputs.dead_letter(Rejected(g.record, rejection), stage=STAGE)
                out.append(None)
        return out, None

    async def publish(self, scored: list[SentimentScored]) -> None:
        metrics, target = self.deps.metrics, self.deps.topics.sentiment
        metrics.inference_batch_size.observe(len(scored))
        # one labelled child per (label, version) of the batch, not one lookup per record
        counts = Counter((s.label, s.model_version) for s in scored)
        for (label, version), n in counts.items():
            metrics.predictions.labels(label, version).inc(n)
        confidence, latency = metrics.prediction_confidence, metrics.prediction_latency
        for s in scored:
            confidence.observe(s.confidence)
            latency.observe(s.timings.total_ms / 1000.0)
        await self.outputs.send_many(
            target, [((s.review_id or "").encode(), encode(s)) for s in scored]
        )

    async def process(self, events: Sequence[Any]) -> None:
        good, bad = decode_records(records_of(events), ReviewCleaned)
        for rejected in bad:
            await self.outputs.dead_letter(rejected, stage=STAGE)
        await self.handle(good)

    async def handle(self, good: list[Decoded[ReviewCleaned]]) -> None:
        """Score, store, publish and observe decoded cleaned reviews (the clean agent calls
        this with the batch it has just cleaned when ``worker.clean_and_score`` is on)."""
        if not good:
            return
        scored, counts = await self.score(good)
        stored = await self.sink.write(good, scored)
        await self.publish([s for s in stored if s is not None])
        if self.observer is not None:
            kept = [i for i, s in enumerate(stored) if s is not None]
            await self.observer.observe(
                [(good[i].event, cast(SentimentScored, stored[i])) for i in kept],
                [counts[i] for i in kept] if counts is not None else None,
            )


def register(app: faust.App, deps: Deps, outputs: Outputs, stage: InferStage) -> Any:
    """Attach the infer agent (reviews.clean.v1 -> ``stage``) to ``app``; return it."""
    cfg = deps.settings.worker
    guard = BatchGuard(STAGE, outputs, deps.metrics)

    @app.agent(raw_topic(app, deps.topics.clean), name=f"{app.conf.id}.infer")
    async def infer(stream: Any) -> None:
        # The batch is acked (its offsets become committable) only when the guard returns:
        # after the rows are in PostgreSQL (the sink retries while it is away, so consuming
        # pauses) and the scores are sent, or after a record that fails on its own was
        # dead-lettered; never for a batch cut short (see stream_processors.kafka.guard).
        async for events in stream.take_events(cfg.max_batch, within=cfg.max_wait_ms / 1000.0):
            deps.metrics.events.labels(STAGE).inc(len(events))
            await guard.run(events, stage.process)

    return infer
