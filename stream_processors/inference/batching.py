"""Micro-batch scoring shared by every inference source: a swappable predictor and pure mapping.

The infer agent (reviews.clean.v1) and, later, the gateway's predict.requests.v1 feed lists of
:class:`ScoreItem` to one :class:`BatchScorer`; it runs the current predictor on a single worker
thread (so the event loop keeps heartbeating and batches never overlap) and maps predictions to
``SentimentScored`` events. :class:`PredictorHolder` is read once per batch, so a hot reload
(``swap``) takes effect between batches, never inside one.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import cast

from schemas.events import SentimentScored, Timings
from ulasan.core.inference.predictor import CleanedScorer, Prediction, Predictor


def event_id(
    model_name: str,
    model_version: str,
    *,
    review_id: str | None = None,
    request_id: str | None = None,
    index: int = 0,
) -> str:
    """Deterministic id of a score: the same subject and model always give the same id.

    Replays therefore produce the same ``event_id`` and the sink's ``ON CONFLICT`` drops them.
    """
    if (review_id is None) == (request_id is None):
        raise ValueError("exactly one of review_id and request_id must be given")
    subject = f"review\x1f{review_id}" if review_id is not None else f"request\x1f{request_id}"
    raw = f"{subject}\x1f{index}\x1f{model_name}\x1f{model_version}".encode()
    return hashlib.sha256(raw).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class ScoreItem:
    """One text to score and who asked: a review (``review_id``) or a request's text.

    ``arrived_at`` (epoch seconds) is when the text entered the input topic; the time from
    there to the start of its batch is its queue time. ``cleaned`` is the text as the clean
    stage cleaned it (``ulasan.core.text.clean``, lower-cased), where it did: a predictor that
    cleans the same way then scores it without cleaning it again. ``source`` is the review's
    source, which a model trained with domain tags reads (``ulasan.core.inference.domain``);
    a request's text has none.
    """

    text: str
    arrived_at: float
    review_id: str | None = None
    request_id: str | None = None
    index: int = 0
    reply_to: str | None = None
    cleaned: str | None = None
    source: str | None = None


def to_scored(
    items: Sequence[ScoreItem],
    predictions: Sequence[Prediction],
    *,
    model_name: str,
    model_version: str,
    batch_started_at: float,
    inference_s: float,
    include_text: bool = True,
) -> list[SentimentScored]:
    """Pure mapping of a scored batch to events (one per item, same order)."""
    if len(items) != len(predictions):
        raise ValueError(f"{len(items)} items but {len(predictions)} predictions")
    inference_ms = inference_s * 1000.0
    scored_at = datetime.fromtimestamp(batch_started_at + inference_s, UTC)
    out = []
    for item, pred in zip(items, predictions, strict=True):
        queue_ms = max(0.0, (batch_started_at - item.arrived_at) * 1000.0)
        out.append(
            SentimentScored(
                event_id=event_id(
                    model_name,
                    model_version,
                    review_id=item.review_id,
                    request_id=item.request_id,
                    index=item.index,
                ),
                review_id=item.review_id,
                request_id=item.request_id,
                index=item.index,
                reply_to=item.reply_to,
                label=pred.label,  # the runtime's labels are LABELS
                confidence=min(1.0, max(0.0, pred.confidence)),
                probabilities={k: min(1.0, max(0.0, v)) for k, v in pred.probabilities.items()},
                model_name=model_name,
                model_version=model_version,
                timings=Timings(
                    queue_ms=queue_ms, inference_ms=inference_ms, total_ms=queue_ms + inference_ms
                ),
                text=item.text if include_text else None,
                scored_at=scored_at,
            )
        )
    return out


class PredictorHolder:
    """The predictor in service; ``swap`` replaces it atomically (between batches)."""

    def __init__(self, predictor: Predictor) -> None:
        self._predictor = predictor
        self._lock = threading.Lock()

    @property
    def current(self) -> Predictor:
        return self._predictor

    def swap(self, predictor: Predictor) -> Predictor:
        """Put ``predictor`` in service; return the one it replaces."""
        with self._lock:
            old, self._predictor = self._predictor, predictor
        return old


@dataclass(frozen=True, slots=True)
class ScoredBatch:
    """The events of one batch and how long the model took for it; ``token_counts`` are each
    text's (non-special, unknown) tokens where the predictor counted them while scoring."""

    events: list[SentimentScored]
    model_name: str
    model_version: str
    inference_s: float
    token_counts: list[tuple[int, int]] | None = None


def _run(
    predictor: Predictor, items: Sequence[ScoreItem]
) -> tuple[list[Prediction], list[tuple[int, int]] | None]:
    """Score ``items``: from their cleaned texts (one tokenisation gives the scores and the
    token counts) when each has one and the predictor takes them, else from the raw texts."""
    cleaned = [i.cleaned for i in items]
    sources = [i.source for i in items]
    if (
        isinstance(predictor, CleanedScorer)
        and predictor.lowercase
        and all(c is not None for c in cleaned)
    ):
        return predictor.score_cleaned(cast(list[str], cleaned), sources=sources)
    return predictor.predict([i.text for i in items], sources=sources), None


class BatchScorer:
    """Scores batches with the holder's current predictor on one dedicated thread."""

    def __init__(self, holder: PredictorHolder, *, include_text: bool = True) -> None:
        self.holder = holder
        self.include_text = include_text
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ulasan-infer")

    async def score(self, items: Sequence[ScoreItem]) -> ScoredBatch:
        """Score ``items`` (exceptions of the predictor propagate unchanged)."""
        predictor = self.holder.current  # read once: a swap applies from the next batch
        started = time.time()
        t0 = time.perf_counter()
        loop = asyncio.get_running_loop()
        predictions, counts = await loop.run_in_executor(self._executor, _run, predictor, items)
        inference_s = time.perf_counter() - t0
        events = to_scored(
            items,
            predictions,
            model_name=predictor.model_name,
            model_version=predictor.model_version,
            batch_started_at=started,
            inference_s=inference_s,
            include_text=self.include_text,
        )
        return ScoredBatch(
            events, predictor.model_name, predictor.model_version, inference_s, counts
        )

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
