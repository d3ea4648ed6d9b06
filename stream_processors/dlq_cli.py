"""``ulasan dlq list|show|replay``: inspect the dead-letter topics and re-publish their records.

A dead letter (``<topic>.dlq``, :class:`schemas.events.DeadLetter`) keeps the original key and
value bytes and where they came from. ``replay`` produces those bytes again, with their key, to
the source topic, after the cause was fixed (a model that failed, PostgreSQL refusing a row):
every write downstream is keyed (reviews by review_id, scores by event id), so replaying a
record that was meanwhile processed is harmless. A truncated dead letter (its value was larger
than the worker's limit) cannot be replayed and is reported as such.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import typer
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from rich.console import Console
from rich.table import Column, Table

from schemas.codec import CodecError, decode
from schemas.events import DeadLetter
from schemas.topics import DLQ_SUFFIX
from ulasan.core.errors import ServiceUnavailable
from ulasan.core.kafka_admin import admin_client, topic_retention_ms
from ulasan.core.settings import Settings

console = Console()
dlq_app = typer.Typer(
    help="Dead letters: list the <topic>.dlq topics, show their records, replay them.",
    no_args_is_help=True,
)

PREVIEW_CHARS = 80


@dataclass(frozen=True)
class Stored:
    """One record of a dead-letter topic: where it sits, and the letter (None: undecodable)."""

    partition: int
    offset: int
    letter: DeadLetter | None
    error: str = ""


@dataclass(frozen=True)
class Selection:
    """Which dead letters a command takes: by reason code, source partition, source offsets."""

    reason: str | None = None
    partition: int | None = None
    first_offset: int | None = None
    last_offset: int | None = None

    def takes(self, letter: DeadLetter) -> bool:
        if self.reason is not None and letter.error_type != self.reason:
            return False
        if self.partition is not None and letter.partition != self.partition:
            return False
        if self.first_offset is not None and letter.offset < self.first_offset:
            return False
        return self.last_offset is None or letter.offset <= self.last_offset


def parse_offsets(text: str | None) -> tuple[int | None, int | None]:
    """``"A-B"`` -> (A, B), ``"A-"`` -> (A, None), ``"-B"`` -> (None, B), ``"A"`` -> (A, A)."""
    if not text:
        return None, None
    first, sep, last = text.partition("-")
    try:
        lo = int(first) if first else None
        hi = (int(last) if last else None) if sep else lo
    except ValueError as exc:
        raise typer.BadParameter(f"{text!r} is not an offset range like 100-200") from exc
    if lo is not None and hi is not None and hi < lo:
        raise typer.BadParameter(f"{text!r}: the range ends before it starts")
    return lo, hi


def preview(payload: bytes, chars: int = PREVIEW_CHARS) -> str:
    """The first ``chars`` characters of ``payload`` as text (invalid UTF-8 replaced)."""
    text = payload[: chars * 4].decode("utf-8", errors="replace").replace("\n", " ")
    return text if len(text) <= chars else text[: chars - 1] + "…"


def dlq_topics(bootstrap: str, prefix: str = "") -> list[str]:
    """The dead-letter topics on the broker whose names start with ``prefix``."""
    try:
        meta = admin_client(bootstrap).list_topics(timeout=10)
    except Exception as exc:
        raise ServiceUnavailable(f"kafka at {bootstrap} did not answer: {exc}") from exc
    return sorted(t for t in meta.topics if t.endswith(DLQ_SUFFIX) and t.startswith(prefix))


def _consumer(bootstrap: str) -> Consumer:
    return Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"ulasan-dlq-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "log_level": 0,
        }
    )


def counts(bootstrap: str, topic: str) -> dict[int, int]:
    """Records per partition of ``topic`` (log end minus log start)."""
    consumer = _consumer(bootstrap)
    try:
        meta = consumer.list_topics(topic, timeout=10).topics[topic]
        out = {}
        for p in sorted(meta.partitions):
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            out[p] = high - low
        return out
    finally:
        consumer.close()


def read(bootstrap: str, topic: str, timeout_s: float = 30.0) -> list[Stored]:
    """Every record of ``topic`` now on the broker, decoded as dead letters, in partition and
    offset order. Raises :class:`ServiceUnavailable` when they cannot all be read in time."""
    consumer = _consumer(bootstrap)
    try:
        meta = consumer.list_topics(topic, timeout=10).topics[topic]
        if meta.error is not None:
            raise ServiceUnavailable(f"{topic}: {meta.error.str()}")
        ends: dict[int, int] = {}
        starts = []
        for p in meta.partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            if high > low:
                ends[p] = high
                starts.append(TopicPartition(topic, p, low))
        consumer.assign(starts)
        return sorted(_drain(consumer, ends, timeout_s), key=lambda s: (s.partition, s.offset))
    finally:
        consumer.close()


def _drain(consumer: Consumer, ends: dict[int, int], timeout_s: float) -> list[Stored]:
    out: list[Stored] = []
    done = {p: False for p in ends}
    waited = 0.0
    while not all(done.values()):
        msgs = consumer.consume(500, timeout=0.5)
        waited = 0.0 if msgs else waited + 0.5
        if waited > timeout_s:
            left = [p for p, d in done.items() if not d]
            raise ServiceUnavailable(f"partitions {left} did not deliver their records in time")
        for m in msgs:
            err = m.error()
            if err is not None:
                if err.code() != KafkaError._PARTITION_EOF:
                    raise ServiceUnavailable(f"reading dead letters failed: {err.str()}")
                continue
            partition, offset = m.partition() or 0, m.offset() or 0
            out.append(_stored(partition, offset, m.value()))
            if offset + 1 >= ends[partition]:
                done[partition] = True
    return out


def _stored(partition: int, offset: int, value: bytes | None) -> Stored:
    try:
        return Stored(partition, offset, decode(value, DeadLetter))
    except CodecError as exc:
        return Stored(partition, offset, None, f"{exc.reason}: {exc.detail}")


def replay(
    bootstrap: str, letters: Iterable[DeadLetter], *, dry_run: bool = False
) -> tuple[int, int]:
    """Produce each letter's original key and value to its source topic and wait for every
    delivery; skip truncated letters. Returns (replayed, skipped)."""
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "log_level": 0})
    failures: list[str] = []

    def delivered(err: KafkaError | None, _msg: object) -> None:
        if err is not None:
            failures.append(err.str())

    sent = skipped = 0
    for letter in letters:
        if letter.truncated:
            skipped += 1
            continue
        sent += 1
        if dry_run:
            continue
        producer.produce(
            letter.source_topic, key=letter.key, value=letter.payload, on_delivery=delivered
        )
        producer.poll(0)
    left = producer.flush(60)
    if left or failures:
        raise ServiceUnavailable(
            f"{left + len(failures)} of {sent} replayed records were not delivered"
            + (f": {failures[0]}" if failures else "")
        )
    return sent, skipped


# -- the commands ------------------------------------------------------------------------------
def _settings() -> Settings:
    return Settings()


def _fail(exc: Exception) -> typer.Exit:
    console.print(f"[red]{exc}[/red]; is Kafka running (`ulasan stack status`)?")
    return typer.Exit(2)


@dlq_app.command("list")
def list_command(
    prefix: str = typer.Option("", "--prefix", help="only topics whose name starts with this"),
) -> None:
    """Every dead-letter topic with its record count and retention."""
    bootstrap = _settings().kafka.bootstrap_servers
    try:
        names = dlq_topics(bootstrap, prefix)
        table = Table("records", "partitions", "retention (days)")
        table.columns.insert(0, Column("topic", overflow="fold"))  # names in full, for copying
        for name in names:
            per = counts(bootstrap, name)
            retention = topic_retention_ms(bootstrap, name)
            days = "-" if retention is None else f"{retention / 86_400_000:g}"
            table.add_row(name, str(sum(per.values())), str(len(per)), days)
    except ServiceUnavailable as exc:
        raise _fail(exc) from exc
    console.print(table if names else f"no dead-letter topics on {bootstrap}")


def _selection(reason: str | None, partition: int | None, offsets: str | None) -> Selection:
    first, last = parse_offsets(offsets)
    return Selection(reason, partition, first, last)


REASON = typer.Option(None, "--reason", help="only this reason code (e.g. sink_rejected)")
PARTITION = typer.Option(None, "--partition", help="only records from this source partition")
OFFSETS = typer.Option(None, "--offsets", help="source offsets A-B (A-, -B or A also work)")


@dlq_app.command("show")
def show_command(
    topic: str = typer.Argument(..., help="a dead-letter topic, e.g. reviews.raw.v1.dlq"),
    reason: str | None = REASON,
    partition: int | None = PARTITION,
    offsets: str | None = OFFSETS,
    limit: int = typer.Option(50, "--max", min=1, help="show at most this many"),
    as_json: bool = typer.Option(False, "--json", help="one JSON object per line"),
) -> None:
    """The dead letters of TOPIC: reason, source topic/partition/offset, size and a preview."""
    selection = _selection(reason, partition, offsets)
    try:
        stored = read(_settings().kafka.bootstrap_servers, topic)
    except ServiceUnavailable as exc:
        raise _fail(exc) from exc
    everything = selection == Selection()
    picked = [
        s
        for s in stored
        if (s.letter is None and everything) or (s.letter is not None and selection.takes(s.letter))
    ]
    if as_json:
        for s in picked[:limit]:
            typer.echo(json.dumps(_as_json(s), ensure_ascii=False))
        return
    _print_table(topic, picked[:limit])
    console.print(f"{len(picked)} of {len(stored)} dead letters match")


def _as_json(s: Stored) -> dict[str, object]:
    if s.letter is None:
        return {"dlq_partition": s.partition, "dlq_offset": s.offset, "undecodable": s.error}
    d = s.letter
    return {
        "dlq_partition": s.partition,
        "dlq_offset": s.offset,
        "error_type": d.error_type,
        "reason": d.reason,
        "stage": d.stage,
        "source_topic": d.source_topic,
        "partition": d.partition,
        "offset": d.offset,
        "size": d.payload_size if d.payload_size is not None else len(d.payload),
        "sha256": d.payload_sha256,
        "truncated": d.truncated,
        "failed_at": d.failed_at.isoformat(),
        "preview": preview(d.payload),
    }


def _print_table(topic: str, picked: Sequence[Stored]) -> None:
    table = Table("dlq p@offset", "reason", "stage", "source p@offset", "bytes", "preview")
    for s in picked:
        d = s.letter
        if d is None:
            table.add_row(f"{s.partition}@{s.offset}", f"[red]{s.error}[/red]", "", "", "", "")
            continue
        size = d.payload_size if d.payload_size is not None else len(d.payload)
        table.add_row(
            f"{s.partition}@{s.offset}",
            d.reason[:60],
            d.stage,
            f"{d.source_topic} {d.partition}@{d.offset}",
            f"{size}" + (" (cut)" if d.truncated else ""),
            preview(d.payload),
        )
    console.print(f"[bold]{topic}[/bold]")
    console.print(table)


@dlq_app.command("replay")
def replay_command(
    topic: str = typer.Argument(..., help="a dead-letter topic, e.g. reviews.raw.v1.dlq"),
    reason: str | None = REASON,
    partition: int | None = PARTITION,
    offsets: str | None = OFFSETS,
    dry_run: bool = typer.Option(False, "--dry-run", help="count what would be replayed"),
) -> None:
    """Re-publish the original bytes of TOPIC's dead letters (all, or those selected) to
    their source topics. Safe to repeat: downstream writes are keyed."""
    selection = _selection(reason, partition, offsets)
    bootstrap = _settings().kafka.bootstrap_servers
    try:
        stored = read(bootstrap, topic)
        letters = [s.letter for s in stored if s.letter is not None and selection.takes(s.letter)]
        sent, skipped = replay(bootstrap, letters, dry_run=dry_run)
    except ServiceUnavailable as exc:
        raise _fail(exc) from exc
    verb = "would replay" if dry_run else "replayed"
    console.print(f"{verb} {sent} of {len(stored)} dead letters from {topic}")
    if skipped:
        console.print(
            f"[yellow]{skipped} truncated dead letters skipped[/yellow] (their value was larger "
            "than ULASAN_WORKER__DLQ_MAX_PAYLOAD_BYTES; only its size and SHA-256 are kept)"
        )
