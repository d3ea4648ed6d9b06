"""The retraining service: consume retrain.requests.v1, handle each request (one at a time),
publish promotions on model.updates.v1, commit the request's offset after its run is recorded.

A request whose run failed (MLflow or PostgreSQL away, say) is not committed: the consumer
seeks back to it and tries again after a doubling backoff, up to ``max_attempts`` tries; one
whose key another trainer's live lease holds is tried again when that lease expires. On start,
promotions recorded but never announced (a trainer died between the alias and the
announcement) are announced first.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from confluent_kafka import (
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)

from schemas import topics
from schemas.codec import CodecError, decode, encode
from schemas.events import ModelPromoted, RetrainRequested
from trainer.errors import TrainerError
from trainer.retrain.config import TrainerSettings
from trainer.retrain.metrics import RetrainMetrics
from trainer.retrain.request import Trainer, announce_pending, default_train, handle
from trainer.retrain.store import RunRecord, RunStore

log = logging.getLogger(__name__)


def warm_up() -> None:
    """Import the training stack now (torch, transformers, ONNX export, MLflow: tens of seconds
    on a busy machine), so that a request's time to promotion is training, not imports."""
    started = time.perf_counter()
    import torch  # noqa: F401
    from transformers import BertForSequenceClassification  # noqa: F401

    log.info("training stack imported in %.1fs", time.perf_counter() - started)


def serve(
    settings: TrainerSettings,
    *,
    max_requests: int | None = None,
    idle_timeout_s: float | None = None,
    train: Trainer = default_train,
    on_record: Callable[[RunRecord], None] | None = None,
    metrics: RetrainMetrics | None = None,
) -> list[RunRecord]:
    """Consume retrain.requests.v1 until stopped, ``max_requests`` handled, or
    ``idle_timeout_s`` without a request; the records of the handled requests (a run tried
    again appears once, with its last outcome). Every run and request is counted in
    ``metrics`` (a registry of its own, unserved, when None)."""
    cfg = settings.retrain
    metrics = metrics if metrics is not None else RetrainMetrics()
    consumer = Consumer(
        {
            "bootstrap.servers": settings.kafka.bootstrap_servers,
            "group.id": cfg.group_id,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            # a training can take far longer than the default 5 minutes between polls
            "max.poll.interval.ms": 24 * 3600 * 1000,
            "session.timeout.ms": int(cfg.session_timeout_s * 1000),
        }
    )
    publish = _publisher(settings)
    store = RunStore(settings.postgres.dsn)
    records: list[RunRecord] = []
    try:
        _announce_on_start(settings, store, publish)
        consumer.subscribe([cfg.topic_prefix + topics.RETRAIN_REQUESTS])
        if train is default_train:
            warm_up()
        idle_since = time.monotonic()
        while max_requests is None or len(records) < max_requests:
            msg = consumer.poll(1.0)
            if msg is None:
                if idle_timeout_s is not None and time.monotonic() - idle_since > idle_timeout_s:
                    break
                continue
            error = msg.error()
            if error is not None:
                if error.code() != KafkaError._PARTITION_EOF:
                    log.warning("retrain.requests consumer: %s", error)
                continue
            record = _handle_message(
                msg, settings, Handling(store, publish, train, metrics), consumer
            )
            if record is not None:
                records.append(record)
                if on_record is not None:
                    on_record(record)
            idle_since = time.monotonic()
    finally:
        consumer.close()
        store.close()
    return records


def _announce_on_start(
    settings: TrainerSettings, store: RunStore, publish: Callable[[ModelPromoted], None]
) -> None:
    """Announce what a dead trainer promoted but never announced (when no other trainer holds
    the lock: one that does announces it before its next request)."""
    if not store.try_lock():
        return
    try:
        announce_pending(settings, store, publish)
    finally:
        store.unlock()


@dataclass(frozen=True)
class Handling:
    """What handling a request uses: the run store, the announcer, the trainer, the metrics."""

    store: RunStore
    publish: Callable[[ModelPromoted], None]
    train: Trainer
    metrics: RetrainMetrics


def _handle_message(
    msg: Message, settings: TrainerSettings, using: Handling, consumer: Consumer
) -> RunRecord | None:
    """Handle one request message; commit it when its outcome is final, else wait (the retry
    backoff, or the live lease of another trainer) and seek back to it. The final record, or
    None (undecodable, or to be tried again)."""
    cfg = settings.retrain
    request = _decode(msg)
    if request is None:
        using.metrics.undecodable()
        consumer.commit(message=msg, asynchronous=False)
        return None
    record = handle(
        request,
        settings,
        using.store,
        using.publish,
        train=using.train,
        on_claimed=using.metrics.run_started,
    )
    using.metrics.observe(record)
    retry_in = _retry_in(record, cfg.max_attempts, cfg.retry_backoff_s, cfg.retry_backoff_max_s)
    if retry_in is None:
        consumer.commit(message=msg, asynchronous=False)
        return record
    log.warning(
        "retrain request %s: %s (attempt %d of %d), trying again in %.0fs",
        request.request_id,
        record.status,
        record.attempts,
        cfg.max_attempts,
        retry_in,
    )
    time.sleep(retry_in)
    try:
        consumer.seek(TopicPartition(str(msg.topic()), msg.partition() or 0, msg.offset() or 0))
    except KafkaException as exc:  # revoked meanwhile: its new owner reads it (uncommitted)
        log.warning("cannot seek back to retrain request %s: %s", request.request_id, exc)
    return None


def _retry_in(record: RunRecord, max_attempts: int, backoff_s: float, max_s: float) -> float | None:
    """Seconds to wait before trying ``record``'s request again; None: its outcome is final."""
    if record.status == "busy":
        return max(0.5, (record.retry_in_s or 0.0) + 0.5)
    if record.status == "failed" and record.attempts < max_attempts:
        return float(min(backoff_s * 2.0 ** (record.attempts - 1), max_s))
    return None


def _decode(msg: Any) -> RetrainRequested | None:
    """The request a message carries; None (logged) when it is undecodable."""
    try:
        return decode(msg.value(), RetrainRequested)
    except CodecError as exc:
        log.error(
            "undecodable retrain request at %s[%d]@%d skipped: %s",
            msg.topic(),
            msg.partition(),
            msg.offset(),
            exc,
        )
        return None


def _publisher(settings: TrainerSettings) -> Callable[[ModelPromoted], None]:
    """Publish a ``ModelPromoted`` on model.updates.v1 and wait for its delivery (raises
    :class:`TrainerError` when it was not delivered within ``announce_timeout_s``)."""
    cfg = settings.retrain
    target = cfg.topic_prefix + topics.MODEL_UPDATES
    producer = Producer(
        {
            "bootstrap.servers": settings.kafka.bootstrap_servers,
            "acks": "all",
            "message.timeout.ms": int(cfg.announce_timeout_s * 1000),
        }
    )

    def publish(event: ModelPromoted) -> None:
        failed: list[str] = []

        def on_delivery(err: Any, _msg: Any) -> None:
            if err is not None:
                failed.append(str(err))

        producer.produce(
            target, key=event.model_name.encode(), value=encode(event), on_delivery=on_delivery
        )
        left = producer.flush(cfg.announce_timeout_s + 5.0)
        if left or failed:
            producer.purge()  # a later try sends it again: no stale copy stays queued
            raise TrainerError(
                f"could not deliver the ModelPromoted of {event.version} to {target}: "
                f"{failed[0] if failed else 'not delivered in time'}"
            )

    return publish
