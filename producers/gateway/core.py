"""The gateway core behind HTTP and gRPC: requests out as events, replies matched by request id.

One :class:`GatewayCore` per process. It publishes :class:`PredictionRequested` to
predict.requests.v1 (key ``request_id``) with ``reply_to`` = this instance's id and
``reply_partition`` = the one partition of predict.replies.v1 this instance reads (a hash of
its id); the worker sends every reply there, keyed by ``reply_to``. The instance reads only
that partition (manually assigned, from its end, no consumer group) and keeps replies whose
``reply_to`` is its own, so replicas never steal each other's replies. Each request waits on a
future under ``asyncio.timeout``: a missing reply ends in :class:`DeadlineExceeded`, never a
hang. Everything is asyncio (aiokafka); nothing blocks the event loop.

Readiness is what a caller would get: Kafka answers, the workers' consumer group holds every
partition of predict.requests.v1 (described with the admin client), and a request round-trips
(a probe, unless a real reply arrived within ``ready_window_s``). Errors a caller sees say what
failed in its terms; broker addresses, registry URLs and client exception texts stay out of
responses and logs (a log line names the exception type only).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
import uuid
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError
from confluent_kafka import ConsumerGroupState, KafkaException

from producers.gateway.errors import DeadlineExceeded, GatewayError, Unavailable
from producers.gateway.hops import HopRecorder, ReplyTrace, consumed_at
from producers.gateway.metrics import GatewayMetrics, Stats
from producers.gateway.settings import GatewaySettings
from producers.gateway.validation import check_label, check_subject, check_text, check_texts
from schemas import topics
from schemas.codec import CodecError, decode, encode
from schemas.events import LabelFeedback, ModelPromoted, PredictionRequested, SentimentScored
from ulasan.core.errors import CoreError
from ulasan.core.kafka_admin import admin_client, ensure_topics

log = logging.getLogger(__name__)


def reply_partition(instance_id: str, partitions: int) -> int:
    """The predict.replies.v1 partition an instance reads: a stable hash of its id."""
    return zlib.crc32(instance_id.encode("utf-8")) % partitions


def default_instance_id() -> str:
    return f"gw-{socket.gethostname()}-{uuid.uuid4().hex[:8]}"


@dataclass
class Pending:
    """One request awaiting ``n`` replies (one per text, by index); ``last`` is the trace of
    the reply that completed it (the gateway's clock: epoch seconds)."""

    n: int
    future: asyncio.Future[list[SentimentScored]]
    got: dict[int, SentimentScored] = field(default_factory=dict)
    sent_at: float = 0.0
    last: ReplyTrace | None = None

    def add(
        self, scored: SentimentScored, got_at: float | None = None, consumed: float | None = None
    ) -> None:
        if scored.index >= self.n or self.future.done():
            return
        self.got[scored.index] = scored
        if len(self.got) == self.n:
            got = time.time() if got_at is None else got_at
            self.last = ReplyTrace(self.sent_at, got, consumed, scored)
            self.future.set_result([self.got[i] for i in range(self.n)])


@dataclass(frozen=True)
class Prediction:
    """A request's answer: one scored event per text, the round-trip time, and the timestamps
    its hops are cut from (:mod:`producers.gateway.hops`)."""

    request_id: str
    results: list[SentimentScored]
    latency_ms: float
    trace: ReplyTrace | None = None


@dataclass
class ServingModel:
    """The model the workers answered with most recently."""

    model_name: str
    model_version: str
    seen_at: datetime


class GatewayCore:
    """Kafka producer and reply reader of one gateway instance; shared by HTTP and gRPC."""

    def __init__(self, settings: GatewaySettings, metrics: GatewayMetrics | None = None) -> None:
        self.settings = settings
        self.cfg = settings.gateway
        self.metrics = metrics or GatewayMetrics()
        self.stats = Stats()
        self.hops = HopRecorder(self.metrics.hops, self.cfg.hop_trace_size)
        self.instance_id = self.cfg.instance_id or default_instance_id()
        prefix = self.cfg.topic_prefix
        self.requests_topic = prefix + topics.PREDICT_REQUESTS
        self.replies_topic = prefix + topics.PREDICT_REPLIES
        self.feedback_topic = prefix + topics.FEEDBACK
        self.updates_topic = prefix + topics.MODEL_UPDATES
        self.partition: int | None = None
        self.serving: ServingModel | None = None
        self.last_reply_monotonic: float | None = None
        self.last_miss_monotonic: float | None = None  # the last request that missed its deadline
        self.started_at = datetime.now(UTC)
        self._pending: dict[str, Pending] = {}
        self._producer: Any = None
        self._consumer: Any = None
        self._admin: Any = None
        self._reader: asyncio.Task[None] | None = None
        self._readiness: asyncio.Task[dict[str, Any]] | None = None

    # -- lifecycle -----------------------------------------------------------------------------
    async def start(self) -> None:
        """Ensure the topics, connect the producer, assign this instance's reply partition at
        its end. Raises :class:`Unavailable` when Kafka does not answer."""

        bootstrap = self.settings.kafka.bootstrap_servers
        await asyncio.to_thread(self._ensure_topics)
        self._producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap,
            client_id=f"{self.settings.kafka.client_id}-{self.instance_id}",
            acks=1,
            linger_ms=0,
            enable_idempotence=False,
        )
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap,
            client_id=f"{self.settings.kafka.client_id}-{self.instance_id}-replies",
            group_id=None,
            enable_auto_commit=False,
            fetch_max_wait_ms=100,
            auto_offset_reset="latest",
        )
        try:
            await self._producer.start()
            await self._consumer.start()
            parts = await self._producer.partitions_for(self.replies_topic)
            self.partition = reply_partition(self.instance_id, len(parts))
            tp = TopicPartition(self.replies_topic, self.partition)
            self._consumer.assign([tp])
            await self._consumer.seek_to_end(tp)
            await self._consumer.position(tp)  # resolve the end now, before any request
        except KafkaError as exc:
            await self.stop()
            raise Unavailable(
                f"Kafka at {bootstrap} does not answer ({type(exc).__name__}); is it running "
                "(`ulasan stack status`)?"
            ) from exc
        self._admin = admin_client(bootstrap)
        self._reader = asyncio.create_task(self._read_replies(), name="gateway-replies")
        log.info("gateway %s reads %s[%d]", self.instance_id, self.replies_topic, self.partition)

    def _ensure_topics(self) -> None:
        names = [
            self.requests_topic,
            self.replies_topic,
            topics.dlq(self.requests_topic),
            self.feedback_topic,
            self.updates_topic,
        ]
        kafka = self.settings.kafka
        try:
            ensure_topics(
                kafka.bootstrap_servers, names, kafka.partitions, kafka.replication_factor
            )
        except CoreError as exc:
            log.error("creating the gateway's topics failed: %s", type(exc).__name__)
            raise Unavailable(
                f"cannot create the gateway's topics on Kafka at {kafka.bootstrap_servers}; is "
                "it running (`ulasan stack status`)?"
            ) from exc

    async def stop(self) -> None:
        if self._readiness is not None:
            self._readiness.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):  # shutting down
                await self._readiness
            self._readiness = None
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):  # shutting down
                await self._reader
            self._reader = None
        for pending in self._pending.values():
            if not pending.future.done():
                pending.future.set_exception(Unavailable("the gateway is shutting down"))
        for client in (self._consumer, self._producer):
            if client is not None:
                try:
                    await client.stop()
                except Exception as exc:  # noqa: BLE001 - shutting down; say it and go on
                    log.warning("closing a Kafka client failed: %r", exc)
        self._consumer = self._producer = self._admin = None

    # -- replies -------------------------------------------------------------------------------
    async def _read_replies(self) -> None:
        while True:
            try:
                batches = await self._consumer.getmany(timeout_ms=500, max_records=1000)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a broker hiccup: say so, keep reading
                log.warning("reading replies failed (%s), retrying", type(exc).__name__)
                await asyncio.sleep(0.5)
                continue
            for records in batches.values():
                got_at = time.time()
                for record in records:
                    self.on_reply(record.value, record.headers, got_at)

    def on_reply(
        self,
        value: bytes,
        headers: Sequence[tuple[str, bytes]] = (),
        got_at: float | None = None,
    ) -> None:
        """Match one predict.replies.v1 record to its waiting request (``headers``: the
        record's Kafka headers; ``got_at``: when it was read, epoch seconds)."""
        try:
            scored = decode(value, SentimentScored)
        except CodecError as exc:
            self.metrics.replies.labels("undecodable").inc()
            log.error("undecodable reply on %s (%s)", self.replies_topic, exc.reason)
            return
        if scored.reply_to != self.instance_id or scored.request_id is None:
            self.metrics.replies.labels("foreign").inc()
            return
        self.last_reply_monotonic = time.monotonic()
        self.serving = ServingModel(scored.model_name, scored.model_version, datetime.now(UTC))
        pending = self._pending.get(scored.request_id)
        if pending is None:
            self.metrics.replies.labels("late").inc()
            return
        self.metrics.replies.labels("matched").inc()
        pending.add(scored, got_at, consumed_at(headers))

    # -- operations ----------------------------------------------------------------------------
    async def predict(
        self, texts: list[str], *, deadline_s: float | None = None, record: bool = True
    ) -> Prediction:
        """Score ``texts`` (1-100, validated) through the workers; raises
        :class:`InvalidInput`, :class:`DeadlineExceeded` or :class:`Unavailable`."""
        texts = check_texts(texts)
        budget = deadline_s if deadline_s is not None else self.cfg.deadline_s
        if self._producer is None:
            raise Unavailable("the gateway is not connected to Kafka")
        request_id = uuid.uuid4().hex
        started = time.perf_counter()
        request = PredictionRequested(
            request_id=request_id,
            texts=texts,
            reply_to=self.instance_id,
            reply_partition=self.partition,
            deadline=datetime.now(UTC) + timedelta(seconds=budget),
        )
        future: asyncio.Future[list[SentimentScored]] = asyncio.get_running_loop().create_future()
        pending = self._pending[request_id] = Pending(len(texts), future)
        try:
            async with asyncio.timeout(budget):
                value = encode(request)
                pending.sent_at = time.time()
                await self._send(self.requests_topic, request_id, value)
                results = await future
        except TimeoutError:
            self.last_miss_monotonic = time.monotonic()
            if record:
                self.stats.record("deadline", 0.0)
            got = len(self._pending[request_id].got)
            raise DeadlineExceeded(
                f"no reply within the {budget:g} s deadline ({got} of {len(texts)} texts scored);"
                " are stream workers running (`ulasan worker`) and keeping up?"
            ) from None
        except GatewayError:
            if record:
                self.stats.record("unavailable", 0.0)
            raise
        finally:
            self._pending.pop(request_id, None)
        latency_ms = (time.perf_counter() - started) * 1000.0
        if record:
            self.stats.record("ok", latency_ms, [r.label for r in results])
        return Prediction(request_id, results, latency_ms, pending.last)

    async def predict_one(self, text: str, *, deadline_s: float | None = None) -> Prediction:
        return await self.predict([check_text(text)], deadline_s=deadline_s)

    async def _send(self, topic: str, key: str, value: bytes) -> None:

        try:
            await self._producer.send_and_wait(topic, value=value, key=key.encode("utf-8"))
        except KafkaError as exc:
            log.warning("publishing to %s failed (%s)", topic, type(exc).__name__)
            raise Unavailable(
                "the request could not be queued (Kafka did not take it); retry shortly"
            ) from exc

    async def feedback(
        self, *, label: str, review_id: str | None = None, request_id: str | None = None
    ) -> LabelFeedback:
        """Publish a human label for a review (or an ad-hoc request) to feedback.v1."""
        _, subject = check_subject(review_id, request_id)
        event = LabelFeedback(
            feedback_id=uuid.uuid4().hex,
            review_id=subject,
            label=check_label(label),
            source="human",
        )
        if self._producer is None:
            raise Unavailable("the gateway is not connected to Kafka")
        await self._send(self.feedback_topic, subject, encode(event))
        return event

    async def kafka_ok(self, timeout_s: float = 2.0) -> str | None:
        """None when Kafka answers a metadata request within ``timeout_s``, else why not."""
        if self._producer is None:
            return "not connected"
        try:
            async with asyncio.timeout(timeout_s):
                await self._producer.client.fetch_all_metadata()
        except TimeoutError:
            return f"Kafka did not answer within {timeout_s:g} s"
        except Exception as exc:  # any client error means "not reachable" here
            log.warning("Kafka metadata request failed (%s)", type(exc).__name__)
            return "Kafka does not answer"
        return None

    async def workers_hold_requests(self, timeout_s: float = 3.0) -> str | None:
        """None when the workers' consumer group is stable and its members hold every
        partition of predict.requests.v1, else what is missing (in a caller's terms)."""
        group = self.cfg.worker_group
        if self._admin is None or self._producer is None:
            return "not connected"
        try:
            async with asyncio.timeout(timeout_s):
                partitions = await self._producer.partitions_for(self.requests_topic)
            described = await asyncio.to_thread(self._describe_group, group, timeout_s)
        except (KafkaException, KafkaError, TimeoutError) as exc:
            log.warning("describing consumer group %s failed (%s)", group, type(exc).__name__)
            return f"the worker group {group!r} could not be described; is Kafka up?"
        if not described.members:
            return f"no worker has joined the group {group!r}: start `ulasan worker`"
        if described.state != ConsumerGroupState.STABLE:
            return f"the worker group {group!r} is rebalancing ({described.state.name.lower()})"
        held = {
            tp.partition
            for member in described.members
            for tp in (member.assignment.topic_partitions if member.assignment else [])
            if tp.topic == self.requests_topic
        }
        missing = sorted(set(partitions or ()) - held) if partitions else []
        if not partitions or missing:
            return (
                f"no worker of {group!r} holds partition(s) {missing or 'any'} of "
                f"{self.requests_topic}: requests there would wait"
            )
        return None

    def _describe_group(self, group: str, timeout_s: float) -> Any:
        futures = self._admin.describe_consumer_groups([group], request_timeout=timeout_s)
        return futures[group].result(timeout=timeout_s + 1.0)

    async def readiness(self) -> dict[str, Any]:
        """Kafka reachable, the workers' group holding the request partitions, and a request
        round trip (a recent reply, or a probe). Concurrent callers share one evaluation."""
        task = self._readiness
        if task is None or task.done():
            task = self._readiness = asyncio.create_task(self._evaluate_readiness())
        return await asyncio.shield(task)

    async def _evaluate_readiness(self) -> dict[str, Any]:
        checks: dict[str, Any] = {}
        problem = await self.kafka_ok()
        checks["kafka"] = {"ok": problem is None, **({"error": problem} if problem else {})}
        workers = await self.workers_hold_requests() if problem is None else "Kafka does not answer"
        checks["workers"] = {
            "ok": workers is None,
            "group": self.cfg.worker_group,
            **({"error": workers} if workers else {}),
        }
        last, miss = self.last_reply_monotonic, self.last_miss_monotonic
        # a recent reply proves workers answer, unless a request has missed its deadline since
        recent = (
            last is not None
            and time.monotonic() - last < self.cfg.ready_window_s
            and (miss is None or miss < last)
        )
        if not recent and problem is None and workers is None:
            try:
                await self.predict(
                    ["siap melayani"], deadline_s=self.cfg.probe_deadline_s, record=False
                )
                recent = True
            except GatewayError as exc:
                checks["replies"] = {"ok": False, "error": str(exc)}
        if "replies" not in checks:
            checks["replies"] = {"ok": recent and workers is None}
        serving = self.serving
        checks["model"] = {
            "ok": checks["replies"]["ok"] and serving is not None,
            **(
                {"model_name": serving.model_name, "model_version": serving.model_version}
                if serving
                else {}
            ),
        }
        return {"ready": all(c["ok"] for c in checks.values()), "checks": checks}

    def info(self) -> dict[str, Any]:
        return {
            "service": "ulasan-gateway",
            "instance_id": self.instance_id,
            "started_at": self.started_at.isoformat(),
            "topics": {"requests": self.requests_topic, "replies": self.replies_topic},
            "reply_partition": self.partition,
            "deadline_s": self.cfg.deadline_s,
        }

    # -- model registry ------------------------------------------------------------------------
    async def registry_champion(self) -> dict[str, Any]:
        """The registered model's champion version from MLflow's REST API; raises
        :class:`Unavailable` when MLflow does not answer or has no such alias."""

        name, alias = self.settings.mlflow.registered_model, self.cfg.champion_alias
        url = f"{self.settings.mlflow.uri}/api/2.0/mlflow/registered-models/alias"
        try:
            async with httpx.AsyncClient(timeout=3.0) as client:
                resp = await client.get(url, params={"name": name, "alias": alias})
        except httpx.HTTPError as exc:
            log.warning("the model registry did not answer (%s)", type(exc).__name__)
            raise Unavailable("the model registry does not answer; try again later") from exc
        if resp.status_code != 200:
            log.info("the model registry answered HTTP %d for %s@%s", resp.status_code, name, alias)
            raise Unavailable(
                f"the model registry has no {name}@{alias}; train and promote a model "
                "(`ulasan train`, `ulasan promote`)"
            )
        version = resp.json().get("model_version", {})
        return {"name": name, "alias": alias, "version": str(version.get("version", ""))}

    async def model_info(self) -> dict[str, Any]:
        serving = self.serving
        out: dict[str, Any] = {
            "serving": None
            if serving is None
            else {
                "model_name": serving.model_name,
                "model_version": serving.model_version,
                "seen_at": serving.seen_at.isoformat(),
            }
        }
        try:
            out["registry"] = await self.registry_champion()
        except Unavailable as exc:
            out["registry"] = {"error": str(exc)}
        return out

    async def announce_reload(self) -> ModelPromoted:
        """Forced reload: re-announce the registry's champion on model.updates.v1; every worker
        serving ``@champion`` resolves it again and swaps between batches if it differs."""
        champion = await self.registry_champion()
        event = ModelPromoted(
            model_name=champion["name"],
            version=champion["version"],
            alias=champion["alias"],
            previous_version=self.serving.model_version if self.serving else None,
            model_uri=f"models:/{champion['name']}/{champion['version']}",
        )
        if self._producer is None:
            raise Unavailable("the gateway is not connected to Kafka")
        await self._send(self.updates_topic, champion["name"], encode(event))
        return event
