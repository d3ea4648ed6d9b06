"""Integration tests run against the real local stack: a service that does not answer FAILS them.

``ulasan stack up`` starts the stack (``make test`` does it). Tests get unique topic names from
:func:`kafka_topics`, which deletes what it created afterwards, so runs never see each other's
records.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import pytest
from confluent_kafka.admin import AdminClient

from deploy.local.manager import service_problems
from ulasan.core.kafka_admin import ensure_topics
from ulasan.core.settings import Settings


def unique(prefix: str) -> str:
    """``<prefix>-<12 hex>``: a name no other test run uses."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def delete_topics(bootstrap: str, names: list[str], prefix: str | None = None) -> None:
    """Delete ``names`` and, with ``prefix``, every topic whose name starts with it."""

    admin = AdminClient({"bootstrap.servers": bootstrap})
    doomed = set(names)
    if prefix:
        doomed |= {t for t in admin.list_topics(timeout=10).topics if t.startswith(prefix)}
    if not doomed:
        return
    for future in admin.delete_topics(sorted(doomed), operation_timeout=30).values():
        try:
            future.result()
        except Exception as exc:
            # a topic that is already gone is fine; anything else should be seen
            if "UNKNOWN_TOPIC_OR_PART" not in str(exc):
                raise


@pytest.fixture(scope="session")
def settings() -> Settings:
    """The settings every integration test uses (the shared local stack by default)."""
    return Settings()


@pytest.fixture(scope="session", autouse=True)
def local_stack(settings: Settings) -> Settings:
    """Check once that Kafka, PostgreSQL, MLflow and Prometheus answer; fail (never skip) if not."""

    problems = service_problems(settings)
    if problems:
        lines = "\n".join(f"  {name}: {reason}" for name, reason in problems.items())
        pytest.fail(
            f"the local stack is not healthy:\n{lines}\nrun `ulasan stack up` (or `make stack-up`)",
            pytrace=False,
        )
    return settings


class TopicFactory:
    """Fresh topics for one test; :meth:`cleanup` deletes them (and any prefix asked for)."""

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        self.created: list[str] = []
        self.prefixes: list[str] = []

    def new(self, partitions: int = 1, prefix: str = "it") -> str:
        """Create ``test.<prefix>-<hex>`` with ``partitions`` partitions; return its name."""

        name = unique(f"test.{prefix}")
        ensure_topics(self.bootstrap, [name], partitions, 1)
        self.created.append(name)
        return name

    def delete_later(self, prefix: str) -> None:
        """Also delete every topic starting with ``prefix`` (e.g. a faust app's changelogs)."""
        self.prefixes.append(prefix)

    def cleanup(self) -> None:
        delete_topics(self.bootstrap, self.created)
        for prefix in self.prefixes:
            delete_topics(self.bootstrap, [], prefix)


@pytest.fixture
def kafka_topics(settings: Settings) -> Iterator[TopicFactory]:
    """Unique topics per test (``kafka_topics.new(partitions=3)``), deleted afterwards."""
    factory = TopicFactory(settings.kafka.bootstrap_servers)
    yield factory
    factory.cleanup()


@pytest.fixture
def unique_name() -> Callable[[str], str]:
    """``unique_name(prefix)`` -> ``<prefix>-<12 hex>``, a name no other test run uses."""
    return unique
