"""Producers on the real stack: replay exactly once across runs, feedback, Google Play."""

from __future__ import annotations

import re
import subprocess
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import unquote

import psycopg
import pytest
from confluent_kafka import Consumer, TopicPartition

from producers.checkpoints import PostgresCheckpoints
from producers.files import file_sha256
from producers.google_play import PRODUCER as PLAY
from producers.google_play import PlayClient, checkpoint_key, produce
from producers.publish import Publisher, prefixed_topics
from producers.replay import ReplaySpec, replay
from schemas import codec, topics
from schemas.events import LabelFeedback, ReviewReceived
from ulasan.core.kafka_admin import ensure_topics

ULASAN = Path(sys.executable).parent / "ulasan"
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "google_play"


def read_all(bootstrap: str, topic: str, timeout_s: float = 30.0) -> list[tuple[str, bytes]]:
    """Every record of ``topic`` (all partitions, from the start): ``(key, value)``."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"test-read-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )
    try:
        meta = consumer.list_topics(topic, timeout=10).topics[topic]
        parts = [TopicPartition(topic, p) for p in meta.partitions]
        ends = {}
        for tp in parts:
            _, high = consumer.get_watermark_offsets(tp, timeout=10)
            ends[tp.partition] = high
        consumer.assign([TopicPartition(topic, p, 0) for p in ends])
        out: list[tuple[str, bytes]] = []
        remaining = {p for p, high in ends.items() if high > 0}

        deadline = time.monotonic() + timeout_s
        while remaining and time.monotonic() < deadline:
            msg = consumer.poll(1.0)
            if msg is None or msg.error():
                continue
            out.append((msg.key().decode(), msg.value()))
            if msg.offset() + 1 >= ends[msg.partition()]:
                remaining.discard(msg.partition())
        assert not remaining, f"could not read {topic} to its end"
        return out
    finally:
        consumer.close()


@pytest.fixture
def prefix(kafka_topics, unique_name) -> str:
    """A topic prefix with its own reviews.raw.v1 and feedback.v1 (3 partitions each)."""
    p = unique_name("test.prod") + "."

    names = [p + topics.REVIEWS_RAW, p + topics.FEEDBACK]
    ensure_topics(kafka_topics.bootstrap, names, 3, 1)
    kafka_topics.created.extend(names)
    return p


@pytest.fixture
def checkpoints(settings):
    store = PostgresCheckpoints(settings.postgres.dsn)
    yield store
    store.close()


def forget_checkpoints(settings, producer: str, path: Path) -> None:
    """Delete the checkpoints of ``path`` (keys start with its sha256), nobody else's."""
    like = file_sha256(path) + "%"
    with psycopg.connect(settings.postgres.dsn, autocommit=True) as conn:
        conn.execute(
            "DELETE FROM producer_checkpoints WHERE producer = %s AND key LIKE %s",
            (producer, like),
        )


def test_replay_good_rows_exactly_once_even_when_run_twice(settings, prefix, checkpoints, tmp_path):
    marker = uuid.uuid4().hex[:8]
    path = tmp_path / f"mixed-{marker}.csv"
    path.write_text(
        "text;rating\n"
        f"Barang bagus {marker};5\n"  # 2
        ";4\n"  # 3 empty text
        f"Pengiriman lambat {marker};9\n"  # 4 rating out of range
        f"Kurang puas {marker};2\n"  # 5
        f"Biasa saja {marker};3;extra\n"  # 6 wrong field count
        f"Oke {marker};\n",  # 7 (no rating)
        encoding="utf-8",
    )
    spec = ReplaySpec(sep=";", rating_col="rating", emit_feedback=True)
    try:
        for run in range(2):
            pub = Publisher(settings, topic_overrides=prefixed_topics(prefix))
            pub.check_connection()
            stats = replay(path, spec, publisher=pub, checkpoints=checkpoints)
            if run == 0:
                assert stats.published == 3
                assert [(b.line, b.reason) for b in stats.bad_rows] == [
                    (3, "text is empty"),
                    (4, "rating '9' is not a whole number 1..5"),
                    (6, "expected 2 fields, found 3 (separator?)"),
                ]
            else:
                assert stats.published == 0 and stats.bad_rows == []
        records = read_all(settings.kafka.bootstrap_servers, prefix + topics.REVIEWS_RAW)
        reviews = [codec.decode(v, ReviewReceived) for _, v in records]
        assert sorted(r.text for r in reviews) == sorted(
            [f"Barang bagus {marker}", f"Kurang puas {marker}", f"Oke {marker}"]
        )
        assert all(k == r.review_id for (k, _), r in zip(records, reviews, strict=True))
        labels = [
            codec.decode(v, LabelFeedback)
            for _, v in read_all(settings.kafka.bootstrap_servers, prefix + topics.FEEDBACK)
        ]
        assert sorted(f.label for f in labels) == ["negative", "positive"]
    finally:
        forget_checkpoints(settings, "replay", path)


def test_replay_and_feedback_commands(settings, prefix, tmp_path):
    marker = uuid.uuid4().hex[:8]
    reviews = tmp_path / f"r-{marker}.jsonl"
    reviews.write_text(
        f'{{"id": "{marker}-1", "text": "Mantap sekali", "rating": 5}}\n'
        "not json\n"
        f'{{"id": "{marker}-2", "text": "", "rating": 1}}\n'
        f'{{"id": "{marker}-3", "text": "Jelek", "rating": 1}}\n',
        encoding="utf-8",
    )
    labels = tmp_path / f"l-{marker}.csv"
    labels.write_text(
        f"review_id,label\n{marker}-1,Positive\n{marker}-3,negative\n{marker}-3,awful\n",
        encoding="utf-8",
    )
    cmd = [str(ULASAN), "produce"]
    common = ["--topic-prefix", prefix]
    try:
        out = subprocess.run(
            [*cmd, "replay", str(reviews), "--id-col", "id", "--rating-col", "rating", *common],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert out.returncode == 0, out.stderr + out.stdout
        assert "published 2 reviews" in out.stdout
        assert re.search(r"\b2\s+│\s+invalid JSON", out.stdout)
        assert re.search(r"\b3\s+│\s+text is empty", out.stdout)
        again = subprocess.run(
            [*cmd, "replay", str(reviews), "--id-col", "id", "--rating-col", "rating", *common],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert again.returncode == 0 and "nothing new" in again.stdout
        fb = subprocess.run(
            [*cmd, "feedback", str(labels), *common], capture_output=True, text=True, timeout=120
        )
        assert fb.returncode == 0, fb.stderr + fb.stdout
        assert "published 2 labels" in fb.stdout and "'awful'" in fb.stdout
        keys = [
            k for k, _ in read_all(settings.kafka.bootstrap_servers, prefix + topics.REVIEWS_RAW)
        ]
        assert sorted(keys) == [f"{marker}-1", f"{marker}-3"]
        fbs = [
            codec.decode(v, LabelFeedback)
            for _, v in read_all(settings.kafka.bootstrap_servers, prefix + topics.FEEDBACK)
        ]
        assert sorted((f.review_id, f.label, f.source) for f in fbs) == [
            (f"{marker}-1", "positive", "human"),
            (f"{marker}-3", "negative", "human"),
        ]
    finally:
        forget_checkpoints(settings, "replay", reviews)
        forget_checkpoints(settings, "feedback", labels)


class RecordedPlay:
    """The batchexecute endpoint answering from recorded pages (by continuation token)."""

    def __init__(self, pages: dict[str | None, str]) -> None:
        self.pages = pages

    def __call__(self, request):

        body = unquote(request.data.decode())
        match = re.search(r'\[(\d+),null,\\"([^\\]+)\\"\]', body)
        data = (FIXTURES / self.pages[match.group(2) if match else None]).read_bytes()

        class Response:
            def read(self) -> bytes:
                return data

        return Response()


def test_google_play_incremental_on_the_real_stack(settings, prefix, checkpoints, monkeypatch):
    app_id = f"com.gojek.app.{uuid.uuid4().hex[:6]}"  # a checkpoint key of its own
    runs = [
        {None: "run1_page1.txt", "CpEBCo4BKoABAJ5wZ0nWk7fG1run1p2": "run1_page2.txt"},
        {None: "run2_page1.txt", "CpEBCo4BKoABAJ5wZ0nWk7fG1run2p2": "run2_page2.txt"},
        {None: "run2_page1.txt", "CpEBCo4BKoABAJ5wZ0nWk7fG1run2p2": "run2_page2.txt"},
    ]
    published = []
    try:
        for pages in runs:
            monkeypatch.setattr("google_play_scraper.utils.request.urlopen", RecordedPlay(pages))
            pub = Publisher(settings, topic_overrides=prefixed_topics(prefix))
            client = PlayClient(requests_per_s=100, sleep=lambda s: None)
            stats = produce(app_id, client=client, publisher=pub, checkpoints=checkpoints)
            published.append(stats.published)
        assert published == [5, 2, 0]
        records = read_all(settings.kafka.bootstrap_servers, prefix + topics.REVIEWS_RAW)
        ids = [k for k, _ in records]
        assert len(ids) == len(set(ids)) == 7
        state = checkpoints.get(PLAY, checkpoint_key(app_id, "id", "id"))
        assert state["watermark"] == "2024-06-01T09:30:00+00:00" and state["published"] == 7
    finally:
        checkpoints.delete(PLAY, checkpoint_key(app_id, "id", "id"))
