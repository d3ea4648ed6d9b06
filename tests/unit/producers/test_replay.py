"""Replay: bad rows with line numbers, stable ids, exactly once across runs (no services)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from producers.checkpoints import MemoryCheckpoints
from producers.errors import InputFileError, PublishError
from producers.files import Record, read_records
from producers.ratelimit import TokenBucket
from producers.replay import (
    PRDECT_FILE,
    PRODUCER,
    ReplaySpec,
    checkpoint_key,
    parse_review,
    preset,
    replay,
)
from schemas import topics
from schemas.events import LabelFeedback, ReviewReceived


class ListSink:
    """Collects what a producer publishes; ``fail_flush`` makes the next flush raise."""

    def __init__(self, interrupt_after: int | None = None) -> None:
        self.queued: list[tuple[str, str, object]] = []
        self.delivered: list[tuple[str, str, object]] = []
        self.fail_flush = False
        self.interrupt_after = interrupt_after

    def publish(self, topic, key, event) -> None:
        if self.interrupt_after is not None and len(self.queued) >= self.interrupt_after:
            raise KeyboardInterrupt
        self.queued.append((topic, key, event))

    def flush(self, timeout_s: float = 60.0) -> None:
        if self.fail_flush:
            self.queued.clear()
            raise PublishError("broker said no")
        self.delivered.extend(self.queued)
        self.queued.clear()

    def reviews(self) -> list[ReviewReceived]:
        return [e for t, _, e in self.delivered if t == topics.REVIEWS_RAW]


MIXED_CSV = (
    "id,text,rating,time\n"  # line 1
    "a1,Barang bagus sekali,5,2024-05-01T10:00:00Z\n"  # 2 good
    "a2,,4,\n"  # 3 empty text
    'a3,"   ",4,\n'  # 4 blank text
    f"a4,{'x' * 5001},3,\n"  # 5 too long
    "a5,Pengiriman lambat,0,\n"  # 6 rating 0
    "a6,Lumayan,lima,\n"  # 7 rating not a number
    "a7,Oke,4.5,\n"  # 8 rating not whole
    "a8,Cepat sampai,4,kemarin sore\n"  # 9 unparsable time
    "a9,Terlalu,banyak,kolom,di sini\n"  # 10 wrong field count
    'a10,"Dua baris\nteks yang rapi",2,\n'  # 11-12 good, multi-line
    ",Tanpa id,5,\n"  # 13 empty id
    "a12,Mantap jiwa,1,1714557600\n"  # 14 good, epoch time
)


def write(tmp_path: Path, name: str, content: str | bytes) -> Path:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


SPEC = ReplaySpec(id_col="id", rating_col="rating", time_col="time")


def test_bad_rows_are_reported_with_line_numbers_and_good_rows_published(tmp_path):
    path = write(tmp_path, "mixed.csv", MIXED_CSV)
    sink = ListSink()
    stats = replay(path, SPEC, publisher=sink, checkpoints=MemoryCheckpoints())

    assert [r.review_id for r in sink.reviews()] == ["a1", "a10", "a12"]
    assert sink.reviews()[1].text == "Dua baris\nteks yang rapi"
    assert sink.reviews()[2].review_time.isoformat() == "2024-05-01T10:00:00+00:00"
    bad = {b.line: b.reason for b in stats.bad_rows}
    assert sorted(bad) == [3, 4, 5, 6, 7, 8, 9, 10, 13]
    assert bad[3] == "text is empty"
    assert bad[4] == "text is empty"
    assert "5001 characters" in bad[5]
    assert "1..5" in bad[6] and "'0'" in bad[6]
    assert "'lima'" in bad[7]
    assert "whole number" in bad[8]
    assert "kemarin sore" in bad[9]
    assert "expected 4 fields, found 5" in bad[10]
    assert "id" in bad[13]
    assert stats.published == 3 and stats.finished


def test_second_run_publishes_nothing_and_from_start_repeats_the_same_ids(tmp_path):
    path = write(tmp_path, "mixed.csv", MIXED_CSV)
    store = MemoryCheckpoints()
    first, second, again = ListSink(), ListSink(), ListSink()
    replay(path, SPEC, publisher=first, checkpoints=store)
    stats = replay(path, SPEC, publisher=second, checkpoints=store)
    assert second.delivered == [] and stats.published == 0
    assert stats.resumed_from == (0, 14)
    replay(path, SPEC, publisher=again, checkpoints=store, from_start=True)
    assert [r.review_id for r in again.reviews()] == [r.review_id for r in first.reviews()]


def test_hash_ids_are_stable_across_runs_and_copies_but_differ_per_source(tmp_path):
    content = "text\nsama\nsama\nbeda\n"
    one = write(tmp_path, "f.csv", content)
    other_dir = tmp_path / "copy"
    other_dir.mkdir()
    two = write(other_dir, "f.csv", content)
    ids = []
    for path, spec in ((one, ReplaySpec()), (two, ReplaySpec()), (one, ReplaySpec(source="x"))):
        sink = ListSink()
        replay(path, spec, publisher=sink, checkpoints=MemoryCheckpoints())
        ids.append([r.review_id for r in sink.reviews()])
    assert ids[0] == ids[1]  # same file name and content: same ids
    assert len(set(ids[0])) == 3  # equal texts on different lines are different reviews
    assert all(i.startswith("replay-") and len(i) == len("replay-") + 32 for i in ids[0])
    assert not set(ids[0]) & set(ids[2])


def test_max_then_resume_publishes_every_good_row_exactly_once(tmp_path):
    path = write(tmp_path, "mixed.csv", MIXED_CSV)
    store = MemoryCheckpoints()
    runs = [ListSink() for _ in range(3)]
    for sink in runs:
        replay(path, SPEC, publisher=sink, checkpoints=store, max_rows=1)
    published = [r.review_id for s in runs for r in s.reviews()]
    assert published == ["a1", "a10", "a12"]
    cp = store.get(PRODUCER, checkpoint_key(_sha(path), SPEC))
    assert cp["published"] == 3 and cp["line"] == 14


def _sha(path: Path) -> str:

    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_interrupt_checkpoints_what_was_queued_and_the_rerun_finishes(tmp_path):
    lines = "text\n" + "".join(f"ulasan nomor {i}\n" for i in range(10))
    path = write(tmp_path, "ten.csv", lines)
    store = MemoryCheckpoints()
    interrupted = ListSink(interrupt_after=4)
    with pytest.raises(KeyboardInterrupt):
        replay(path, ReplaySpec(), publisher=interrupted, checkpoints=store)
    rest = ListSink()
    replay(path, ReplaySpec(), publisher=rest, checkpoints=store)
    texts = [r.text for r in interrupted.reviews() + rest.reviews()]
    assert texts == [f"ulasan nomor {i}" for i in range(10)]


def test_a_failed_flush_does_not_move_the_checkpoint(tmp_path):
    path = write(tmp_path, "two.csv", "text\nsatu\ndua\n")
    store = MemoryCheckpoints()
    failing = ListSink()
    failing.fail_flush = True
    with pytest.raises(PublishError):
        replay(path, ReplaySpec(), publisher=failing, checkpoints=store)
    assert store.get(PRODUCER, checkpoint_key(_sha(path), ReplaySpec())) is None
    retry = ListSink()
    replay(path, ReplaySpec(), publisher=retry, checkpoints=store)
    assert [r.text for r in retry.reviews()] == ["satu", "dua"]


def test_loop_gives_each_pass_its_own_ids_and_run_ids_their_own_checkpoint(tmp_path):
    path = write(tmp_path, "two.csv", "id,text\nk1,satu\nk2,dua\n")
    spec = ReplaySpec(id_col="id")
    sink = ListSink()
    stats = replay(
        path, spec, publisher=sink, checkpoints=MemoryCheckpoints(), loop=True, max_rows=5
    )
    assert [r.review_id for r in sink.reviews()] == ["k1", "k2", "k1~p1", "k2~p1", "k1~p2"]
    assert stats.passes == 3
    store = MemoryCheckpoints()
    a, b = ListSink(), ListSink()
    replay(path, ReplaySpec(id_col="id", run_id="r1"), publisher=a, checkpoints=store)
    replay(path, ReplaySpec(id_col="id", run_id="r2"), publisher=b, checkpoints=store)
    assert [r.review_id for r in a.reviews()] == ["k1~r1", "k2~r1"]
    assert [r.review_id for r in b.reviews()] == ["k1~r2", "k2~r2"]


def test_emit_feedback_publishes_rating_labels_keyed_by_review_id(tmp_path):
    rows = "text,rating\nbagus,5\nbiasa,3\njelek,1\nagak,2\nsuka,4\ntanpa rating,\n"
    path = write(tmp_path, "r.csv", rows)
    sink = ListSink()
    spec = ReplaySpec(rating_col="rating", emit_feedback=True)
    stats = replay(path, spec, publisher=sink, checkpoints=MemoryCheckpoints())
    feedback = [(k, e) for t, k, e in sink.delivered if t == topics.FEEDBACK]
    assert stats.published == 6 and stats.extra_published == 5
    assert [e.label for _, e in feedback] == [
        "positive",
        "neutral",
        "negative",
        "negative",
        "positive",
    ]
    reviews = {r.text: r for r in sink.reviews()}
    assert reviews["tanpa rating"].rating is None
    for key, event in feedback:
        assert isinstance(event, LabelFeedback)
        assert event.source == "rating" and key == event.review_id
        assert event.feedback_id == f"{event.review_id}:rating"


def test_prdect_preset_reads_the_shipped_file_with_ratings():
    spec = preset("prdect")
    records = list(read_records(PRDECT_FILE, "csv", sep=spec.sep))
    parsed = [parse_review(r, spec, PRDECT_FILE.name) for r in records]
    reviews = [p[0][2] for p in parsed if isinstance(p, list)]
    assert len(reviews) == 5400
    assert {r.rating for r in reviews} == {1, 2, 3, 4, 5}
    assert reviews[0].text.startswith("Alhamdulillah berfungsi dengan baik")


def test_jsonl_and_headerless_tsv(tmp_path):
    jsonl = write(
        tmp_path,
        "r.jsonl",
        '{"text": "mantap", "rating": 5}\n\n[1, 2]\n{"text": 3}\n{bad json\n{"rating": 4}\n',
    )
    sink = ListSink()
    stats = replay(
        jsonl, ReplaySpec(rating_col="rating"), publisher=sink, checkpoints=MemoryCheckpoints()
    )
    assert [(r.text, r.rating) for r in sink.reviews()] == [("mantap", 5)]
    bad = {b.line: b.reason for b in stats.bad_rows}
    assert bad[3] == "expected a JSON object, found list"
    assert "not a string" in bad[4]
    assert bad[5].startswith("invalid JSON")
    assert bad[6] == "no 'text' field"

    tsv = write(tmp_path, "r.tsv", 'rumah "makan" enak\tpositive\nbiasa saja\tneutral\n')
    sink = ListSink()
    replay(
        tsv, ReplaySpec(header=False, text_col="0"), publisher=sink, checkpoints=MemoryCheckpoints()
    )
    assert [r.text for r in sink.reviews()] == ['rumah "makan" enak', "biasa saja"]


def test_invalid_utf8_row_is_bad_not_fatal(tmp_path):
    path = write(tmp_path, "u.csv", b"text\nbaik\n\xff\xfe rusak\nlagi\n")
    sink = ListSink()
    stats = replay(path, ReplaySpec(), publisher=sink, checkpoints=MemoryCheckpoints())
    assert [r.text for r in sink.reviews()] == ["baik", "lagi"]
    assert [(b.line, b.reason) for b in stats.bad_rows] == [(3, "the row is not valid UTF-8")]


def test_unusable_files_raise_clear_errors(tmp_path):
    with pytest.raises(InputFileError, match="does not exist"):
        replay(
            tmp_path / "nope.csv",
            ReplaySpec(),
            publisher=ListSink(),
            checkpoints=MemoryCheckpoints(),
        )
    odd = write(tmp_path, "r.txt", "text\nx\n")
    with pytest.raises(InputFileError, match="--format"):
        replay(odd, ReplaySpec(), publisher=ListSink(), checkpoints=MemoryCheckpoints())
    csv_file = write(tmp_path, "r.csv", "ulasan,bintang\nx,5\n")
    with pytest.raises(InputFileError, match=r"no column --text-col 'text'.*ulasan, bintang"):
        replay(csv_file, ReplaySpec(), publisher=ListSink(), checkpoints=MemoryCheckpoints())


@settings(max_examples=200, deadline=None)
@given(
    fields=st.dictionaries(
        st.sampled_from(["text", "rating", "time", "id"]),
        st.one_of(st.none(), st.text(max_size=60), st.integers(-10, 10), st.floats(allow_nan=True)),
    )
)
def test_parse_review_never_raises_and_builds_valid_events(fields):
    spec = ReplaySpec(rating_col="rating", time_col="time", id_col="id", emit_feedback=True)
    result = parse_review(Record(2, fields), spec, "f.csv")
    if isinstance(result, list):
        review = result[0][2]
        # the event survives the wire format
        assert ReviewReceived.model_validate(json.loads(review.model_dump_json())) == review


def test_token_bucket_spaces_acquisitions_on_a_fake_clock():
    now = [0.0]
    slept: list[float] = []

    def sleep(s: float) -> None:
        slept.append(s)
        now[0] += s

    bucket = TokenBucket(10, burst=1, clock=lambda: now[0], sleep=sleep)
    for _ in range(5):
        bucket.acquire()
    assert sum(slept) == pytest.approx(0.4)  # the first is free, then one per 0.1 s
    now[0] += 10  # a long pause refills only up to the burst
    assert bucket.try_acquire() == 0
    assert bucket.try_acquire() == pytest.approx(0.1)
    with pytest.raises(ValueError):
        TokenBucket(0)
