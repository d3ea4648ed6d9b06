"""What a drained stream must show, counted: the checks of the stream fault tests and of
``ulasan chaos soak`` (which reports them instead of asserting). Written so that they can fail.

- :func:`one_row_problems`: every published review id has exactly one row in
  reviews, text_features and prediction_logs (champion rows), and no other id has one. A
  ``count(*) - count(DISTINCT review_id)`` on a primary key cannot fail; this can (a lost
  review, a second model version's row, a row nobody published).
- :func:`committed_behind`: the consumer group's committed offset equals the log end on
  every partition of the topics it reads, once the stream drained (a stalled partition or a
  commit that never came fails it; so does a commit *past* the log end, which cannot happen).
- :func:`sentiment_copies`: copies per review on sentiment.v1
  (at-least-once: a replay repeats an event with the same ``event_id``), counted, bounded and
  reported; a review missing from the topic or scored with two event ids shows.

``tests/helpers/stream_env.py`` turns them into assertions.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field

import psycopg
from confluent_kafka import Consumer, KafkaError, TopicPartition

from schemas.codec import CodecError, decode
from schemas.events import SentimentScored
from ulasan.errors import UlasanError


class CheckError(UlasanError):
    """A check could not read what it checks (a topic not read to its end in time)."""


TABLES = ("reviews", "text_features", "prediction_logs")
_ROWS_PER_ID = {
    "reviews": "SELECT review_id, count(*) FROM reviews GROUP BY review_id",
    "text_features": "SELECT review_id, count(*) FROM text_features GROUP BY review_id",
    "prediction_logs": "SELECT review_id, count(*) FROM prediction_logs "
    "WHERE review_id IS NOT NULL AND NOT shadow GROUP BY review_id",
}


def rows_per_id(dsn: str) -> dict[str, Counter[str]]:
    """Per table, rows per review id (prediction_logs: the champion's rows of reviews)."""
    out: dict[str, Counter[str]] = {}
    with psycopg.connect(dsn, connect_timeout=5) as conn:
        for table, sql in _ROWS_PER_ID.items():
            out[table] = Counter({str(rid): int(n) for rid, n in conn.execute(sql)})
    return out


def one_row_problems(dsn: str, published: Collection[str]) -> list[str]:
    """What breaks "exactly one row per published id" in each table (empty: nothing)."""
    wanted = set(published)
    problems = []
    for table, per_id in rows_per_id(dsn).items():
        missing = sorted(wanted - set(per_id))
        extra = sorted(set(per_id) - wanted)
        doubled = sorted(rid for rid, n in per_id.items() if n > 1)
        for what, ids in (("missing", missing), ("not published", extra), ("doubled", doubled)):
            if ids:
                problems.append(f"{table}: {len(ids)} {what}, e.g. {ids[:5]}")
    return problems


# -- committed offsets ---------------------------------------------------------------------------
def committed_and_end(
    bootstrap: str, group: str, topics: Iterable[str]
) -> dict[tuple[str, int], tuple[int, int]]:
    """``(topic, partition) -> (committed offset, log end)`` for every partition of ``topics``
    (committed -1: the group never committed one)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "log_level": 0})
    out = {}
    try:
        for topic in topics:
            meta = consumer.list_topics(topic, timeout=10).topics[topic]
            tps = [TopicPartition(topic, p) for p in sorted(meta.partitions)]
            for tp in consumer.committed(tps, timeout=10):
                _, end = consumer.get_watermark_offsets(tp, timeout=10)
                out[(topic, tp.partition)] = (tp.offset, end)
    finally:
        consumer.close()
    return out


def committed_behind(
    bootstrap: str, group: str, topics: Iterable[str], timeout_s: float = 30.0
) -> dict[tuple[str, int], tuple[int, int]]:
    """Wait (commits are periodic) until the group's committed offset is the log end on every
    partition of ``topics``; the partitions still behind after ``timeout_s`` (empty: none).
    Empty partitions count: committed -1 at log end 0 is fine."""
    names = list(topics)
    deadline = time.monotonic() + timeout_s
    while True:
        state = committed_and_end(bootstrap, group, names)
        behind = {tp: (c, e) for tp, (c, e) in state.items() if c != e and not (c < 0 and e == 0)}
        if not behind or time.monotonic() > deadline:
            return behind
        time.sleep(0.5)


def describe_behind(behind: dict[tuple[str, int], tuple[int, int]]) -> str:
    return "committed != log end (committed/end): " + ", ".join(
        f"{t}[{p}] {c}/{e}" for (t, p), (c, e) in sorted(behind.items())
    )


# -- sentiment.v1 --------------------------------------------------------------------------------
@dataclass
class SentimentCopies:
    """What sentiment.v1 holds for the published reviews."""

    published: int
    records: int = 0
    copies: Counter[str] = field(default_factory=Counter)
    event_ids: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    undecodable: int = 0

    @property
    def duplicates(self) -> int:
        """Records beyond one per review."""
        return sum(n - 1 for n in self.copies.values())

    @property
    def max_copies(self) -> int:
        return max(self.copies.values(), default=0)

    def missing(self, published: Collection[str]) -> list[str]:
        return sorted(set(published) - set(self.copies))

    def inconsistent(self) -> list[str]:
        """Reviews scored under more than one event id (a replay must repeat the same one)."""
        return sorted(rid for rid, ids in self.event_ids.items() if len(ids) > 1)

    def summary(self) -> str:
        return (
            f"sentiment: {self.records} records for {len(self.copies)} of {self.published} "
            f"reviews, {self.duplicates} duplicates (max {self.max_copies} copies)"
        )


def sentiment_copies(
    bootstrap: str, topic: str, published: Collection[str], timeout_s: float = 60.0
) -> SentimentCopies:
    """Read ``topic`` from its start to its log end and count the copies of each review."""
    out = SentimentCopies(published=len(published))
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"checks-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "log_level": 0,
        }
    )
    try:
        meta = consumer.list_topics(topic, timeout=10).topics[topic]
        ends = {}
        for p in meta.partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            if high > low:
                ends[p] = high
        consumer.assign([TopicPartition(topic, p, 0) for p in ends])
        deadline = time.monotonic() + timeout_s
        while ends and time.monotonic() < deadline:
            for m in consumer.consume(1000, timeout=0.5):
                error = m.error()
                if error is not None:
                    if error.code() != KafkaError._PARTITION_EOF:
                        raise CheckError(f"{topic}: {error}")
                    continue
                _count(out, m.value() or b"")
                if (m.offset() or 0) + 1 >= ends.get(m.partition() or 0, 0):
                    ends.pop(m.partition() or 0, None)
        if ends:
            raise CheckError(f"{topic}: partitions {sorted(ends)} not read to their end in time")
    finally:
        consumer.close()
    return out


def _count(out: SentimentCopies, value: bytes) -> None:
    out.records += 1
    try:
        scored = decode(value, SentimentScored)
    except CodecError:
        out.undecodable += 1
        return
    rid = scored.review_id or ""
    out.copies[rid] += 1
    out.event_ids[rid].add(scored.event_id)
