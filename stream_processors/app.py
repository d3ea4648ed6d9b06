"""``create_app(settings, deps)``: the faust app of a stream worker (clean, infer and sink agents).

Topics are declared with the ``raw`` serialiser: agents get the record bytes and decode them
with ``schemas.codec`` themselves, so a bad record becomes a dead letter instead of a crash.
Building an app has no side effects; ``ulasan worker`` builds one and runs it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import faust
from faust.types import ChannelT

from schemas import topics
from schemas.codec import encode
from schemas.events import Event
from stream_processors.dlq import dead_letter
from stream_processors.errors import WorkerConfigError
from stream_processors.inference.batching import BatchScorer, PredictorHolder
from stream_processors.kafka import transport
from stream_processors.metrics import WorkerMetrics
from stream_processors.records import Rejected
from stream_processors.settings import WorkerSettings
from stream_processors.sink.postgres import PostgresSink
from ulasan.core.errors import ServiceUnavailable
from ulasan.core.kafka_admin import ensure_topics as ensure_topics_on

log = logging.getLogger(__name__)

RAW = "raw"


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
        )


class Outputs:
    """Where agents publish: faust topics in a worker, in-memory channels in unit tests."""

    def __init__(
        self,
        channels: Mapping[str, ChannelT[Any]],
        *,
        metrics: WorkerMetrics,
        dlq_enabled: bool = True,
    ) -> None:
        self.channels = dict(channels)
        self._metrics = metrics
        self._dlq_enabled = dlq_enabled

    async def send(self, topic: str, key: bytes | None, event: Event) -> None:
        """Publish ``event`` (codec-encoded) to ``topic``."""
        await self.channels[topic].send(key=key, value=encode(event))

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
        )
        await self.send(topics.dlq(record.topic), record.key, letter)


@dataclass
class Deps:
    """What the agents share: settings, metrics, the predictor holder and scorer, the sink."""

    settings: WorkerSettings
    metrics: WorkerMetrics
    predictor: PredictorHolder
    sink: Any  # PostgresSink in a worker; anything with ``async write(RowBatch) -> set[int]``
    #: the challenger for shadow scoring (holds None when there is none); see inference.shadow
    shadow: PredictorHolder | None = None
    #: the closed loop's store, metrics and settings (None: no drift/feedback/trigger agents)
    loop: Any = None
    scorer: BatchScorer = field(init=False)
    topics: TopicNames = field(init=False)

    def __post_init__(self) -> None:
        self.scorer = BatchScorer(self.predictor)
        self.topics = TopicNames(self.settings.worker.topic_prefix)

    @classmethod
    def for_worker(cls, settings: WorkerSettings) -> Deps:
        """Load the configured model and build the PostgreSQL sink (pool not yet opened)."""
        from ulasan.core.inference import OnnxPredictor
        from ulasan.core.registry import resolve_model

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
        sink = PostgresSink(settings.postgres.dsn, settings.worker, metrics)
        deps = cls(settings, metrics, PredictorHolder(predictor), sink)
        deps.shadow = PredictorHolder(None)  # type: ignore[arg-type]
        if settings.drift.enabled:
            from stream_processors.drift.agent import LoopDeps, LoopMetrics
            from stream_processors.feedback.store import LoopStore

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


def create_app(
    settings: WorkerSettings,
    deps: Deps | None = None,
    *,
    memory_outputs: bool = False,
) -> faust.App:
    """The faust app of one worker, with every agent registered.

    ``memory_outputs=True`` publishes to in-memory channels (``app.ulasan_outputs.channels``)
    instead of Kafka topics: that is how unit tests drive agents through ``test_context()``.
    """
    from stream_processors.cleaning import agent as clean_agent
    from stream_processors.inference import agent as infer_agent
    from stream_processors.requests import agent as requests_agent

    deps = deps if deps is not None else Deps.for_worker(settings)
    cfg = settings.worker
    app = faust.App(
        cfg.app_id,
        broker=f"kafka://{settings.kafka.bootstrap_servers}",
        store="memory://",
        # faust keeps a small per-app folder even with memory tables: keep it in state_dir
        datadir=str(settings.state_dir / "faust" / cfg.app_id),
        topic_partitions=settings.kafka.partitions,
        topic_replication_factor=settings.kafka.replication_factor,
        topic_disable_leader=True,
        broker_commit_interval=cfg.commit_interval_s,
        broker_session_timeout=cfg.session_timeout_s,
        broker_heartbeat_interval=cfg.heartbeat_interval_s,
        consumer_auto_offset_reset="earliest",
        # On a rebalance faust would wait for every fetched record to be acked; records parked
        # in take_events() buffers can hold that wait until the broker's rebalance timeout
        # (60 s, seen in the two-worker test). Every write here is idempotent, so let revoked
        # partitions go at once: in-flight records are replayed by the new owner, commits for
        # revoked partitions are discarded, nothing is lost (faust's documented trade-off).
        stream_wait_empty=False,
        producer_acks=-1,
        web_enabled=False,
        autodiscover=False,
        key_serializer=RAW,
        value_serializer=RAW,
    )
    if not memory_outputs:
        # acks that cannot commit a record skipped during a rebalance, and a watch on table
        # recovery (see transport.py)
        stalled = deps.metrics.stream_errors.labels("recovery", "stalled_changelog")
        transport.install(
            app,
            transport.RecoveryWatch(
                after_s=cfg.recovery_stall_s,
                on_stuck=stalled.inc,
                # give up (crash, so a supervisor restarts the worker) after ~2 fruitless minutes
                max_attempts=max(3, int(120 / cfg.recovery_stall_s)),
            ),
        )
    names = deps.topics
    channels: dict[str, ChannelT[Any]] = {
        name: app.channel(key_type=bytes, value_type=bytes, maxsize=100_000)
        if memory_outputs
        else topic(app, name, partitions=names.partitions(name, settings.kafka.partitions))
        for name in names.outputs()
    }
    outputs = Outputs(channels, metrics=deps.metrics, dlq_enabled=cfg.dlq_enabled)
    app.ulasan_deps = deps  # type: ignore[attr-defined]
    app.ulasan_outputs = outputs  # type: ignore[attr-defined]
    if deps.shadow is not None:
        from stream_processors.inference import shadow as shadow_scoring

        app.ulasan_shadow = shadow_scoring.Shadow(deps.shadow, deps.metrics.registry)  # type: ignore[attr-defined]
    app.ulasan_agents = {  # type: ignore[attr-defined]
        "clean": clean_agent.register(app, deps, outputs),
        "infer": infer_agent.register(app, deps, outputs),
        "requests": requests_agent.register(app, deps, outputs),
        "request_logs": requests_agent.register_log(app, deps, outputs),
    }
    if deps.shadow is not None:
        app.ulasan_agents["sink_shadow"] = shadow_scoring.register_sink(app, deps, outputs)  # type: ignore[attr-defined]
    if deps.loop is not None:
        from stream_processors.drift import agent as drift_agent

        app.ulasan_agents.update(drift_agent.register(app, deps, outputs, deps.loop))  # type: ignore[attr-defined]
    if not memory_outputs:
        _register_lifecycle(app, deps, outputs)
    return app


def topic(app: faust.App, name: str, partitions: int | None = None) -> faust.TopicT:
    """A topic carrying raw bytes (the codec decodes; faust never does)."""
    return app.topic(
        name,
        key_type=bytes,
        value_type=bytes,
        key_serializer=RAW,
        value_serializer=RAW,
        partitions=partitions or app.conf.topic_partitions,
    )


def _register_lifecycle(app: faust.App, deps: Deps, outputs: Outputs) -> None:
    """Open the sink, measure lag, close everything on shutdown."""

    @app.task  # type: ignore[untyped-decorator]
    async def _open_sink() -> None:
        if hasattr(deps.sink, "open"):
            await deps.sink.open()
        if deps.loop is not None and deps.loop.store is not None:
            await deps.loop.store.open()
        if deps.shadow is not None:
            from stream_processors.inference.reload import ModelReloader

            reloader = ModelReloader(
                deps.settings, deps.predictor, shadow=deps.shadow, registry=deps.metrics.registry
            )
            app.ulasan_reloader = reloader  # type: ignore[attr-defined]
            reloader.start(deps.topics.model_updates)

    watch = transport.StallWatch(after_s=deps.settings.worker.stall_seek_s)

    @app.timer(interval=deps.settings.worker.lag_interval_s)  # type: ignore[untyped-decorator]
    async def _measure_lag() -> None:
        await measure_lag(app, deps.metrics, watch)

    @app.on_before_shutdown.connect  # type: ignore[arg-type]
    async def _close(sender: Any, *args: Any, **kwargs: Any) -> None:
        deps.scorer.close()
        reloader = getattr(app, "ulasan_reloader", None)
        if reloader is not None:
            reloader.stop()
        if deps.loop is not None and deps.loop.store is not None:
            await deps.loop.store.close()
        if hasattr(deps.sink, "close"):
            await deps.sink.close()


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
    if watch is not None and not getattr(app, "rebalancing", False):
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
    committed = getattr(consumer, "_committed_offset", {})
    in_flight: dict[Any, set[int]] = {}
    for message in list(getattr(consumer, "_unacked_messages", ())):
        in_flight.setdefault(message.tp, set()).add(message.offset)
    watch.forget(assigned)
    for tp in assigned:
        end = ends.get(tp)
        if end is None or tp.topic.endswith("-changelog"):  # tables' own; faust restores them
            continue
        offset = committed.get(tp)
        if offset is None:
            continue
        # "idle": the record the commit waits for is not being processed (a slow batch holding
        # it is not a stall; a record never delivered, or delivered and dropped, is)
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
        )
    except ServiceUnavailable as exc:
        raise WorkerConfigError(f"{exc}; is Kafka running (`ulasan stack status`)?") from exc
    return [r.topic for r in results if r.action == "created"]
