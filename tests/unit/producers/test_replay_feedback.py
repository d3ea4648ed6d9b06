"""Label files and rating-derived labels for feedback.v1 (no services)."""

from __future__ import annotations

import pytest

from producers.checkpoints import MemoryCheckpoints
from producers.feedback import label_for_rating, publish_feedback_file, rating_feedback
from schemas import topics


class ListSink:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, object]] = []

    def publish(self, topic, key, event) -> None:
        self.events.append((topic, key, event))

    def flush(self, timeout_s: float = 60.0) -> None:
        return None


@pytest.mark.parametrize(
    ("rating", "label"),
    [(1, "negative"), (2, "negative"), (3, "neutral"), (4, "positive"), (5, "positive")],
)
def test_rating_labels(rating, label):
    assert label_for_rating(rating) == label
    event = rating_feedback("r-9", rating)
    assert (event.review_id, event.label, event.source) == ("r-9", label, "rating")


@pytest.mark.parametrize("rating", [0, 6, -1])
def test_rating_out_of_range_is_refused(rating):
    with pytest.raises(ValueError):
        label_for_rating(rating)


def test_label_file_good_and_bad_rows_exactly_once(tmp_path):
    path = tmp_path / "labels.csv"
    path.write_text(
        "review_id,label,source,time\n"
        "r1,Positive,,\n"  # 2: human by default, label case-insensitive
        "r2,negative,rating,2024-05-01T00:00:00Z\n"  # 3
        ",neutral,,\n"  # 4: no review id
        "r4,great,,\n"  # 5: not a label
        "r5,neutral,robot,\n"  # 6: not a source
        "r6,neutral,,kemarin\n",  # 7: bad time
        encoding="utf-8",
    )
    store = MemoryCheckpoints()
    sink = ListSink()
    stats = publish_feedback_file(path, fmt=None, sep=None, publisher=sink, checkpoints=store)
    got = [(t, k, e.label, e.source) for t, k, e in sink.events]
    assert got == [
        (topics.FEEDBACK, "r1", "positive", "human"),
        (topics.FEEDBACK, "r2", "negative", "rating"),
    ]
    assert sink.events[1][2].time.isoformat() == "2024-05-01T00:00:00+00:00"
    assert [b.line for b in stats.bad_rows] == [4, 5, 6, 7]
    assert "'great'" in stats.bad_rows[1].reason and "'robot'" in stats.bad_rows[2].reason
    # the same file again: nothing new; from the start: the same feedback ids
    again = ListSink()
    publish_feedback_file(path, fmt=None, sep=None, publisher=again, checkpoints=store)
    assert again.events == []
    repeat = ListSink()
    publish_feedback_file(
        path, fmt=None, sep=None, publisher=repeat, checkpoints=store, from_start=True
    )
    assert [e.feedback_id for _, _, e in repeat.events] == [
        e.feedback_id for _, _, e in sink.events
    ]
