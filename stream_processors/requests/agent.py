"""The predict-requests agents: predict.requests.v1 -> the shared ``BatchScorer`` -> replies, and
predict.replies.v1 -> prediction_logs.

Each :class:`PredictionRequested` becomes one :class:`ScoreItem` per text; the texts of all the
requests taken in one micro-batch are scored together by the SAME ``BatchScorer`` (one thread,
one model, hot reload between batches) as the infer agent. Requests are taken as soon as they
are ready (:func:`~stream_processors.requests.take.take_ready`: a lone request is scored at
once; requests that arrive while a batch is scored form the next batch), or, with
``request_max_wait_ms`` > 0, in windows of that length. Every text gets one
``SentimentScored`` on predict.replies.v1 with ``request_id``, ``index`` and ``reply_to``, keyed
by ``reply_to`` and sent to ``reply_partition`` when the request names one, so it reaches the
gateway instance that asked. Each reply carries the Kafka header ``ulasan-consumed-at-ms``: when
this worker's consumer received the request (epoch ms), the one timestamp of the gateway's
per-hop breakdown (producers/gateway/hops.py) that no event holds. Requests whose deadline has
passed are not scored (the gateway has already answered 504); they are counted, not
dead-lettered. Bad records go to predict.requests.v1.dlq.

The request-logs agent stores every reply in prediction_logs (``request_id`` and ``index``
set, ``review_id`` NULL) off the request path, so feedback given by ``request_id`` joins the
stored prediction like feedback on a review; replies it cannot store go to
predict.replies.v1.dlq.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import faust

from schemas.events import REPLY_CONSUMED_AT_HEADER, PredictionRequested, SentimentScored
from stream_processors.dlq import INFERENCE_FAILED, SCHEMA_VIOLATION, Rejection
from stream_processors.inference.batching import ScoreItem
from stream_processors.kafka.guard import BatchGuard
from stream_processors.records import Decoded, Record, Rejected, decode_records, records_of
from stream_processors.requests.take import take_ready
from stream_processors.sink.rows import prediction_batch
from stream_processors.sink.stage import store
from stream_processors.wiring import Deps, Outputs, raw_topic

log = logging.getLogger(__name__)

STAGE = "requests"
LOG_STAGE = "request_logs"
#: Replies stored per PostgreSQL write, and the longest wait for a batch of them (seconds).
LOG_BATCH, LOG_WAIT_S = 500, 0.5


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


Route = tuple[bytes, int | None]
Headers = list[tuple[str, bytes]]


def consumed_headers(record: Record, wall_offset: float, now: float) -> Headers:
    """The reply headers of a request record: when the consumer received it (faust's monotonic
    ``time_in`` + ``wall_offset`` = ``time.time() - time.monotonic()``; ``now`` when unknown)."""
    received = record.time_in + wall_offset if record.time_in is not None else now
    return [(REPLY_CONSUMED_AT_HEADER, f"{received * 1000.0:.3f}".encode("ascii"))]


class RequestScorer:
    """Scores the live requests of one micro-batch together and sends each text's reply."""

    def __init__(self, deps: Deps, outputs: Outputs) -> None:
        self.deps = deps
        self.outputs = outputs
        self.metrics = deps.metrics

    async def reply(
        self, scored: SentimentScored, route: Route, headers: Headers | None = None
    ) -> None:
        key, partition = route
        await self.outputs.send_bytes(
            self.deps.topics.predict_replies,
            key,
            scored.model_dump_json().encode("utf-8"),
            partition=partition,
            headers=headers,
        )

    async def publish(
        self,
        events: list[SentimentScored],
        routes: list[Route],
        headers: list[Headers] | None = None,
    ) -> None:
        metrics = self.metrics
        metrics.inference_batch_size.observe(len(events))
        for i, (scored, route) in enumerate(zip(events, routes, strict=True)):
            metrics.predictions.labels(scored.label, scored.model_version).inc()
            metrics.prediction_confidence.observe(scored.confidence)
            metrics.prediction_latency.observe(scored.timings.total_ms / 1000.0)
            await self.reply(scored, route, headers[i] if headers else None)

    def live_items(
        self, good: list[Decoded[PredictionRequested]]
    ) -> tuple[list[ScoreItem], list[Route], list[Decoded[PredictionRequested]]]:
        """Every text of the requests whose deadline has not passed (the expired ones are
        counted, not scored), with its reply route and its request."""
        items: list[ScoreItem] = []
        routes: list[Route] = []
        owners: list[Decoded[PredictionRequested]] = []
        now = datetime.now(UTC)
        for g in good:
            if expired(g.event, now):
                self.metrics.stream_errors.labels(STAGE, "deadline_passed").inc()
                log.info("request %s skipped: its deadline passed", g.event.request_id)
                continue
            arrived = g.record.timestamp if g.record.timestamp is not None else time.time()
            for item in score_items(g.event, arrived):
                items.append(item)
                routes.append(reply_route(g.event))
                owners.append(g)
        return items, routes, owners

    async def score(self, good: list[Decoded[PredictionRequested]]) -> None:
        items, routes, owners = self.live_items(good)
        if not items:
            return
        now = time.time()
        wall_offset = now - time.monotonic()
        headers = [consumed_headers(g.record, wall_offset, now) for g in owners]
        try:
            batch = await self.deps.scorer.score(items)
            await self.publish(batch.events, routes, headers)
            return
        except Exception as exc:
            log.exception("scoring %d request texts failed; scoring request by request", len(items))
            self.metrics.stream_errors.labels(STAGE, type(exc).__name__).inc()
        await self.score_one_by_one(owners)

    async def score_one_by_one(self, owners: list[Decoded[PredictionRequested]]) -> None:
        """Each request on its own; one that still fails is dead-lettered."""
        done: set[str] = set()
        for g in owners:
            if g.event.request_id in done:
                continue
            done.add(g.event.request_id)
            mine = score_items(g.event, time.time())
            try:
                batch = await self.deps.scorer.score(mine)
                await self.publish(batch.events, [reply_route(g.event)] * len(mine))
            except Exception as exc:
                rejection = Rejection(INFERENCE_FAILED, f"{type(exc).__name__}: {exc}")
                await self.outputs.dead_letter(Rejected(g.record, rejection), stage=STAGE)


def register(app: faust.App, deps: Deps, outputs: Outputs) -> Any:
    """Attach the predict-requests agent to ``app``; return it."""
    cfg = deps.settings.worker
    wait_s = cfg.request_max_wait_ms / 1000.0
    scorer = RequestScorer(deps, outputs)
    guard = BatchGuard(STAGE, outputs, deps.metrics)

    def batches(stream: Any) -> Any:
        if wait_s > 0:
            return stream.take_events(cfg.request_max_batch, within=wait_s)
        return take_ready(stream, cfg.request_max_batch)

    async def process(events: Sequence[Any]) -> None:
        good, bad = decode_records(records_of(events), PredictionRequested)
        for rejected in bad:
            await outputs.dead_letter(rejected, stage=STAGE)
        if good:
            await scorer.score(good)

    @app.agent(raw_topic(app, deps.topics.predict_requests), name=f"{app.conf.id}.requests")
    async def requests(stream: Any) -> None:
        # the guard acks a batch only once its replies (or dead letters) were delivered
        async for events in batches(stream):
            deps.metrics.events.labels(STAGE).inc(len(events))
            await guard.run(events, process)

    return requests


def register_log(app: faust.App, deps: Deps, outputs: Outputs) -> Any:
    """Attach the request-logs agent (predict.replies.v1 -> prediction_logs) to ``app``."""
    source = raw_topic(app, deps.topics.predict_replies)
    metrics = deps.metrics
    guard = BatchGuard(LOG_STAGE, outputs, metrics)

    async def process(events: Sequence[Any]) -> None:
        good, bad = decode_records(records_of(events), SentimentScored)
        for rejected in bad:
            await outputs.dead_letter(rejected, stage=LOG_STAGE)
        stored = [g for g in good if g.event.request_id is not None]
        for g in good:
            if g.event.request_id is None:  # a review's score has no business here
                why = Rejection(SCHEMA_VIOLATION, "a reply without a request_id")
                await outputs.dead_letter(Rejected(g.record, why), stage=LOG_STAGE)
        if stored:
            batch = prediction_batch([g.event for g in stored])
            await store(deps, outputs, batch, stored, stage=LOG_STAGE)

    @app.agent(source, name=f"{app.conf.id}.request_logs")
    async def request_logs(stream: Any) -> None:
        async for events in stream.take_events(LOG_BATCH, within=LOG_WAIT_S):
            metrics.events.labels(LOG_STAGE).inc(len(events))
            await guard.run(events, process)

    return request_logs
