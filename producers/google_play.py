"""Google Play reviews into reviews.raw.v1, incrementally, through ``google-play-scraper``.

Pages are fetched newest first with continuation tokens. The checkpoint (producer
``google_play``, key ``<app_id>:<lang>:<country>``) holds a *watermark* (every review at or
after it has been published), the newest review time, and the ids published at or after the
watermark (dedupe across runs). A run walks down from the newest review until it passes the
watermark (or ``since``), skipping ids it has seen; only a walk that reached the watermark
moves it, so a run cut short by ``max_reviews`` is completed by the next one. Continuation
tokens expire, so a run always starts from the newest page rather than a stored token.

Only reviewId, content, score and time are read from a review: user names and avatars never
leave this module. Requests are rate limited (token bucket) and retried with backoff.

The library is called at its page fetch (``features.reviews._fetch_review_items``): its public
``reviews()`` swallows every fetch error and returns a short page, which looks like "no older
reviews" and would let a network hiccup move the watermark past reviews never fetched.
"""

from __future__ import annotations

import json
import ssl
import time
import urllib.error
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from producers.checkpoints import CheckpointStore
from producers.errors import AppNotFound, GooglePlayUnavailable, UnexpectedResponse
from producers.fields import validation_reason
from producers.ratelimit import TokenBucket
from producers.runner import EventSink
from schemas import topics
from schemas.events import ReviewReceived
from ulasan.core.retry import backoff

PRODUCER = "google_play"
SOURCE = "google_play"
PLAY_URL = "https://play.google.com"
#: The only fields read from a scraped review (no user name, no avatar).
FIELDS = ("reviewId", "content", "score", "at")


def _library() -> Any:
    """Import the scraper, undoing its import-time switch-off of TLS verification."""
    saved = ssl._create_default_https_context
    if saved is ssl._create_unverified_context:  # someone imported the library before us
        saved = ssl.create_default_context
    try:
        from google_play_scraper import Sort, exceptions
        from google_play_scraper.constants.element import ElementSpecs
        from google_play_scraper.constants.request import Formats
        from google_play_scraper.features import reviews as reviews_module
    finally:
        ssl._create_default_https_context = saved
    if not hasattr(reviews_module, "_fetch_review_items"):
        raise UnexpectedResponse(
            "this google-play-scraper version has no _fetch_review_items: pin 1.2.x"
        )
    return Sort, exceptions, ElementSpecs, Formats, reviews_module


@dataclass(frozen=True)
class Page:
    """One page of reviews (only :data:`FIELDS`), newest first, and the next page's token."""

    reviews: list[dict[str, Any]]
    token: str | None


class PlayClient:
    """Fetches review pages: rate limited, transient errors retried with exponential backoff."""

    def __init__(
        self,
        *,
        lang: str = "id",
        country: str = "id",
        requests_per_s: float = 1.0,
        retries: int = 4,
        backoff_s: float = 2.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if retries < 0:
            raise ValueError("retries must be >= 0")
        if backoff_s <= 0:
            raise ValueError("backoff_s must be > 0 seconds")
        self.lang = lang
        self.country = country
        self.retries = retries
        self.backoff_s = backoff_s
        self._sleep = sleep
        self._bucket = TokenBucket(requests_per_s, burst=1, clock=clock, sleep=sleep)
        self.requests = 0

    def fetch(self, app_id: str, count: int, token: str | None) -> Page:
        """The next ``count`` reviews of ``app_id`` after ``token`` (None: the newest)."""
        sort, exceptions, specs, formats, reviews_module = _library()
        url = formats.Reviews.build(lang=self.lang, country=self.country)
        last: BaseException | None = None
        delays = backoff(self.backoff_s)
        for attempt in range(self.retries + 1):
            if attempt:
                self._sleep(next(delays))
            self._bucket.acquire()
            self.requests += 1
            try:
                items, next_token = reviews_module._fetch_review_items(  # noqa: SLF001
                    url, app_id, sort.NEWEST.value, count, None, None, token
                )
            except exceptions.NotFoundError as exc:
                raise AppNotFound(
                    f"Google Play has no app {app_id!r} (404): check the id in the app's "
                    f"store address, {PLAY_URL}/store/apps/details?id=<APP_ID>"
                ) from exc
            except (IndexError, json.JSONDecodeError, TypeError) as exc:
                raise UnexpectedResponse(
                    f"Google Play answered with a body google-play-scraper cannot parse ({exc!r}):"
                    " the page format may have changed; upgrade google-play-scraper"
                ) from exc
            except (exceptions.ExtraHTTPError, urllib.error.URLError, OSError) as exc:
                last = exc
                continue
            except Exception as exc:
                # the library raises a bare Exception when Google keeps answering "rate limited"
                if "PlayGatewayError" not in str(exc):
                    raise
                last = exc
                continue
            reviews = [
                {name: specs.Review[name].extract_content(item) for name in FIELDS}
                for item in items
            ]
            return Page(reviews, next_token if isinstance(next_token, str) else None)
        raise GooglePlayUnavailable(
            f"Google Play cannot be reached at {PLAY_URL} after {self.retries + 1} attempts "
            f"({type(last).__name__}: {last}): check the network or proxy (HTTPS_PROXY) and "
            "run again; the checkpoint keeps everything published so far"
        )


@dataclass
class PlayStats:
    """What one run did."""

    published: int = 0
    duplicates: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    pages: int = 0
    reached_watermark: bool = False
    newest_at: datetime | None = None
    watermark: datetime | None = None


def _aware(value: Any) -> datetime:
    if not isinstance(value, datetime):
        raise ValueError(f"review time {value!r} is not a time")
    # the library builds naive local times with datetime.fromtimestamp
    return value.astimezone(UTC)


def review_event(app_id: str, raw: dict[str, Any]) -> ReviewReceived:
    """The ReviewReceived of a scraped review; ValueError says why it cannot be one."""
    content = raw.get("content")
    if not isinstance(content, str) or not content.strip():
        raise ValueError("no text (a rating without a review)")
    try:
        return ReviewReceived(
            review_id=str(raw["reviewId"]),
            source=SOURCE,
            app_id=app_id,
            text=content,
            rating=raw.get("score"),
            review_time=_aware(raw.get("at")),
        )
    except ValidationError as exc:
        raise ValueError(validation_reason(exc)) from None


def checkpoint_key(app_id: str, lang: str, country: str) -> str:
    return f"{app_id}:{lang}:{country}"


def _ts(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def produce(
    app_id: str,
    *,
    client: PlayClient,
    publisher: EventSink,
    checkpoints: CheckpointStore,
    since: datetime | None = None,
    max_reviews: int | None = None,
    page_size: int = 200,
    max_seen_ids: int = 50_000,
    on_page: Callable[[PlayStats], None] | None = None,
) -> PlayStats:
    """Publish the reviews of ``app_id`` that are new since the last run (see module doc)."""
    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    run = _PlayRun(app_id, client, publisher, checkpoints, since, max_reviews, max_seen_ids)
    token: str | None = None
    while True:
        page = client.fetch(app_id, page_size, token)
        run.stats.pages += 1
        cut = run.publish_page(page)
        token = page.token
        done = run.stats.reached_watermark or cut or token is None
        run.save(complete=done and not cut)
        if on_page is not None:
            on_page(run.stats)
        if done:
            return run.stats


class _PlayRun:
    """One run of :func:`produce`: the checkpoint it resumes from, the ids seen, the saves."""

    def __init__(
        self,
        app_id: str,
        client: PlayClient,
        publisher: EventSink,
        checkpoints: CheckpointStore,
        since: datetime | None,
        max_reviews: int | None,
        max_seen_ids: int,
    ) -> None:
        self.app_id = app_id
        self.client = client
        self.publisher = publisher
        self.checkpoints = checkpoints
        self.since = since
        self.max_reviews = max_reviews
        self.max_seen_ids = max_seen_ids
        self.key = checkpoint_key(app_id, client.lang, client.country)
        self.state = checkpoints.get(PRODUCER, self.key) or {}
        self.watermark = _ts(self.state.get("watermark"))
        self.newest = _ts(self.state.get("newest_at"))
        self.seen: dict[str, str] = dict(self.state.get("seen", {}))  # review id -> time (ISO)
        self.stats = PlayStats(watermark=self.watermark)

    def publish_page(self, page: Page) -> bool:
        """Publish the new reviews of a page, newest first; True when ``max_reviews`` cut it."""
        stats = self.stats
        for raw in page.reviews:
            try:
                at = _aware(raw.get("at"))
            except ValueError as exc:
                stats.skipped.append((str(raw.get("reviewId")), str(exc)))
                continue
            if self._below(at):
                stats.reached_watermark = True
                return False
            rid = str(raw.get("reviewId") or "")
            if rid in self.seen:
                stats.duplicates += 1
                continue
            self.seen[rid] = at.isoformat()
            try:
                event = review_event(self.app_id, raw)
            except ValueError as exc:
                stats.skipped.append((rid, str(exc)))
                continue
            self.publisher.publish(topics.REVIEWS_RAW, event.review_id, event)
            self.newest = at if self.newest is None else max(self.newest, at)
            stats.newest_at = self.newest
            stats.published += 1
            if self.max_reviews is not None and stats.published >= self.max_reviews:
                return True
        return False

    def _below(self, at: datetime) -> bool:
        """Whether a review is older than the watermark or ``since`` (the walk stops there)."""
        return (self.watermark is not None and at < self.watermark) or (
            self.since is not None and at < self.since
        )

    def save(self, complete: bool) -> None:
        """Flush, then checkpoint; a ``complete`` walk moves the watermark to the newest review."""
        self.publisher.flush()
        watermark, newest = self.watermark, self.newest
        new_watermark = watermark
        if complete and newest is not None:
            new_watermark = newest if watermark is None else max(watermark, newest)
        keep = {
            rid: at
            for rid, at in self.seen.items()
            if new_watermark is None or datetime.fromisoformat(at) >= new_watermark
        }
        if len(keep) > self.max_seen_ids:
            ranked = sorted(keep.items(), key=lambda kv: kv[1], reverse=True)
            keep = dict(ranked[: self.max_seen_ids])
        self.checkpoints.put(
            PRODUCER,
            self.key,
            {
                "app_id": self.app_id,
                "lang": self.client.lang,
                "country": self.client.country,
                "watermark": new_watermark.isoformat() if new_watermark else None,
                "newest_at": newest.isoformat() if newest else None,
                "seen": keep,
                "published": int(self.state.get("published", 0)) + self.stats.published,
            },
        )
        self.stats.watermark = new_watermark
