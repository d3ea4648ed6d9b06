"""The retraining service: consume retrain.requests.v1, handle each request (one at a time),
publish promotions on model.updates.v1, commit the request's offset after its run is recorded."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from confluent_kafka import Consumer, KafkaError, Producer

from schemas import topics
from schemas.codec import CodecError, decode, encode
from schemas.events import ModelPromoted, RetrainRequested
from trainer.errors import TrainerError
from trainer.retrain.config import TrainerSettings
from trainer.retrain.request import Trainer, default_train, handle
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
) -> list[RunRecord]:
    """Consume retrain.requests.v1 until stopped, ``max_requests`` handled, or
    ``idle_timeout_s`` without a request; the records of the handled requests."""
    cfg = settings.retrain
    consumer = Consumer(
        {
            "bootstrap.servers": settings.kafka.bootstrap_servers,
            "group.id": cfg.group_id,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            # a training can take far longer than the default 5 minutes between polls
            "max.poll.interval.ms": 24 * 3600 * 1000,
        }
    )
    publish = _publisher(settings)
    store = RunStore(settings.postgres.dsn)
    records: list[RunRecord] = []
    consumer.subscribe([cfg.topic_prefix + topics.RETRAIN_REQUESTS])
    if train is default_train:
        warm_up()
    idle_since = time.monotonic()
    try:
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
            request = _decode(msg)
            if request is None:
                consumer.commit(message=msg, asynchronous=False)
                continue
            record = handle(request, settings, store, publish, train=train)
            consumer.commit(message=msg, asynchronous=False)
            records.append(record)
            if on_record is not None:
                on_record(record)
            idle_since = time.monotonic()
    finally:
        consumer.close()
        store.close()
    return records


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
    """Publish a ``ModelPromoted`` on model.updates.v1 and wait for its delivery."""
    target = settings.retrain.topic_prefix + topics.MODEL_UPDATES
    producer = Producer({"bootstrap.servers": settings.kafka.bootstrap_servers, "acks": "all"})

    def publish(event: ModelPromoted) -> None:
        producer.produce(target, key=event.model_name.encode(), value=encode(event))
        if producer.flush(30) != 0:
            raise TrainerError(
                f"could not deliver the ModelPromoted of {event.version} to {target}"
            )

    return publish
