"""Kafka topic administration shared by every process: one ``ensure_topics``, one admin client.

The worker, the gateway, the local stack and the benchmarks create their topics through here, so
the partition counts and the "already exists" handling are the same everywhere.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AdminClient,
    ConfigResource,
    NewTopic,
    ResourceType,
)

from schemas.topics import DLQ_SUFFIX, all_topics_with_dlq
from ulasan.core.errors import ServiceUnavailable
from ulasan.core.settings import Settings

_QUIET: dict[str, Any] = {"log_level": 0, "log.connection.close": False}
RETENTION_MS = "retention.ms"
#: Dead-letter topics keep their records 30 days unless told otherwise (the broker's 7 days
#: is short for a record that waits for a fix and a replay).
DEFAULT_DLQ_RETENTION_MS = 30 * 86_400_000


def admin_client(bootstrap: str) -> AdminClient:
    """A confluent-kafka AdminClient that does not print connection errors to stderr."""
    conf: dict[str, Any] = {"bootstrap.servers": bootstrap, **_QUIET}
    return AdminClient(conf)


def metadata_error(bootstrap: str, timeout_s: float = 2.0) -> str | None:
    """None when a broker at ``bootstrap`` answers a metadata request, else why not."""
    admin = admin_client(bootstrap)
    try:
        meta = admin.list_topics(timeout=timeout_s)
    except KafkaException as exc:
        return f"no metadata from {bootstrap}: {exc.args[0].str() if exc.args else exc}"
    if not meta.brokers:
        return f"{bootstrap} answered without any broker"
    return None


@dataclass(frozen=True)
class TopicResult:
    """What :func:`ensure_topics` did for one topic: ``created`` or ``exists``; note on mismatch."""

    topic: str
    action: str
    partitions: int
    note: str = ""


def topic_configs(
    topics: Sequence[str],
    configs: Mapping[str, Mapping[str, str]] | None = None,
    dlq_retention_ms: int | None = DEFAULT_DLQ_RETENTION_MS,
) -> dict[str, dict[str, str]]:
    """The topic-level configs to create each of ``topics`` with: ``configs[topic]``, plus
    ``retention.ms`` = ``dlq_retention_ms`` for every dead-letter topic (``<topic>.dlq``)."""
    out: dict[str, dict[str, str]] = {}
    for topic in topics:
        conf = dict((configs or {}).get(topic, {}))
        if dlq_retention_ms is not None and topic.endswith(DLQ_SUFFIX):
            conf.setdefault(RETENTION_MS, str(dlq_retention_ms))
        if conf:
            out[topic] = conf
    return out


def ensure_topics(
    bootstrap: str,
    topics: Sequence[str],
    partitions: int | Mapping[str, int],
    replication_factor: int,
    timeout_s: float = 30.0,
    *,
    configs: Mapping[str, Mapping[str, str]] | None = None,
    dlq_retention_ms: int | None = DEFAULT_DLQ_RETENTION_MS,
) -> list[TopicResult]:
    """Create the ``topics`` that do not exist yet; idempotent.

    An existing topic with another partition count is left as it is and reported in ``note``
    (Kafka cannot shrink a topic, and growing one changes the key -> partition mapping).
    ``partitions`` is one count for every topic, or a count per topic name. New topics get
    :func:`topic_configs` (``configs`` per topic name; dead-letter topics ``retention.ms`` =
    ``dlq_retention_ms``, 30 days by default); an existing topic whose config differs is left
    as it is and reported in ``note`` too.
    Raises :class:`ServiceUnavailable` when the broker refuses or does not answer in time.
    """
    wanted = {t: partitions if isinstance(partitions, int) else partitions[t] for t in topics}
    conf = topic_configs(topics, configs, dlq_retention_ms)
    admin = admin_client(bootstrap)
    deadline = time.monotonic() + timeout_s
    created = _create_missing(
        admin, bootstrap, wanted, replication_factor, deadline, timeout_s, conf
    )
    meta = _settled_metadata(admin, bootstrap, created, deadline, timeout_s)
    differing = _config_differences(admin, bootstrap, conf, set(topics) - created, timeout_s)
    results = []
    for topic in topics:
        have = len(meta.topics[topic].partitions) if topic in meta.topics else 0
        want = wanted[topic]
        notes = [] if have == want else [f"has {have} partitions, settings say {want}"]
        notes += differing.get(topic, [])
        action = "created" if topic in created else "exists"
        results.append(TopicResult(topic, action, have, "; ".join(notes)))
    return results


def _config_differences(
    admin: AdminClient,
    bootstrap: str,
    wanted: Mapping[str, Mapping[str, str]],
    existing: set[str],
    timeout_s: float,
) -> dict[str, list[str]]:
    """Per existing topic of ``wanted``: ``"<name> is X, settings say Y"`` for each config
    whose value on the broker is another one."""
    resources = [ConfigResource(ResourceType.TOPIC, t) for t in sorted(existing & set(wanted))]
    if not resources:
        return {}
    out: dict[str, list[str]] = {}
    futures = admin.describe_configs(resources, request_timeout=timeout_s)
    for resource, future in futures.items():
        try:
            entries = future.result()
        except KafkaException as exc:
            raise ServiceUnavailable(
                f"kafka at {bootstrap}: reading the config of {resource.name} failed: {exc}"
            ) from exc
        for name, want in wanted[resource.name].items():
            entry = entries.get(name)
            have = entry.value if entry is not None else None
            if have != want:
                out.setdefault(resource.name, []).append(f"{name} is {have}, settings say {want}")
    return out


def topic_retention_ms(bootstrap: str, topic: str, timeout_s: float = 10.0) -> int | None:
    """``retention.ms`` of ``topic`` on the broker (None: unlimited, -1, or not set)."""
    admin = admin_client(bootstrap)
    resource = ConfigResource(ResourceType.TOPIC, topic)
    try:
        entries = admin.describe_configs([resource], request_timeout=timeout_s)[resource].result()
    except KafkaException as exc:
        raise ServiceUnavailable(f"kafka at {bootstrap}: reading {topic}'s config failed") from exc
    entry = entries.get(RETENTION_MS)
    if entry is None or entry.value is None or int(entry.value) < 0:
        return None
    return int(entry.value)


def _create_missing(
    admin: AdminClient,
    bootstrap: str,
    wanted: Mapping[str, int],
    replication_factor: int,
    deadline: float,
    timeout_s: float,
    configs: Mapping[str, Mapping[str, str]],
) -> set[str]:
    """Create each topic of ``wanted`` (name -> partitions, with ``configs[name]``), retrying
    retriable refusals until ``deadline``; the names created by this call (an existing topic
    is not an error)."""
    created: set[str] = set()
    pending = list(wanted)
    while pending:
        new = [
            NewTopic(
                t,
                num_partitions=wanted[t],
                replication_factor=replication_factor,
                config=dict(configs.get(t, {})),
            )
            for t in pending
        ]
        futures = admin.create_topics(new, operation_timeout=timeout_s, request_timeout=timeout_s)
        retry = []
        for topic, future in futures.items():
            try:
                future.result()
                created.add(topic)
            except KafkaException as exc:
                err = exc.args[0]
                if err.code() == KafkaError.TOPIC_ALREADY_EXISTS:
                    continue
                if err.retriable() and time.monotonic() < deadline:
                    retry.append(topic)
                    continue
                raise ServiceUnavailable(
                    f"kafka at {bootstrap}: creating {topic} failed: {err.str()}"
                ) from exc
        pending = retry
        if pending:
            time.sleep(0.5)
    return created


def _settled_metadata(
    admin: AdminClient, bootstrap: str, created: set[str], deadline: float, timeout_s: float
) -> Any:
    """The cluster metadata once every topic in ``created`` lists its partitions (or at the
    deadline): the broker's metadata cache lags a creation by a moment, so a topic created just
    now can be listed with no partitions yet."""
    while True:
        try:
            meta = admin.list_topics(timeout=timeout_s)
        except KafkaException as exc:
            raise ServiceUnavailable(f"kafka at {bootstrap} did not answer: {exc}") from exc
        settled = all(t in meta.topics and meta.topics[t].partitions for t in created)
        if settled or time.monotonic() >= deadline:
            return meta
        time.sleep(0.2)


def ensure_ulasan_topics(settings: Settings) -> list[TopicResult]:
    """Create every topic of :func:`schemas.topics.all_topics_with_dlq` per the settings."""
    return ensure_topics(
        settings.kafka.bootstrap_servers,
        all_topics_with_dlq(),
        settings.kafka.partitions,
        settings.kafka.replication_factor,
        dlq_retention_ms=settings.kafka.dlq_retention_ms,
    )
