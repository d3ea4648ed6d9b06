"""Google Play producer on recorded responses: the real scraper parses them, only HTTP is faked."""

from __future__ import annotations

import re
import ssl
import urllib.error
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import unquote

import pytest

from producers.checkpoints import MemoryCheckpoints
from producers.errors import AppNotFound, GooglePlayUnavailable, UnexpectedResponse
from producers.google_play import PRODUCER, PlayClient, _library, checkpoint_key, produce
from schemas import codec, topics

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "google_play"
APP = "com.gojek.app"
T = datetime(2024, 6, 1, 8, 0, tzinfo=UTC)


class RecordedPlay:
    """Google Play's batchexecute endpoint, answering from recorded pages.

    ``pages`` maps a continuation token (None: the first page) to a fixture file; it is what
    ``urllib.request.urlopen`` returns inside google_play_scraper.utils.request.
    """

    def __init__(self, pages: dict[str | None, str]) -> None:
        self.pages = pages
        self.requests: list[tuple[str, str | None]] = []

    def __call__(self, request):
        assert request.full_url.startswith(
            "https://play.google.com/_/PlayStoreUi/data/batchexecute"
        )
        body = unquote(request.data.decode())
        assert f'\\"{APP}\\"' in body
        match = re.search(r'\[(\d+),null,\\"([^\\]+)\\"\]', body)
        token = match.group(2) if match else None
        self.requests.append((request.full_url, token))
        data = (FIXTURES / self.pages[token]).read_bytes()

        class Response:
            def read(self) -> bytes:
                return data

        return Response()


RUN1 = {None: "run1_page1.txt", "CpEBCo4BKoABAJ5wZ0nWk7fG1run1p2": "run1_page2.txt"}
RUN2 = {None: "run2_page1.txt", "CpEBCo4BKoABAJ5wZ0nWk7fG1run2p2": "run2_page2.txt"}


class ListSink:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, object]] = []
        self.flushes = 0

    def publish(self, topic, key, event) -> None:
        self.events.append((topic, key, event))

    def flush(self, timeout_s: float = 60.0) -> None:
        self.flushes += 1


def serve(monkeypatch, pages) -> RecordedPlay:
    server = RecordedPlay(pages)
    monkeypatch.setattr("google_play_scraper.utils.request.urlopen", server)
    return server


def client(**kw) -> PlayClient:
    kw.setdefault("sleep", lambda s: None)
    return PlayClient(lang="id", country="id", requests_per_s=1000, **kw)


def test_incremental_across_runs_publishes_only_what_is_new(monkeypatch):
    store = MemoryCheckpoints()
    server = serve(monkeypatch, RUN1)
    first = ListSink()
    stats = produce(APP, client=client(), publisher=first, checkpoints=store, page_size=4)
    assert [tok for _, tok in server.requests] == [None, "CpEBCo4BKoABAJ5wZ0nWk7fG1run1p2"]
    assert "hl=id&gl=id" in server.requests[0][0]
    assert stats.published == 5 and stats.pages == 2
    assert [rid for rid, _ in stats.skipped] == ["gp:AOqpTOJw4nB9kYr1tMcXe6zQpLh2sVdF8uGo"]
    assert "no text" in stats.skipped[0][1]
    reviews = [e for _, _, e in first.events]
    assert all(t == topics.REVIEWS_RAW for t, _, _ in first.events)
    assert all(k == e.review_id for _, k, e in first.events)
    newest = reviews[0]
    assert newest.review_id == "gp:AOqpTOGx1a7Lw0Yb3pRkUvE2sQfZ9nTj4cHd"
    assert newest.text == "Drivernya ramah banget, cepat sampai. Mantap Gojek!"
    assert newest.rating == 5 and newest.source == "google_play" and newest.app_id == APP
    assert newest.review_time == T
    cp = store.get(PRODUCER, checkpoint_key(APP, "id", "id"))
    assert cp["watermark"] == T.isoformat() and cp["published"] == 5

    # later: two new reviews on top; the run stops at the watermark after one page
    server = serve(monkeypatch, RUN2)
    second = ListSink()
    stats = produce(APP, client=client(), publisher=second, checkpoints=store, page_size=4)
    assert [tok for _, tok in server.requests] == [None]
    assert [e.review_id for _, _, e in second.events] == [
        "gp:AOqpTONr2gA6bSf4xVdYt9qLwZj5mUhK3iFa",
        "gp:AOqpTOPs5hB8cTg6yWeZu2rMxAk7nViL4jGb",
    ]
    assert stats.duplicates == 1 and stats.reached_watermark
    assert stats.watermark == datetime(2024, 6, 1, 9, 30, tzinfo=UTC)

    # nothing new: nothing published
    third = ListSink()
    stats = produce(APP, client=client(), publisher=third, checkpoints=store, page_size=4)
    assert third.events == [] and stats.published == 0


def test_personal_data_never_leaves_the_producer(monkeypatch):
    serve(monkeypatch, RUN1)
    sink = ListSink()
    produce(APP, client=client(), publisher=sink, checkpoints=MemoryCheckpoints())
    wire = b"".join(codec.encode(e) for _, _, e in sink.events).decode()
    for name in ("Rina Kurniawati", "Agus Setiawan", "Budi Santoso", "Sri Wahyuni"):
        assert name not in wire
    assert "googleusercontent" not in wire
    assert "Hai Kak Agus" not in wire  # the developer's reply is not the review


def test_max_cuts_a_run_and_the_next_run_completes_it_without_duplicates(monkeypatch):
    store = MemoryCheckpoints()
    serve(monkeypatch, RUN1)
    first, second = ListSink(), ListSink()
    stats = produce(APP, client=client(), publisher=first, checkpoints=store, max_reviews=2)
    assert stats.published == 2 and stats.watermark is None  # not walked to the end yet
    stats = produce(APP, client=client(), publisher=second, checkpoints=store, page_size=4)
    ids = [e.review_id for _, _, e in first.events + second.events]
    assert len(ids) == len(set(ids)) == 5
    assert stats.duplicates == 2 and stats.watermark == T


def test_since_stops_at_the_date(monkeypatch):
    server = serve(monkeypatch, RUN1)
    sink = ListSink()
    produce(
        APP,
        client=client(),
        publisher=sink,
        checkpoints=MemoryCheckpoints(),
        since=datetime(2024, 6, 1, 7, 45, tzinfo=UTC),
        page_size=4,
    )
    assert [e.review_time for _, _, e in sink.events] == [
        T,
        datetime(2024, 6, 1, 7, 50, tzinfo=UTC),
    ]
    assert len(server.requests) == 1


def test_unreachable_google_play_is_retried_with_backoff_then_a_clear_error(monkeypatch):
    calls = []

    def offline(request):
        calls.append(request)
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr("google_play_scraper.utils.request.urlopen", offline)
    slept: list[float] = []
    store = MemoryCheckpoints()
    sink = ListSink()
    with pytest.raises(GooglePlayUnavailable) as err:
        produce(
            APP, client=client(retries=3, sleep=slept.append), publisher=sink, checkpoints=store
        )
    assert "cannot be reached" in str(err.value) and "name resolution" in str(err.value)
    # (the rate limiter sleeps a few milliseconds between requests too)
    assert [s for s in slept if s >= 1] == [2.0, 4.0, 8.0]
    assert len(calls) == 4 * 3  # the library itself tries each request three times
    assert sink.events == [] and store.get(PRODUCER, checkpoint_key(APP, "id", "id")) is None


def test_unknown_app_and_garbage_answers(monkeypatch):
    def not_found(request):
        raise urllib.error.HTTPError(request.full_url, 404, "Not Found", {}, None)

    monkeypatch.setattr("google_play_scraper.utils.request.urlopen", not_found)
    with pytest.raises(AppNotFound, match="no app 'com.gojek.app'"):
        produce(APP, client=client(), publisher=ListSink(), checkpoints=MemoryCheckpoints())

    class Garbage:
        def read(self) -> bytes:
            return b"<html>captcha</html>"

    monkeypatch.setattr("google_play_scraper.utils.request.urlopen", lambda r: Garbage())
    with pytest.raises(UnexpectedResponse):
        produce(APP, client=client(), publisher=ListSink(), checkpoints=MemoryCheckpoints())


def test_an_app_without_reviews_publishes_nothing(monkeypatch):
    serve(monkeypatch, {None: "empty.txt"})
    sink = ListSink()
    stats = produce(APP, client=client(), publisher=sink, checkpoints=MemoryCheckpoints())
    assert sink.events == [] and stats.pages == 1 and stats.watermark is None


def test_importing_the_scraper_does_not_switch_off_tls_verification():
    import google_play_scraper.utils.request  # noqa: F401, PLC0415  (its import disables verification)

    _library()
    assert ssl._create_default_https_context is not ssl._create_unverified_context
