"""The one door to faust's and aiokafka's private names, checked when this module is imported.

The workers' delivery guarantees rest on faust internals that no release promises to keep: the
consumer's ack bookkeeping, its committed offsets, the stream's buffering hooks, recovery's
timestamps. Every read or write of such a name goes through a function here, and importing this
module checks that the installed versions are the pinned ones (:data:`PINS`, the same as in
``pyproject.toml``) and that every name in :data:`REQUIRED` still exists with the shape relied
on: a method with the same parameters, an instance attribute still assigned where it was. A
mismatch raises :class:`FaustIncompatible` naming what changed, before a worker consumes a
record, instead of letting a renamed attribute turn a guard into a silent no-op.

Upgrading faust: bump the pins (here and in ``pyproject.toml``), run the unit tests and the
integration tests that drive the real classes (``tests/integration/test_faust_compat.py``),
and re-read each workaround's upstream reference below.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import inspect
import re
from collections.abc import Callable, Iterable, Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any

from faust.app.base import App
from faust.streams import Stream
from faust.tables.recovery import Recovery
from faust.transport import consumer as base_consumer
from faust.transport.conductor import Conductor
from faust.transport.drivers import aiokafka as driver
from faust.types import TP
from faust.types import tuples as faust_tuples

from stream_processors.errors import StreamProcessorError

#: The exact distributions the names below were read from (keep equal to pyproject.toml).
PINS: Mapping[str, str] = {
    "faust-streaming": "0.15.3",
    "aiokafka": "0.14.0",
    "mode-streaming": "0.7.1",
}


class FaustIncompatible(StreamProcessorError):
    """The installed faust/aiokafka is not the one the worker's workarounds were written for."""


@dataclass(frozen=True)
class Method:
    """``owner.name`` must exist, callable with exactly these parameter names."""

    owner: type
    name: str
    params: tuple[str, ...]
    why: str

    def problem(self) -> str | None:
        where = f"{self.owner.__module__}.{self.owner.__qualname__}.{self.name}"
        if not hasattr(self.owner, self.name):
            return f"{where} is gone ({self.why})"
        found = tuple(inspect.signature(getattr(self.owner, self.name)).parameters)
        if found != self.params:
            return f"{where} now takes {found}, expected {self.params} ({self.why})"
        return None


@dataclass(frozen=True)
class Attribute:
    """An instance attribute: still assigned (``x.name = ...``) in one of ``assigned_in``, the
    names of ``owner``'s methods whose source sets it."""

    owner: type
    name: str
    assigned_in: tuple[str, ...]
    why: str

    def problem(self) -> str | None:
        where = f"{self.owner.__module__}.{self.owner.__qualname__}.{self.name}"
        pattern = re.compile(rf"\.{re.escape(self.name)}\s*(?::[^=\n]+)?=(?!=)")
        for method in self.assigned_in:
            if not hasattr(self.owner, method):
                return f"{where}: {self.owner.__qualname__}.{method} is gone ({self.why})"
            try:
                source = inspect.getsource(getattr(self.owner, method))
            except (OSError, TypeError) as exc:
                return f"{where}: cannot read {method}'s source to check it ({exc})"
            if pattern.search(source):
                return None
        return f"{where} is no longer assigned in {', '.join(self.assigned_in)} ({self.why})"


@dataclass(frozen=True)
class ModuleName:
    """A module-level name faust does not export."""

    module: Any
    name: str
    why: str

    def problem(self) -> str | None:
        if not hasattr(self.module, self.name):
            return f"{self.module.__name__}.{self.name} is gone ({self.why})"
        return None


Requirement = Method | Attribute | ModuleName

_Consumer = base_consumer.Consumer
#: Every private (or undocumented) faust name the workers use, and why.
REQUIRED: tuple[Requirement, ...] = (
    # -- overridden by stream_processors.kafka.transport.Consumer ------------------------------
    Method(_Consumer, "ack", ("self", "message"), "refused for records faust skips"),
    Method(_Consumer, "getmany", ("self", "timeout"), "per-partition contiguity check"),
    Method(_Consumer, "perform_seek", ("self",), "drops records fetched during the seek"),
    Method(
        driver.Consumer,
        "on_partitions_assigned",
        ("self", "assigned", "generation_id"),
        "pauses stream partitions until recovery seeks them",
    ),
    Method(_Consumer, "_add_gap", ("self", "tp", "offset_from", "offset_to"), "gaps stay open"),
    Method(_Consumer, "_new_offset", ("self", "tp"), "no commit past the committed record"),
    # -- overridden by stream_processors.kafka.transport.Producer (public, but overridden) ------
    Method(
        driver.Producer,
        "send",
        ("self", "topic", "key", "value", "partition", "timestamp", "headers", "transactional_id"),
        "delivery futures awaited by the batch (faust only logs a failed delivery)",
    ),
    # -- the consumer's bookkeeping --------------------------------------------------------------
    Attribute(_Consumer, "_committed_offset", ("__init__",), "the next offset to read per tp"),
    Attribute(_Consumer, "_acked", ("__init__",), "acked offsets per tp, not yet committed"),
    Attribute(_Consumer, "_gap", ("__init__",), "offsets faust counts as done"),
    Attribute(_Consumer, "_unacked_messages", ("__init__",), "messages in flight"),
    Attribute(Conductor, "_tp_index", ("__init__",), "the channels a partition is delivered to"),
    Attribute(asyncio.Queue, "_queue", ("_init",), "records delivered, not yet read by a stream"),
    Attribute(_Consumer, "_read_offset", ("__init__",), "logged when recovery stalls"),
    Attribute(_Consumer, "_paused_partitions", ("_reset_state",), "logged when recovery stalls"),
    Attribute(_Consumer, "_active_partitions", ("_reset_state",), "logged when recovery stalls"),
    ModuleName(faust_tuples, "ack_lock", "ack bookkeeping is one critical section"),
    # -- consumer generations (faust-streaming#221, PR #223) --------------------------------
    Attribute(faust_tuples.Message, "generation_id", ("__init__",), "fetched in which generation"),
    Attribute(
        driver.ConsumerRebalanceListener,
        "consumer_generation_id",
        ("on_partitions_assigned",),
        "the generation faust compares messages with",
    ),
    Attribute(App, "rebalancing", ("on_rebalance_start",), "no stall seek mid-rebalance"),
    # -- table recovery --------------------------------------------------------------------------
    Attribute(Recovery, "_active_events_received_at", ("__init__",), "recovery stall watch"),
    Attribute(Recovery, "_recovery_started_at", ("_set_recovery_started",), "recovery stall watch"),
    # -- the stream's buffering hooks (take_ready does what take_events does) ------------------
    Method(Stream, "_enable_passive", ("self", "channel", "declare"), "consume in the background"),
    Attribute(Stream, "_processors", ("__init__",), "the buffering processor is removed"),
    Method(Stream, "_set_current_event", ("self", "event"), "table writes of a batch"),
)


def version_problems(
    installed: Callable[[str], str] = importlib.metadata.version,
    pins: Mapping[str, str] = PINS,
) -> list[str]:
    """One line per distribution whose installed version is not the pinned one."""
    problems = []
    for dist, pinned in pins.items():
        try:
            found = installed(dist)
        except importlib.metadata.PackageNotFoundError:
            found = "not installed"
        if found != pinned:
            problems.append(f"{dist} is {found}, the workarounds were written for {pinned}")
    return problems


def name_problems(required: Iterable[Requirement] = REQUIRED) -> list[str]:
    """One line per required name that is gone or changed shape."""
    return [p for r in required if (p := r.problem()) is not None]


def check(
    installed: Callable[[str], str] = importlib.metadata.version,
    required: Iterable[Requirement] = REQUIRED,
) -> None:
    """Raise :class:`FaustIncompatible` listing every version and name that changed."""
    problems = version_problems(installed) + name_problems(required)
    if problems:
        lines = "\n".join(f"  - {p}" for p in problems)
        raise FaustIncompatible(
            "faust/aiokafka changed under stream_processors/kafka/compat.py:\n"
            f"{lines}\n"
            "install the pinned versions (uv sync), or port the workarounds to the new ones"
        )


def check_overrides(cls: type, base: type) -> type:
    """Check ``cls``, a subclass of faust's ``base``; return it.

    Each method ``cls`` defines that ``base`` also has must be one :data:`REQUIRED` lists (so
    nothing overrides faust unchecked) and take the same parameters; a name ``cls`` adds (its
    own state included, see ``__annotations__``) must not be one of faust's (a faust release
    adding it would be shadowed silently).
    """
    listed = {r.name for r in REQUIRED if isinstance(r, Method) and r.owner in base.__mro__}
    problems = []
    # what the class machinery (ABCMeta, mode's Service) puts in any subclass's namespace
    machinery = set(vars(type("Probe", (base,), {})))
    own = (set(vars(cls)) - machinery) | set(vars(cls).get("__annotations__", {}))
    # faust's names: its class attributes and methods, annotated and known instance attributes
    theirs = set(dir(base)) | {
        r.name for r in REQUIRED if isinstance(r, Method | Attribute) and r.owner in base.__mro__
    }
    for klass in base.__mro__:
        theirs |= set(vars(klass).get("__annotations__", {}))
    for name in sorted(own):
        if name.startswith("__"):
            continue  # Python's own (``__init__`` keeps faust's parameters through *args)
        if name not in theirs:
            continue
        if name not in listed:
            problems.append(f"{cls.__qualname__}.{name} shadows faust's and is not in REQUIRED")
            continue
        mine = tuple(inspect.signature(getattr(cls, name)).parameters)
        faust_params = tuple(inspect.signature(getattr(base, name)).parameters)
        if mine != faust_params:
            problems.append(f"{cls.__qualname__}.{name}{mine} differs from faust's {faust_params}")
    if problems:
        raise FaustIncompatible("\n".join(problems))
    return cls


# -- the consumer ------------------------------------------------------------------------------


def committed_offsets(consumer: Any) -> MutableMapping[TP, int | None]:
    """faust's committed offset per partition: the *next* offset to read, as read at the last
    seek and moved by commits (None: nothing committed; forgotten on revoke)."""
    offsets: MutableMapping[TP, int | None] = consumer._committed_offset
    return offsets


def acked_offsets(consumer: Any, tp: TP) -> list[int]:
    """Offsets of ``tp`` acked since the last commit (faust's list, not a copy)."""
    acked: list[int] = consumer._acked[tp]
    return acked


def in_flight(consumer: Any) -> dict[TP, set[int]]:
    """The offsets of the messages delivered and not acked yet, per partition."""
    out: dict[TP, set[int]] = {}
    for message in list(consumer._unacked_messages):
        out.setdefault(message.tp, set()).add(message.offset)
    return out


def queued(app: Any) -> dict[TP, set[int]]:
    """The offsets of the records delivered into a channel's buffer that no stream has read
    yet, per partition.

    faust counts a message as in flight (``_unacked_messages``) only once a stream reads it from
    its channel's queue; the records behind a busy agent (up to ``stream_buffer_maxsize`` per
    channel) are in no such set while they wait there.
    """
    out: dict[TP, set[int]] = {}
    channels = {id(c): c for cs in list(app.topics._tp_index.values()) for c in list(cs)}
    for channel in channels.values():
        for event in list(channel.queue._queue):
            message = getattr(event, "message", None)
            if message is not None:
                out.setdefault(message.tp, set()).add(message.offset)
    return out


def withhold(consumer: Any, message: Any) -> None:
    """Mark ``message`` done without making its offset committable.

    Done as far as waiting goes (a shutdown or rebalance does not wait for it: it leaves the
    consumer's unacked set), but never recorded as acked, so the commit stops before it and
    the next owner of the partition reads it again. Under faust's ``ack_lock``, as its own
    ``Consumer.ack``.
    """
    with faust_tuples.ack_lock:
        message.acked = True
        consumer._unacked_messages.discard(message)


def fetch_state(consumer: Any, tp: TP) -> tuple[int | None, bool, bool]:
    """faust's read offset for ``tp``, whether it is paused, whether it is active."""
    active = consumer._active_partitions
    return (
        consumer._read_offset.get(tp),
        tp in consumer._paused_partitions,
        active is not None and tp in active,
    )


# -- generations and rebalances ------------------------------------------------------------


def message_generation(message: Any) -> int | None:
    """The consumer generation ``message`` was fetched in (faust-streaming#221, PR #223)."""
    generation: int | None = message.generation_id
    return generation


def consumer_generation(app: Any) -> int:
    """The app's current consumer generation (set by faust's rebalance listener)."""
    return int(app.consumer_generation_id)


def rebalancing(app: Any) -> bool:
    """Whether a rebalance has started and not finished."""
    return bool(app.rebalancing)


# -- table recovery ----------------------------------------------------------------------------


def recovery_started_at(recovery: Any) -> float | None:
    """When the running recovery started (monotonic seconds), None when none runs."""
    started: float | None = recovery._recovery_started_at
    return started


def recovery_events_received_at(recovery: Any) -> dict[TP, float]:
    """When recovery last got a record, per active changelog partition (monotonic seconds)."""
    return dict(recovery._active_events_received_at)


# -- streams -----------------------------------------------------------------------------------


def enable_passive(stream: Any, channel: Any) -> None:
    """Consume ``stream`` in the background through its processors, as ``take_events`` does."""
    stream._enable_passive(channel)


def remove_processor(stream: Any, processor: Any) -> None:
    """Undo ``stream.add_processor(processor)`` (faust has no public way)."""
    stream._processors.remove(processor)


def set_current_event(stream: Any, event: Any) -> None:
    """Make ``event`` the stream's current event: faust sends a table write to the changelog
    partition of the current event, which ``take_events`` leaves unset."""
    stream._set_current_event(event)


check()
