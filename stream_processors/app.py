"""``create_app(settings, deps)``: the faust app of a stream worker, with the agents of its lane.

Building an app has no side effects; ``ulasan worker`` builds one and runs it. What the agents
are given (``Deps``, ``Outputs``, topic names) lives in ``stream_processors.wiring``.

Lanes (``worker.lane``): ``all`` registers every agent in one consumer group. ``requests``
registers only the predict-requests agent, in the consumer group ``<app_id>-requests`` with its
own model, scorer thread and hot reload, so a gateway request is scored as soon as it arrives
instead of waiting behind the review batches (and the event loop's per-record work) of a
backlog. ``reviews`` registers everything else, the request-logs agent included (replies ->
prediction_logs is bookkeeping off the request path).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import faust
from faust.types import ChannelT

from stream_processors.cleaning import agent as clean_agent
from stream_processors.drift import agent as drift_agent
from stream_processors.drift.models import ModelCaches
from stream_processors.drift.observe import ObservationSender, ScoreObserver
from stream_processors.inference import agent as infer_agent
from stream_processors.inference import shadow as shadow_scoring
from stream_processors.inference.reload import ModelReloader
from stream_processors.kafka import stall, transport
from stream_processors.requests import agent as requests_agent
from stream_processors.settings import WorkerSettings
from stream_processors.wiring import RAW, Deps, Managed, Outputs, raw_topic

__all__ = ["WorkerApp", "build", "create_app"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WorkerApp:
    """A built worker: the faust app, what its agents were given, and the agents by name."""

    app: faust.App
    deps: Deps
    outputs: Outputs
    agents: dict[str, Any]


def create_app(settings: WorkerSettings, deps: Deps | None = None) -> faust.App:
    """The faust app of one worker (``deps`` default: :meth:`Deps.for_worker`)."""
    return build(settings, deps).app


def build(
    settings: WorkerSettings, deps: Deps | None = None, *, memory_outputs: bool = False
) -> WorkerApp:
    """The worker's app with its agents and what they were given.

    ``memory_outputs=True`` publishes to in-memory channels (``outputs.channels``) instead of
    Kafka topics, and leaves out the transport and the lifecycle (sink pool, lag, hot reload):
    that is how unit tests drive agents through ``test_context()``.
    """
    deps = deps if deps is not None else Deps.for_worker(settings)
    app = _faust_app(settings)
    if not memory_outputs:
        _install_transport(app, settings, deps)
    names = deps.topics
    channels: dict[str, ChannelT[Any]] = {
        name: app.channel(key_type=bytes, value_type=bytes, maxsize=100_000)
        if memory_outputs
        else raw_topic(app, name, partitions=names.partitions(name, settings.kafka.partitions))
        for name in names.outputs()
    }
    outputs = Outputs(
        channels,
        metrics=deps.metrics,
        dlq_enabled=settings.worker.dlq_enabled,
        dlq_max_payload_bytes=settings.worker.dlq_max_payload_bytes,
    )
    shadow = (
        shadow_scoring.Shadow(deps.shadow, deps.metrics.registry)
        if deps.shadow is not None
        else None
    )
    # the drift/inference hand-off: the infer agent calls the observer with each stored batch,
    # which sends observations to the channel the drift windows read
    sender = ObservationSender(outputs.channels[names.drift_observations])
    models = ModelCaches(settings, deps.predictor, deps.loop) if deps.loop is not None else None
    observer = ScoreObserver(sender, models) if models is not None else None
    agents: dict[str, Any] = {}
    lane = settings.worker
    if lane.runs_reviews:
        stage = infer_agent.InferStage(deps, outputs, shadow, observer)
        if lane.clean_and_score:
            agents["clean"] = clean_agent.register(app, deps, outputs, then=stage)
        else:
            agents["clean"] = clean_agent.register(app, deps, outputs)
            agents["infer"] = infer_agent.register(app, deps, outputs, stage)
    if lane.runs_requests:
        agents["requests"] = requests_agent.register(app, deps, outputs)
    if lane.runs_reviews:
        # replies -> prediction_logs: off the request path, so with the reviews
        agents["request_logs"] = requests_agent.register_log(app, deps, outputs)
        if deps.shadow is not None:
            agents["sink_shadow"] = shadow_scoring.register_sink(app, deps, outputs)
        if deps.loop is not None and models is not None:
            agents.update(drift_agent.register(app, deps, outputs, deps.loop, sender, models))
    if not memory_outputs:
        _register_lifecycle(app, deps)
    return WorkerApp(app, deps, outputs, agents)


def _faust_app(settings: WorkerSettings) -> faust.App:
    cfg = settings.worker
    return faust.App(
        cfg.group,  # the requests lane has a consumer group of its own
        broker=f"kafka://{settings.kafka.bootstrap_servers}",
        store="memory://",
        # faust keeps a small per-app folder even with memory tables: keep it in state_dir
        datadir=str(settings.state_dir / "faust" / cfg.group),
        topic_partitions=settings.kafka.partitions,
        topic_replication_factor=settings.kafka.replication_factor,
        topic_disable_leader=True,
        broker_commit_interval=cfg.commit_interval_s,
        broker_session_timeout=cfg.session_timeout_s,
        broker_heartbeat_interval=cfg.heartbeat_interval_s,
        # where a group without committed offsets starts: reviews are data (from the oldest);
        # requests are ephemeral and deadline-bound (a gateway answers 504 after ~2 s), so a
        # new requests lane starts at the log end instead of reading expired requests
        consumer_auto_offset_reset="earliest" if cfg.runs_reviews else "latest",
        # On a rebalance faust would wait for every fetched record to be acked; records parked
        # in take_events() buffers can hold that wait until the broker's rebalance timeout
        # (60 s, seen in the two-worker test). Every write here is idempotent, so let revoked
        # partitions go at once: in-flight records are replayed by the new owner, commits for
        # revoked partitions are discarded, nothing is lost (faust's documented trade-off).
        stream_wait_empty=False,
        producer_acks=-1,
        # a reply waits for nobody: the requests lane sends each batch's replies at once
        producer_linger=0.0 if cfg.lane == "requests" else cfg.producer_linger_ms / 1000.0,
        web_enabled=False,
        autodiscover=False,
        key_serializer=RAW,
        value_serializer=RAW,
    )


def _install_transport(app: faust.App, settings: WorkerSettings, deps: Deps) -> None:
    """Acks that cannot commit a record skipped during a rebalance, and a watch on table
    recovery (see transport.py)."""
    cfg = settings.worker
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


def _reloader(deps: Deps) -> ModelReloader | None:
    """The hot reload of a worker: champion and challenger, or in the requests lane (which does
    no shadow scoring) the champion only; None for agents under test (no ``Deps.shadow``)."""
    registry = deps.metrics.registry
    if deps.shadow is not None:
        return ModelReloader(deps.settings, deps.predictor, shadow=deps.shadow, registry=registry)
    if not deps.settings.worker.runs_reviews:
        return ModelReloader(deps.settings, deps.predictor, challenger=False, registry=registry)
    return None


def _register_lifecycle(app: faust.App, deps: Deps) -> None:
    """Open the sink, measure lag, hot-reload the model, close everything on shutdown."""
    store = deps.loop.store if deps.loop is not None else None
    reloader = _reloader(deps)
    # the requests lane writes nothing to PostgreSQL: its sink's pool is never opened
    sink = deps.sink if deps.settings.worker.runs_reviews else None

    @app.task  # type: ignore[untyped-decorator]
    async def _open_sink() -> None:
        if isinstance(sink, Managed):
            await sink.open()
        if isinstance(store, Managed):
            await store.open()
        if reloader is not None:
            reloader.start(deps.topics.model_updates)

    watch = transport.StallWatch(after_s=deps.settings.worker.stall_seek_s)

    @app.timer(interval=deps.settings.worker.lag_interval_s)  # type: ignore[untyped-decorator]
    async def _measure_lag() -> None:
        await stall.measure_lag(app, deps.metrics, watch)

    @app.on_before_shutdown.connect  # type: ignore[arg-type]
    async def _close(sender: Any, *args: Any, **kwargs: Any) -> None:
        deps.scorer.close()
        if reloader is not None:
            reloader.stop()
        if isinstance(store, Managed):
            await store.close()
        if isinstance(sink, Managed):
            await sink.close()
