"""The predict-requests agent: predict.requests.v1 -> the shared ``BatchScorer`` -> replies.

Each :class:`PredictionRequested` becomes one :class:`ScoreItem` per text; the texts of all the
requests taken in one micro-batch are scored together by the SAME ``BatchScorer`` (one thread,
one model, hot reload between batches) as the infer agent. Every text gets one
``SentimentScored`` on predict.replies.v1 with ``request_id``, ``index`` and ``reply_to``, keyed
by ``reply_to`` and sent to ``reply_partition`` when the request names one, so it reaches the
gateway instance that asked. Requests whose deadline has passed are not scored (the gateway
has already answered 504); they are counted, not dead-lettered. Bad records go to
predict.requests.v1.dlq.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import faust

from schemas.events import PredictionRequested, SentimentScored
from stream_processors.dlq import INFERENCE_FAILED, Rejection
from stream_processors.inference.batching import ScoreItem
from stream_processors.records import Decoded, Rejected, decode_records, records_of

if TYPE_CHECKING:
    from stream_processors.app import Deps, Outputs

log = logging.getLogger(__name__)

STAGE = "requests"


def score_items(request: PredictionRequested, arrived_at: float) -> list[ScoreItem]:
    """The scorer's items of one request: one per text, in order (``index`` = position)."""
    return [
        ScoreItem(
            text=text,
            arrived_at=arrived_at,
            request_id=request.request_id,
            index=i,
            reply_to=request.reply_to,
        )
        for i, text in enumerate(request.texts)
    ]


def reply_route(request: PredictionRequested) -> tuple[bytes, int | None]:
    """Key and partition of a request's replies: key ``reply_to``, the asked partition if any."""
    return request.reply_to.encode("utf-8"), request.reply_partition


def expired(request: PredictionRequested, now: datetime | None = None) -> bool:
    """Whether the request's deadline has passed (its gateway no longer waits)."""
    return request.deadline <= (now or datetime.now(UTC))


def register(app: faust.App, deps: Deps, outputs: Outputs) -> Any:
    """Attach the predict-requests agent to ``app``; return it."""
    from stream_processors.app import topic

    cfg = deps.settings.worker
    source = topic(app, deps.topics.predict_requests)
    target = deps.topics.predict_replies
    metrics = deps.metrics
    scorer = deps.scorer
    wait_s = cfg.request_max_wait_ms / 1000.0

    async def reply(scored: SentimentScored, route: tuple[bytes, int | None]) -> None:
        key, partition = route
        await outputs.channels[target].send(
            key=key, value=scored.model_dump_json().encode("utf-8"), partition=partition
        )

    async def publish(
        events: list[SentimentScored], routes: list[tuple[bytes, int | None]]
    ) -> None:
        metrics.inference_batch_size.observe(len(events))
        for scored, route in zip(events, routes, strict=True):
            metrics.predictions.labels(scored.label, scored.model_version).inc()
            metrics.prediction_confidence.observe(scored.confidence)
            metrics.prediction_latency.observe(scored.timings.total_ms / 1000.0)
            await reply(scored, route)

    async def score(good: list[Decoded[PredictionRequested]]) -> None:
        items: list[ScoreItem] = []
        routes: list[tuple[bytes, int | None]] = []
        owners: list[Decoded[PredictionRequested]] = []
        now = datetime.now(UTC)
        for g in good:
            if expired(g.event, now):
                metrics.stream_errors.labels(STAGE, "deadline_passed").inc()
                log.info("request %s skipped: its deadline passed", g.event.request_id)
                continue
            arrived = g.record.timestamp if g.record.timestamp is not None else time.time()
            for item in score_items(g.event, arrived):
                items.append(item)
                routes.append(reply_route(g.event))
                owners.append(g)
        if not items:
            return
        try:
            batch = await scorer.score(items)
            await publish(batch.events, routes)
            return
        except Exception as exc:
            log.exception("scoring %d request texts failed; scoring request by request", len(items))
            metrics.stream_errors.labels(STAGE, type(exc).__name__).inc()
        done: set[str] = set()
        for g in owners:
            if g.event.request_id in done:
                continue
            done.add(g.event.request_id)
            mine = score_items(g.event, time.time())
            try:
                batch = await scorer.score(mine)
                await publish(batch.events, [reply_route(g.event)] * len(mine))
            except Exception as exc:
                rejection = Rejection(INFERENCE_FAILED, f"{type(exc).__name__}: {exc}")
                await outputs.dead_letter(Rejected(g.record, rejection), stage=STAGE)

    @app.agent(source, name=f"{app.conf.id}.requests")
    async def requests(stream: Any) -> None:
        async for events in stream.take_events(cfg.max_batch, within=wait_s):
            records = records_of(events)
            metrics.events.labels(STAGE).inc(len(records))
            good, bad = decode_records(records, PredictionRequested)
            for rejected in bad:
                await outputs.dead_letter(rejected, stage=STAGE)
            if good:
                await score(good)

    return requests
