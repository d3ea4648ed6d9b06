"""Publish a file's rows exactly once: read, parse, rate-limit, publish, checkpoint.

The checkpoint (``producer_checkpoints``) holds the last line whose events Kafka acknowledged.
It is written only after a flush succeeded, so a second run starts after it and publishes
nothing twice; a crash between a flush and its checkpoint means those rows are published again
on the next run (at-least-once), which the idempotent sink absorbs (keys are review ids).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from producers.checkpoints import CheckpointStore
from producers.files import BadRow, Format, Record, read_records
from producers.ratelimit import TokenBucket
from schemas.events import Event

#: What a row turns into: events to publish as ``(topic, key, event)``, the first one being
#: the row's own event (counted against ``--max``), or the reason the row is skipped.
Parsed = list[tuple[str, str, Event]] | BadRow
Parser = Callable[[Record, int], Parsed]


class EventSink(Protocol):
    """Where producers put events: :class:`producers.publish.Publisher` on Kafka."""

    def publish(self, topic: str, key: str, event: Event) -> None: ...

    def flush(self, timeout_s: float = 60.0) -> None: ...


@dataclass
class RunStats:
    """Counts of one run; ``published`` counts rows, ``extra_published`` their extra events."""

    published: int = 0
    extra_published: int = 0
    bad_rows: list[BadRow] = field(default_factory=list)
    already_done: int = 0
    last_line: int = 0
    passes: int = 1
    finished: bool = False
    resumed_from: tuple[int, int] | None = None
    started: float = field(default_factory=time.monotonic)
    elapsed_s: float = 0.0

    @property
    def events_per_s(self) -> float:
        return self.published / self.elapsed_s if self.elapsed_s > 0 else 0.0


@dataclass(frozen=True)
class FileSource:
    """A file and how to read it."""

    path: Path
    fmt: Format
    sep: str | None = None
    header: bool = True


def run_file(
    source: FileSource,
    parse: Parser,
    *,
    publisher: EventSink,
    checkpoints: CheckpointStore,
    producer: str,
    key: str,
    checkpoint_info: dict[str, Any] | None = None,
    rate: float | None = None,
    loop: bool = False,
    max_rows: int | None = None,
    from_start: bool = False,
    checkpoint_every: int = 1000,
    on_progress: Callable[[RunStats, int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> RunStats:
    """Publish the good rows of ``source`` after its checkpoint; report bad ones in the stats.

    ``rate`` limits rows per second (token bucket); ``loop`` starts over at the end of the file
    (the pass number goes into the parser, so each pass has its own ids); ``max_rows`` stops
    after that many published rows; ``from_start`` ignores (and overwrites) the checkpoint.
    ``on_progress(stats, line)`` is called after every row. KeyboardInterrupt and
    ``should_stop()`` end the run cleanly: what was queued is flushed and checkpointed.
    """
    stats = RunStats()
    previous = None if from_start else checkpoints.get(producer, key)
    done = (int(previous.get("pass", 0)), int(previous.get("line", 0))) if previous else (0, 0)
    if previous:
        stats.resumed_from = done
    totals = {
        "published": int(previous.get("published", 0)) if previous else 0,
        "bad": int(previous.get("bad", 0)) if previous else 0,
    }
    if previous and previous.get("finished") and not loop:
        stats.finished = True
        stats.last_line = done[1]
        return stats

    bucket = TokenBucket(rate) if rate else None
    pass_no = done[0]
    position = done  # (pass, line) of the last row handled and queued
    since_checkpoint = 0

    def commit(finished: bool) -> None:
        publisher.flush()
        checkpoints.put(
            producer,
            key,
            {
                **(checkpoint_info or {}),
                "pass": position[0],
                "line": position[1],
                "finished": finished,
                "published": totals["published"] + stats.published,
                "bad": totals["bad"] + len(stats.bad_rows),
            },
        )

    try:
        while True:
            stopped = False
            for record in read_records(
                source.path, source.fmt, sep=source.sep, header=source.header
            ):
                if (pass_no, record.line) <= done:
                    stats.already_done += 1
                    continue
                if (max_rows is not None and stats.published >= max_rows) or (
                    should_stop is not None and should_stop()
                ):
                    stopped = True
                    break
                parsed = (
                    BadRow(record.line, record.error)
                    if record.error is not None
                    else parse(record, pass_no)
                )
                if isinstance(parsed, BadRow):
                    stats.bad_rows.append(parsed)
                else:
                    if bucket is not None:
                        bucket.acquire()
                    for topic, event_key, event in parsed:
                        publisher.publish(topic, event_key, event)
                    stats.published += 1
                    stats.extra_published += len(parsed) - 1
                    since_checkpoint += 1
                position = (pass_no, record.line)
                stats.last_line = record.line
                if since_checkpoint >= checkpoint_every:
                    commit(finished=False)
                    since_checkpoint = 0
                if on_progress is not None:
                    on_progress(stats, record.line)
            if stopped or not loop:
                stats.finished = not stopped
                break
            pass_no += 1
            stats.passes += 1
    except KeyboardInterrupt:
        stats.elapsed_s = time.monotonic() - stats.started
        commit(finished=False)
        raise
    commit(finished=stats.finished and not loop)
    stats.elapsed_s = time.monotonic() - stats.started
    return stats
