"""The infer agent: micro-batches of reviews.clean.v1 scored by the shared ``BatchScorer``."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

import faust

from schemas.events import ReviewCleaned
from stream_processors.dlq import INFERENCE_FAILED, Rejection
from stream_processors.inference.batching import ScoredBatch, ScoreItem
from stream_processors.records import Decoded, Rejected, decode_records, records_of

if TYPE_CHECKING:
    from stream_processors.app import Deps, Outputs

log = logging.getLogger(__name__)

STAGE = "infer"


def score_item(item: Decoded[ReviewCleaned]) -> ScoreItem:
    """What the scorer needs from a cleaned review (the raw text: the predictor cleans)."""
    arrived = item.record.timestamp
    return ScoreItem(
        text=item.event.text,
        arrived_at=arrived if arrived is not None else time.time(),
        review_id=item.event.review_id,
    )


def register(app: faust.App, deps: Deps, outputs: Outputs) -> Any:
    """Attach the infer agent to ``app``; return it."""
    from stream_processors.app import topic

    cfg = deps.settings.worker
    source = topic(app, deps.topics.clean)
    target = deps.topics.sentiment
    metrics = deps.metrics
    scorer = deps.scorer

    async def publish(batch: ScoredBatch) -> None:
        metrics.inference_batch_size.observe(len(batch.events))
        for scored in batch.events:
            metrics.predictions.labels(scored.label, scored.model_version).inc()
            metrics.prediction_confidence.observe(scored.confidence)
            metrics.prediction_latency.observe(scored.timings.total_ms / 1000.0)
            await outputs.send(target, (scored.review_id or "").encode(), scored)

    shadow = getattr(app, "ulasan_shadow", None)  # the challenger, scored beside (see shadow.py)

    async def send_shadow(scored: Any) -> None:
        await outputs.send(deps.topics.shadow, (scored.review_id or "").encode(), scored)

    async def score_or_dead_letter(good: list[Decoded[ReviewCleaned]]) -> None:
        items = [score_item(g) for g in good]
        try:
            batch = await scorer.score(items)
            await publish(batch)
            if shadow is not None:
                await shadow.after_batch(items, batch.events, send_shadow)
            return
        except Exception as exc:
            log.exception("scoring a batch of %d failed; scoring its texts one by one", len(items))
            metrics.stream_errors.labels(STAGE, type(exc).__name__).inc()
        for g, item in zip(good, items, strict=True):
            try:
                await publish(await scorer.score([item]))
            except Exception as exc:
                rejection = Rejection(INFERENCE_FAILED, f"{type(exc).__name__}: {exc}")
                await outputs.dead_letter(Rejected(g.record, rejection), stage=STAGE)

    @app.agent(source, name=f"{app.conf.id}.infer")
    async def infer(stream: Any) -> None:
        async for events in stream.take_events(cfg.max_batch, within=cfg.max_wait_ms / 1000.0):
            records = records_of(events)
            metrics.events.labels(STAGE).inc(len(records))
            good, bad = decode_records(records, ReviewCleaned)
            for rejected in bad:
                await outputs.dead_letter(rejected, stage=STAGE)
            if good:
                await score_or_dead_letter(good)

    return infer
