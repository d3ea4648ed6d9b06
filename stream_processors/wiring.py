"""What a worker's agents are given: typed dependencies (``Deps``), where they publish
(``Outputs``) and the topic names (``TopicNames``). Agents import this module, never the app.

Topics are declared with the ``raw`` serialiser (:func:`raw_topic`): agents get the record bytes
and decode them with ``schemas.codec`` themselves, so a bad record becomes a dead letter instead
of a crash.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import faust
from faust.types import ChannelT

from schemas import topics
from schemas.codec import encode
from schemas.events import DriftReport, Event, LabelFeedback, ReviewCleaned, SentimentScored
from stream_processors.dlq import dead_letter
from stream_processors.drift.config import DriftConfig
from stream_processors.drift.reference import Reference
from stream_processors.errors import WorkerConfigError
from stream_processors.feedback.logic import Outcome
from stream_processors.feedback.store import LoopStore
from stream_processors.inference.batching import BatchScorer, PredictorHolder, ScoreItem
from stream_processors.kafka import delivery
from stream_processors.metrics import LoopMetrics, WorkerMetrics
from stream_processors.records import Rejected
from stream_processors.settings import DLQ_MAX_PAYLOAD_BYTES, WorkerSettings
from stream_processors.sink.postgres import PostgresSink
from stream_processors.sink.rows import RowBatch
from stream_processors.triggers.logic import TriggerConfig
from ulasan.core.errors import ServiceUnavailable
from ulasan.core.inference import OnnxPredictor
from ulasan.core.kafka_admin import ensure_topics as ensure_topics_on
from ulasan.core.registry import resolve_model

log = logging.getLogger(__name__)

RAW = "raw"

#: a stored batch's cleaned reviews with their scores, as the infer agent hands them on
ScoredPairs = Sequence[tuple[ReviewCleaned, SentimentScored]]
#: (non-special tokens, unknown tokens) per text, in the order of the texts
TokenCounts = Sequence[tuple[int, int]]


@dataclass(frozen=True)
class TopicNames:
    """The topic names one worker uses (the canonical names behind an optional prefix)."""

    prefix: str = ""

    def name(self, canonical: str) -> str:
        return self.prefix + canonical

    @property
    def raw(self) -> str:
        return self.name(topics.REVIEWS_RAW)

    @property
    def clean(self) -> str:
        return self.name(topics.REVIEWS_CLEAN)

    @property
    def sentiment(self) -> str:
        return self.name(topics.SENTIMENT)

    @property
    def feedback(self) -> str:
        return self.name(topics.FEEDBACK)

    @property
    def drift_reports(self) -> str:
        return self.name(topics.DRIFT_REPORTS)

    @property
    def retrain_requests(self) -> str:
        return self.name(topics.RETRAIN_REQUESTS)

    @property
    def model_updates(self) -> str:
        return self.name(topics.MODEL_UPDATES)

    @property
    def shadow(self) -> str:
        return self.name(topics.SENTIMENT_SHADOW)

    @property
    def drift_observations(self) -> str:
        return self.name(topics.DRIFT_OBSERVATIONS)

    @property
    def predict_requests(self) -> str:
        return self.name(topics.PREDICT_REQUESTS)

    @property
    def predict_replies(self) -> str:
        return self.name(topics.PREDICT_REPLIES)

    def partitions(self, name: str, default: int) -> int:
        """Partitions of topic ``name``: one for the drift observations (one window), else
        ``default``."""
        return 1 if name == self.drift_observations else default

    def dlq(self, source: str) -> str:
        """The dead-letter topic of the (already prefixed) ``source`` topic."""
        return topics.dlq(source)

    def all(self) -> tuple[str, ...]:
        """Every topic the worker reads or writes."""
        return (self.raw, self.feedback, self.model_updates, self.predict_requests, *self.outputs())

    def outputs(self) -> tuple[str, ...]:
        """Every topic the worker writes to."""
        return (
            self.clean,
            self.sentiment,
            self.dlq(self.raw),
            self.dlq(self.clean),
            self.dlq(self.sentiment),
            # the closed loop (drift, feedback, triggers, shadow scoring)
            self.dlq(self.feedback),
            self.drift_reports,
            self.retrain_requests,
            self.shadow,
            self.drift_observations,
            # the gateway's ad-hoc requests (stream_processors.requests)
            self.predict_replies,
            self.dlq(self.predict_requests),
            self.dlq(self.predict_replies),
            # where the shadow sink and the drift windows put a record that fails by itself
            self.dlq(self.shadow),
            self.dlq(self.drift_observations),
        )


def raw_topic(app: faust.App, name: str, partitions: int | None = None) -> faust.TopicT:
    """A topic carrying raw bytes (the codec decodes; faust never does)."""
    return app.topic(
        name,
        key_type=bytes,
        value_type=bytes,
        key_serializer=RAW,
        value_serializer=RAW,
        partitions=partitions or app.conf.topic_partitions,
    )


def ensure_topics(settings: WorkerSettings, timeout_s: float = 30.0) -> list[str]:
    """Create the worker's topics that do not exist yet (before the consumer subscribes: faust
    ignores a source topic missing at subscription time until the next rebalance); return the
    names created. Raises :class:`WorkerConfigError` when Kafka refuses or does not answer.
    """
    names = TopicNames(settings.worker.topic_prefix)
    wanted = {n: names.partitions(n, settings.kafka.partitions) for n in names.all()}
    try:
        results = ensure_topics_on(
            settings.kafka.bootstrap_servers,
            list(wanted),
            wanted,
            settings.kafka.replication_factor,
            timeout_s=timeout_s,
            dlq_retention_ms=settings.kafka.dlq_retention_ms,
        )
    except ServiceUnavailable as exc:
        raise WorkerConfigError(f"{exc}; is Kafka running (`ulasan stack status`)?") from exc
    for r in results:
        if r.note:
            log.warning("topic %s %s (left as it is)", r.topic, r.note)
    return [r.topic for r in results if r.action == "created"]


# -- what agents depend on ------------------------------------------------------------------------
class Sink(Protocol):
    """Where scored batches are stored (``PostgresSink`` in a worker)."""

    async def write(self, batch: RowBatch) -> set[int]:
        """Write ``batch`` in one transaction (retrying while the store is away); return the
        indexes of the row sources the store refused for their content."""
        ...


class FeedbackStore(Protocol):
    """The closed loop's store (``feedback.store.LoopStore`` in a worker)."""

    async def record_feedback(self, events: Sequence[LabelFeedback]) -> list[Outcome]: ...

    async def reconcile(self, lookback_s: float = 3600.0) -> list[Outcome]: ...

    async def write_report(self, report: DriftReport) -> None: ...


@runtime_checkable
class Managed(Protocol):
    """A dependency with a pool to open when the worker starts and close when it stops."""

    async def open(self) -> None: ...

    async def close(self) -> None: ...


class TokenCounter(Protocol):
    """Counts (non-special tokens, unknown tokens) per text
    (``ulasan.core.inference.tokens.UnknownTokens``)."""

    def count(self, texts: Sequence[str]) -> list[tuple[int, int]]: ...


class ScoresObserver(Protocol):
    """The infer agent's hand-off: it calls ``observe`` with each stored batch's scores (the
    drift observations, ``drift.observe.ScoreObserver``, implement it), and the texts' token
    counts where the predictor made them while scoring (None: the observer counts)."""

    async def observe(self, pairs: ScoredPairs, counts: TokenCounts | None = None) -> None: ...


class ShadowScorer(Protocol):
    """Scores a champion batch's texts with the challenger (``inference.shadow.Shadow``)."""

    async def after_batch(
        self,
        items: Sequence[ScoreItem],
        champion: Sequence[SentimentScored],
        send: Callable[[SentimentScored], Awaitable[None]],
    ) -> None: ...


class Outputs:
    """Where agents publish: faust topics in a worker, in-memory channels in unit tests."""

    def __init__(
        self,
        channels: Mapping[str, ChannelT[Any]],
        *,
        metrics: WorkerMetrics,
        dlq_enabled: bool = True,
        dlq_max_payload_bytes: int | None = DLQ_MAX_PAYLOAD_BYTES,
    ) -> None:
        self.channels = dict(channels)
        self._metrics = metrics
        self._dlq_enabled = dlq_enabled
        self._dlq_max_payload_bytes = dlq_max_payload_bytes

    async def send(self, topic: str, key: bytes | None, event: Event) -> None:
        """Publish ``event`` (codec-encoded) to ``topic``."""
        await self.send_bytes(topic, key, encode(event))

    async def send_bytes(
        self,
        topic: str,
        key: bytes | None,
        value: bytes,
        partition: int | None = None,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> None:
        """Publish ``value`` to ``topic`` (``partition``: None = by key; ``headers``: Kafka
        record headers). Inside a guarded batch the delivery is awaited with the batch (see
        ``kafka.delivery``)."""
        await self.send_many(topic, [(key, value)], partition, headers)

    async def send_many(
        self,
        topic: str,
        messages: Sequence[tuple[bytes | None, bytes]],
        partition: int | None = None,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> None:
        """Publish ``(key, value)`` pairs to ``topic`` in order, as :meth:`send_bytes` does.

        A Kafka topic's messages go straight to the app's producer: the values are bytes
        already, so faust's per-message path (a future message, serialisers, sensors) adds
        nothing but Python work per record. The producer tracks each delivery future, and
        faust flushes it before committing offsets, as for a ``Topic.send``.
        """
        channel = self.channels[topic]
        if isinstance(channel, faust.Topic):
            producer = await channel.app.maybe_start_producer()
            send = producer.send
            for key, value in messages:
                delivery.track(await send(topic, key, value, partition, None, headers))
            return
        for key, value in messages:
            delivery.track(
                await channel.send(key=key, value=value, partition=partition, headers=headers)
            )

    async def dead_letter(self, rejected: Rejected, *, stage: str) -> None:
        """Send one rejected record to ``<topic>.dlq`` and count it; never raises for the record."""
        record, why = rejected.record, rejected.rejection
        self._metrics.stream_errors.labels(stage, why.reason).inc()
        self._metrics.dlq.labels(record.topic, why.reason).inc()
        log.warning(
            "dead letter from %s[%d]@%d at %s: %s: %s",
            record.topic,
            record.partition,
            record.offset,
            stage,
            why.reason,
            why.detail,
        )
        if not self._dlq_enabled:
            return
        letter = dead_letter(
            record.value,
            key=record.key,
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            rejection=why,
            stage=stage,
            max_payload_bytes=self._dlq_max_payload_bytes,
        )
        key = record.key
        if self._dlq_max_payload_bytes is not None and key is not None:
            key = key[: self._dlq_max_payload_bytes]
        await self.send(topics.dlq(record.topic), key, letter)


@dataclass
class LoopDeps:
    """What the closed-loop agents share beyond ``Deps``: settings groups, the store, caches."""

    drift: DriftConfig
    triggers: TriggerConfig
    store: FeedbackStore | None
    metrics: LoopMetrics
    #: the drift reference of each model version (None: it has none), loaded once
    references: dict[str, Reference | None] = field(default_factory=dict)
    #: the unknown-token counter of each model version (None: no serving folder), loaded once
    tokens: dict[str, TokenCounter | None] = field(default_factory=dict)


@dataclass
class Deps:
    """What the agents share: settings, metrics, the predictor holder and scorer, the sink."""

    settings: WorkerSettings
    metrics: WorkerMetrics
    predictor: PredictorHolder
    sink: Sink
    #: the challenger for shadow scoring (holds None when there is none); see inference.shadow
    shadow: PredictorHolder | None = None
    #: the closed loop's store, metrics and settings (None: no drift/feedback/trigger agents)
    loop: LoopDeps | None = None
    scorer: BatchScorer = field(init=False)
    topics: TopicNames = field(init=False)

    def __post_init__(self) -> None:
        self.scorer = BatchScorer(self.predictor)
        self.topics = TopicNames(self.settings.worker.topic_prefix)

    @classmethod
    def for_worker(cls, settings: WorkerSettings) -> Deps:
        """Load the configured model and build the PostgreSQL sink (pool not yet opened); in
        the requests lane (``worker.lane``) without the challenger and the closed loop."""
        folder, name, version = resolve_model(settings.worker.model, settings)
        predictor = OnnxPredictor.from_folder(
            folder,
            model_version=version,
            model_name=name,
            intra_op_threads=settings.worker.intra_op_threads,
            spinning=settings.worker.intra_op_spinning,
            batch_size=settings.worker.inference_batch,
        )
        log.info("loaded model %s version %s from %s", name, version, folder)
        metrics = WorkerMetrics()
        # the requests lane opens no pool: it stores nothing (the reviews lane logs replies)
        sink = PostgresSink(settings.postgres.dsn, settings.worker, metrics)
        deps = cls(settings, metrics, PredictorHolder(predictor), sink)
        if not settings.worker.runs_reviews:
            return deps  # the requests lane: no shadow scoring, no closed loop
        deps.shadow = PredictorHolder(None)  # type: ignore[arg-type]
        if settings.drift.enabled:
            deps.loop = LoopDeps(
                drift=settings.drift,
                triggers=settings.triggers,
                store=LoopStore(
                    settings.postgres.dsn,
                    connect_timeout_s=settings.worker.pg_connect_timeout_s,
                    retry_initial_s=settings.worker.pg_retry_initial_s,
                    retry_max_s=settings.worker.pg_retry_max_s,
                ),
                metrics=LoopMetrics(metrics.registry),
            )
        return deps
