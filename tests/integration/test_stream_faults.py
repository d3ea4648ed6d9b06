"""The stream worker under faults: a SIGKILL mid-stream, bad input, a second worker joining."""

from __future__ import annotations

import json

from schemas import topics
from schemas.events import MAX_TEXT_CHARS
from tests.helpers.stream_env import BackgroundProducer, StreamEnv, review_payload, wait_until
from tests.integration.stream_fixtures import stream_env_fixture  # noqa: F401 - fixture

N = 2000


def assert_exactly_once_in_tables(env: StreamEnv, n: int) -> None:
    """One row per published review in each table, offsets committed to the log end, every
    review on sentiment.v1 under one event id; replays after a kill or a takeover repeat at
    most the records in flight (bounded by half the stream, reported)."""
    env.assert_drained(env.review_ids(0, n), max_sentiment_duplicates=n // 2)


def test_sigkill_mid_stream_then_restart_loses_and_duplicates_nothing(
    stream_env: StreamEnv,
) -> None:
    env = stream_env
    first = env.start_worker("first")
    env.wait_assigned(first)
    with BackgroundProducer(env, 0, N, seconds=6):
        at_kill = wait_until(
            lambda: (c := env.counts())["prediction_logs"] >= 300 and c,
            120,
            "300 predictions before the kill",
            interval_s=0.05,
        )
        first.kill()
    assert min(at_kill.values()) < N, f"the worker finished before the kill: {at_kill}"
    second = env.start_worker("second")
    env.wait_rows(N, timeout_s=240)
    assert_exactly_once_in_tables(env, N)
    assert second.stop() == 0, second.log()[-3000:]


def test_every_bad_input_kind_is_dead_lettered_while_good_events_flow(
    stream_env: StreamEnv,
) -> None:
    env = stream_env
    worker = env.start_worker("w1")
    bad = {
        "invalid_utf8": b"\xff\xfe\xfd",
        "invalid_json": b'{"review_id": ',
        "not_an_object": b'["a", "b"]',
        "empty": b"",
        "empty_text": review_payload(90001, text=""),
        "text_too_long": review_payload(90002, text="x" * (MAX_TEXT_CHARS + 1)),
        "wrong_type": json.dumps({"review_id": "w", "source": "t", "text": 12345}).encode(),
        "missing_field": json.dumps({"source": "t", "text": "tanpa id"}).encode(),
        "unknown_field": review_payload(90003, user_name="budi"),
        "schema_violation": review_payload(90004, rating=9),
        "unsupported_schema_version": review_payload(90005, schema_version=2),
    }
    good = 200
    records: list[tuple[bytes | None, bytes]] = []
    bad_items = list(bad.items())
    for i in range(good):
        records.append((f"rev-{i:06d}".encode(), review_payload(i)))
        if i % 15 == 0 and bad_items:
            reason, payload = bad_items.pop()
            records.append((reason.encode(), payload))
    # valid JSON and schema, but PostgreSQL cannot store a NUL character in text
    records.append((b"nul", review_payload(90006, text="ada \x00 karakter nul")))
    env.produce(records)

    # the worker cleans and scores in one agent: the sink's refusal is a dead letter of the
    # raw record too (the record the worker consumed; a replay cleans it again)
    letters = env.dead_letters(topics.REVIEWS_RAW, len(bad) + 1)
    refused = [d for d in letters if d.stage == "sink"]
    assert [d.error_type for d in refused] == ["sink_rejected"]
    assert json.loads(refused[0].payload)["review_id"] == "rev-090006"
    by_reason = {d.error_type: d for d in letters if d.stage != "sink"}
    assert set(by_reason) == set(bad)
    for reason, payload in bad.items():
        d = by_reason[reason]
        assert d.payload == payload
        assert d.stage == "clean"
        assert d.source_topic == env.topic(topics.REVIEWS_RAW)
        assert d.key_b64 is not None
        assert d.reason.startswith(reason)

    env.wait_rows(good, timeout_s=120)
    # one write per batch holds the review, its features and its score: one dead letter,
    # and the refused review's score is not published
    assert env.counts() == {"reviews": good, "text_features": good, "prediction_logs": good}

    text = env.metrics(worker)
    assert 'ulasan_dlq_total{reason="invalid_json",topic="' in text
    assert 'ulasan_stream_errors_total{reason="text_too_long",stage="clean"}' in text
    assert worker.alive()


def test_two_workers_share_partitions_and_take_over_without_loss(stream_env: StreamEnv) -> None:
    env = stream_env
    first = env.start_worker("first")
    env.wait_assigned(first)
    half = N // 2
    with BackgroundProducer(env, 0, half, seconds=5):
        wait_until(
            lambda: env.count("prediction_logs") >= 200, 120, "200 predictions by the first worker"
        )
    second = env.start_worker("second")
    env.wait_assigned(second)  # the group rebalanced: the second worker holds partitions
    # the rest arrives while both hold partitions (the first may have caught up by now)
    with BackgroundProducer(env, half, N, seconds=10):
        wait_until(
            lambda: "ulasan_stream_events_total{" in env.metrics(second),
            60,
            "the second worker to consume records",
        )
        first.kill()
    env.wait_rows(N, timeout_s=240)
    assert_exactly_once_in_tables(env, N)
    assert second.stop() == 0, second.log()[-3000:]
