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


@dataclass(frozen=True)
class RunOptions:
    """How :func:`run_file` runs (see its docstring)."""

    producer: str
    key: str
    checkpoint_info: dict[str, Any] | None = None
    rate: float | None = None
    loop: bool = False
    max_rows: int | None = None
    from_start: bool = False
    checkpoint_every: int = 1000
    on_progress: Callable[[RunStats, int], None] | None = None
    should_stop: Callable[[], bool] | None = None


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
    options = RunOptions(
        producer=producer,
        key=key,
        checkpoint_info=checkpoint_info,
        rate=rate,
        loop=loop,
        max_rows=max_rows,
        from_start=from_start,
        checkpoint_every=checkpoint_every,
        on_progress=on_progress,
        should_stop=should_stop,
    )
    return _FileRun(source, parse, publisher, checkpoints, options).run()


class _FileRun:
    """One run of :func:`run_file`: the resume point, the passes over the file, the commits."""

    def __init__(
        self,
        source: FileSource,
        parse: Parser,
        publisher: EventSink,
        checkpoints: CheckpointStore,
        options: RunOptions,
    ) -> None:
        self.source = source
        self.parse = parse
        self.publisher = publisher
        self.checkpoints = checkpoints
        self.opt = options
        self.stats = RunStats()
        previous = None if options.from_start else checkpoints.get(options.producer, options.key)
        self.previous = previous or {}
        #: (pass, line) of the last row a previous run handled
        self.done = (int(self.previous.get("pass", 0)), int(self.previous.get("line", 0)))
        if previous:
            self.stats.resumed_from = self.done
        self.bucket = TokenBucket(options.rate) if options.rate else None
        self.pass_no = self.done[0]
        self.position = self.done  # (pass, line) of the last row handled and queued
        self.since_checkpoint = 0

    def run(self) -> RunStats:
        stats = self.stats
        if self.previous.get("finished") and not self.opt.loop:
            stats.finished = True
            stats.last_line = self.done[1]
            return stats
        try:
            while True:
                stopped = self._one_pass()
                if stopped or not self.opt.loop:
                    stats.finished = not stopped
                    break
                self.pass_no += 1
                stats.passes += 1
        except KeyboardInterrupt:
            stats.elapsed_s = time.monotonic() - stats.started
            self._commit(finished=False)
            raise
        self._commit(finished=stats.finished and not self.opt.loop)
        stats.elapsed_s = time.monotonic() - stats.started
        return stats

    def _one_pass(self) -> bool:
        """Read the file once from the top; True when the run was told to stop."""
        source = self.source
        for record in read_records(source.path, source.fmt, sep=source.sep, header=source.header):
            if (self.pass_no, record.line) <= self.done:
                self.stats.already_done += 1
                continue
            if self._should_stop():
                return True
            self._handle(record)
            if self.since_checkpoint >= self.opt.checkpoint_every:
                self._commit(finished=False)
                self.since_checkpoint = 0
            if self.opt.on_progress is not None:
                self.opt.on_progress(self.stats, record.line)
        return False

    def _should_stop(self) -> bool:
        max_rows, should_stop = self.opt.max_rows, self.opt.should_stop
        return (max_rows is not None and self.stats.published >= max_rows) or (
            should_stop is not None and should_stop()
        )

    def _handle(self, record: Record) -> None:
        """Parse one row and queue its events (rate limited), or note it as bad."""
        stats = self.stats
        parsed = (
            BadRow(record.line, record.error)
            if record.error is not None
            else self.parse(record, self.pass_no)
        )
        if isinstance(parsed, BadRow):
            stats.bad_rows.append(parsed)
        else:
            if self.bucket is not None:
                self.bucket.acquire()
            for topic, event_key, event in parsed:
                self.publisher.publish(topic, event_key, event)
            stats.published += 1
            stats.extra_published += len(parsed) - 1
            self.since_checkpoint += 1
        self.position = (self.pass_no, record.line)
        stats.last_line = record.line

    def _commit(self, finished: bool) -> None:
        """Flush what was queued, then record how far the run got (never before the flush)."""
        self.publisher.flush()
        self.checkpoints.put(
            self.opt.producer,
            self.opt.key,
            {
                **(self.opt.checkpoint_info or {}),
                "pass": self.position[0],
                "line": self.position[1],
                "finished": finished,
                "published": int(self.previous.get("published", 0)) + self.stats.published,
                "bad": int(self.previous.get("bad", 0)) + len(self.stats.bad_rows),
            },
        )
