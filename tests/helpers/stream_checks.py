"""Assertions every stream fault test makes, on the counts of :mod:`ulasan.chaos_checks` (the
same checks ``ulasan chaos soak`` reports), written so that they can fail.

- :func:`assert_one_row_per_published_id`: every published review id has exactly one row in
  reviews, text_features and prediction_logs (champion rows), and no other id has one.
- :func:`assert_committed_at_end`: the consumer group's committed offset equals the log end on
  every partition of the topics it reads, once the stream drained.
- :func:`assert_sentiment_bounded`: every review on sentiment.v1 under one event id, nothing
  else, and the duplicates bounded and reported.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable

from ulasan.chaos_checks import (
    TABLES,
    SentimentCopies,
    committed_and_end,
    committed_behind,
    describe_behind,
    one_row_problems,
    rows_per_id,
    sentiment_copies,
)

__all__ = [
    "TABLES",
    "SentimentCopies",
    "assert_committed_at_end",
    "assert_one_row_per_published_id",
    "assert_sentiment_bounded",
    "committed_and_end",
    "one_row_problems",
    "rows_per_id",
    "sentiment_copies",
]


def assert_one_row_per_published_id(dsn: str, published: Collection[str]) -> None:
    problems = one_row_problems(dsn, published)
    assert not problems, f"of {len(published)} published reviews: " + "; ".join(problems)


def assert_committed_at_end(
    bootstrap: str, group: str, topics: Iterable[str], timeout_s: float = 30.0
) -> dict[tuple[str, int], tuple[int, int]]:
    """Wait until the group's committed offset is the log end on every partition of ``topics``;
    fail naming the partitions that are not. The final state, reported."""
    names = list(topics)
    behind = committed_behind(bootstrap, group, names, timeout_s)
    assert not behind, describe_behind(behind)
    return committed_and_end(bootstrap, group, names)


def assert_sentiment_bounded(
    copies: SentimentCopies, published: Collection[str], max_duplicates: int
) -> None:
    """Every published review is on the topic, each under one event id, nothing else is, and
    the duplicates stay within ``max_duplicates``; prints the counts (the report)."""
    print(copies.summary())
    missing = copies.missing(published)
    assert not missing, f"{len(missing)} reviews never scored on sentiment.v1: {missing[:5]}"
    extra = sorted(set(copies.copies) - set(published))
    assert not extra, f"scores of reviews nobody published: {extra[:5]}"
    assert copies.undecodable == 0, f"{copies.undecodable} undecodable records"
    assert not copies.inconsistent(), f"two event ids for {copies.inconsistent()[:5]}"
    assert copies.duplicates <= max_duplicates, copies.summary()
