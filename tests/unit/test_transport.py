"""The workers' consumer refuses acks that could commit a record skipped during a rebalance."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from stream_processors.app import create_app
from stream_processors.settings import WorkerConfig, WorkerSettings
from stream_processors.transport import Consumer, Transport, ack_is_safe


@pytest.mark.parametrize(
    ("flow_active", "message_generation", "consumer_generation", "safe"),
    [
        (True, 3, 3, True),  # normal operation
        (False, 3, 3, False),  # a rebalance or shutdown suspended the flow: faust skips records
        (True, 2, 3, False),  # fetched before the last rebalance: read again from the commit
        (False, 2, 3, False),
    ],
)
def test_ack_is_safe(
    flow_active: bool, message_generation: int, consumer_generation: int, safe: bool
) -> None:
    assert (
        ack_is_safe(
            flow_active=flow_active,
            message_generation=message_generation,
            consumer_generation=consumer_generation,
        )
        is safe
    )


@dataclass
class Flow:
    active: bool

    def is_active(self) -> bool:
        return self.active


@dataclass
class App:
    flow_control: Flow
    consumer_generation_id: int = 3


@dataclass(eq=False)
class Message:
    generation_id: int
    acked: bool = False


@dataclass
class FakeConsumer:
    app: App
    _unacked_messages: set[Any] = field(default_factory=set)


def test_a_refused_ack_marks_the_record_done_but_never_committable() -> None:
    stale = Message(generation_id=2)
    consumer = FakeConsumer(App(Flow(active=True)))
    consumer._unacked_messages.add(stale)
    # refused before faust's bookkeeping is reached: no acked list, no offset recorded
    assert Consumer.ack(consumer, stale) is False  # type: ignore[arg-type]
    assert stale.acked and consumer._unacked_messages == set()

    skipped = Message(generation_id=3)
    suspended = FakeConsumer(App(Flow(active=False)))
    suspended._unacked_messages.add(skipped)
    assert Consumer.ack(suspended, skipped) is False  # type: ignore[arg-type]
    assert skipped.acked and suspended._unacked_messages == set()


def test_workers_consume_through_the_safe_transport() -> None:
    app = create_app(WorkerSettings(worker=WorkerConfig()), _deps())
    assert isinstance(app.transport, Transport)
    assert app.transport.Consumer is Consumer


def _deps() -> Any:
    from stream_processors.app import Deps
    from stream_processors.inference.batching import PredictorHolder
    from stream_processors.metrics import WorkerMetrics

    class NoSink:
        async def write(self, batch: Any) -> set[int]:
            raise AssertionError("not used")

    settings = WorkerSettings(worker=WorkerConfig())
    return Deps(settings, WorkerMetrics(), PredictorHolder(None), NoSink())
