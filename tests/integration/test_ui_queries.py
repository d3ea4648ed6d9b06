"""The UI's queries against a real, migrated PostgreSQL database: filters, search, pagination,
analytics, the label queue and the loop tables; and the UI's connection cannot write."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from deploy.local.database import migrate
from ui import analytics, queries
from ui.errors import ServiceDown
from ui.services import read_only, rows
from ui.settings import UiSettings
from ulasan.core.settings import Settings

NOW = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture(scope="module")
def db() -> Iterator[UiSettings]:
    """A fresh database with a small, known history."""
    base = Settings()
    name = f"ui_{uuid.uuid4().hex[:10]}"
    admin = base.postgres.dsn
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    cfg = UiSettings(postgres=base.postgres.model_copy(update={"dbname": name}))
    try:
        migrate(cfg.postgres.dsn)
        with psycopg.connect(cfg.postgres.dsn) as conn:
            fill(conn)
        yield cfg
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def fill(conn: psycopg.Connection) -> None:
    """30 reviews of two apps (ratings and labels known), 2 gateway predictions, a shadow row,
    a human label, a drift report and a retrain run."""
    for i in range(30):
        rid = f"r{i:02d}"
        app = "com.a" if i % 2 else "com.b"
        label = ("negative", "neutral", "positive")[i % 3]
        text = f"ulasan {i} " + ("tidak bisa login" if label == "negative" else "bagus")
        t = NOW - timedelta(minutes=i)
        conn.execute(
            "INSERT INTO reviews (review_id, source, app_id, text, rating, ingested_at) "
            "VALUES (%s, 'replay', %s, %s, %s, %s)",
            (rid, app, text, 1 + i % 5, t),
        )
        conn.execute(
            "INSERT INTO prediction_logs (event_id, review_id, input, label, confidence, "
            'probabilities, model_name, model_version, "timestamp") '
            "VALUES (%s, %s, %s, %s, %s, %s, 'm', '1', %s)",
            (f"e{i}", rid, text, label, 0.4 + i / 100, json.dumps({label: 0.5}), t),
        )
        conn.execute(
            "INSERT INTO text_features (review_id, cleaned_text, word_count, char_count, "
            "avg_word_length, sentiment_words_positive, sentiment_words_negative, "
            "exclamation_marks, question_marks, uppercase_ratio, special_chars_count, "
            "number_count, has_url, has_emoji, feature_version) "
            "VALUES (%s, %s, %s, 10, 4, 0, 0, 0, 0, 0, 0, 0, false, false, 'v1')",
            (rid, text, 3 if i != 4 else 40),
        )
    conn.execute(
        "INSERT INTO prediction_logs (event_id, review_id, input, label, confidence, "
        'probabilities, model_name, model_version, shadow, "timestamp") '
        "VALUES ('s1', 'r01', 'x', 'neutral', 0.5, '{}', 'm', '2', true, %s)",
        (NOW,),
    )
    for j, text in enumerate(["diskon 50%_off mantap", "biasa saja"]):
        conn.execute(
            "INSERT INTO prediction_logs (event_id, request_id, input, label, confidence, "
            'probabilities, model_name, model_version, "timestamp") '
            "VALUES (%s, %s, %s, 'positive', 0.99, '{}', 'm', '1', %s)",
            (f"g{j}", f"req{j}", text, NOW),
        )
    conn.execute(
        "INSERT INTO feedback (feedback_id, review_id, label, source, time) "
        "VALUES ('f1', 'r00', 'negative', 'human', %s)",
        (NOW,),
    )
    signals = [
        {"name": "word_count", "test": "ks", "statistic": 0.5, "threshold": 0.3, "drifted": True}
    ]
    conn.execute(
        "INSERT INTO drift_reports (report_id, window_start, window_end, n_events, "
        "model_version, drift_score, drifted, signals) VALUES ('d1', %s, %s, 10, '1', 0.6, "
        "true, %s)",
        (NOW - timedelta(minutes=10), NOW + timedelta(seconds=1), json.dumps(signals)),
    )
    conn.execute(
        "INSERT INTO retrain_runs (run_id, request_id, dedupe_key, reasons, status, started_at, "
        "scores) VALUES ('run1', 'q1', 'k1', ARRAY['drift'], 'done', %s, %s)",
        (
            NOW - timedelta(hours=1),
            json.dumps({"gate": {"candidate": {"accuracy": 0.8, "macro_f1": 0.7}}}),
        ),
    )


def test_history_filters_search_and_pages(db: UiSettings) -> None:
    everything = queries.HistoryFilter(page_size=7)
    total = rows(db, queries.history_count(everything))[0]["n"]
    assert total == 32  # 30 reviews + 2 gateway predictions; the shadow row is left out
    pages = [
        rows(db, queries.history(queries.HistoryFilter(page=p, page_size=7))) for p in range(5)
    ]
    ids = [r["id"] for page in pages for r in page]
    assert len(ids) == 32 == len(set(ids)) and [len(p) for p in pages] == [7, 7, 7, 7, 4]
    neg_a = queries.HistoryFilter(labels=("negative",), apps=("com.a",))
    got = rows(db, queries.history(neg_a))
    assert got and all(r["label"] == "negative" and r["app"] == "com.a" for r in got)
    assert len(got) == 5  # i in 3, 9, 15, 21, 27
    gateway = rows(db, queries.history(queries.HistoryFilter(sources=("gateway",))))
    assert {r["id"] for r in gateway} == {"req0", "req1"}
    # '%' and '_' are searched literally: "50%_off" matches one row, "50__off" none
    found = rows(db, queries.history(queries.HistoryFilter(search="50%_OFF")))
    assert [r["id"] for r in found] == ["req0"]
    assert rows(db, queries.history(queries.HistoryFilter(search="50__off"))) == []
    sure = rows(db, queries.history(queries.HistoryFilter(min_confidence=0.65)))
    assert sure and all(float(r["confidence"]) >= 0.65 for r in sure)
    recent = queries.HistoryFilter(since=NOW - timedelta(minutes=4, seconds=30))
    assert rows(db, queries.history_count(recent))[0]["n"] == 5 + 2


def test_analytics_queries(db: UiSettings) -> None:
    window = queries.Window(NOW - timedelta(days=1), NOW + timedelta(seconds=1), "hour")
    series = analytics.sentiment_series(rows(db, queries.sentiment_over_time(window)))
    assert sum(s["n"] for s in series) == 32
    assert {s["series"].split(" · ")[1] for s in series} == {"replay", "gateway"}
    shares = analytics.shares(rows(db, queries.label_shares(window)))
    assert shares["negative"] == pytest.approx(10 / 32)
    bins = analytics.histogram(rows(db, queries.confidence_histogram(window)))
    assert sum(b["n"] for b in bins) == 32 and bins[-1]["n"] == 2  # the two 0.99s
    matrix = analytics.confusion(rows(db, queries.rating_confusion(window)))
    assert sum(sum(r.values()) for r in matrix.values()) == 30
    # r05: rating 1 (negative), label positive
    assert matrix["negative"]["positive"] >= 1
    texts = rows(db, queries.negative_texts(NOW - timedelta(days=1), NOW + timedelta(seconds=1)))
    assert len(texts) == 10 and all("login" in r["text"] for r in texts)


def test_label_queue_and_loop_tables(db: UiSettings) -> None:
    queue = rows(db, queries.least_sure(5))
    confidences = [float(r["confidence"]) for r in queue]
    assert confidences == sorted(confidences) and "r00" not in {r["review_id"] for r in queue}
    skipped = rows(db, queries.least_sure(5, ("r01",)))
    assert "r01" not in {r["review_id"] for r in skipped}
    counts = rows(db, queries.next_retrain_labels())[0]
    assert counts == {"labelled": 30, "human": 1, "human_since_last_retrain": 1}
    report = rows(db, queries.latest_drifted())[0]
    window = rows(db, queries.window_features(report["window_start"], report["window_end"]))
    assert window and "word_count" in window[0]
    assert rows(db, queries.retrain_runs())[0]["scores"]["gate"]["candidate"]["accuracy"] == 0.8
    shadow = rows(db, queries.shadow_agreement())
    assert shadow == [
        {
            "challenger": "2",
            "n": 1,
            "agreement": pytest.approx(1.0),
            "n_labelled": 0,
            "challenger_accuracy": None,
            "champion_accuracy": None,
        }
    ]


def test_the_ui_connection_cannot_write(db: UiSettings) -> None:
    with read_only(db) as conn, pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
        conn.execute("DELETE FROM feedback")
    assert rows(db, ("SELECT count(*) AS n FROM feedback", {}))[0]["n"] == 1


def test_the_ui_reads_as_the_reader_role_which_cannot_write_at_all(db: UiSettings) -> None:
    with read_only(db) as conn:
        assert conn.execute("SELECT current_user AS u").fetchone() == {"u": "ulasan_reader"}
        conn.read_only = False  # even out of read-only mode the role has SELECT only
        conn.execute("SET default_transaction_read_only = off")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("DELETE FROM feedback")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("INSERT INTO model_metrics (model_version) VALUES ('x')")
    assert rows(db, ("SELECT count(*) AS n FROM feedback", {}))[0]["n"] == 1


def test_a_missing_reader_role_names_the_migration(db: UiSettings) -> None:
    other = db.model_copy(update={"ui": db.ui.model_copy(update={"reader_role": "no_such_role"})})
    with pytest.raises(ServiceDown) as err:
        rows(other, ("SELECT 1 AS one", {}))
    assert err.value.start == "ulasan stack migrate", err.value


def test_a_stopped_database_is_named_with_the_command_that_starts_it() -> None:
    with psycopg.connect(Settings().postgres.dsn) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
    closed = UiSettings(postgres=Settings().postgres.model_copy(update={"port": 1}))
    with pytest.raises(ServiceDown) as err:
        rows(closed, ("SELECT 1", {}))
    assert err.value.service == "PostgreSQL" and err.value.start == "ulasan stack up"
