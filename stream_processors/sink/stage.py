"""The sink stage: reviews, text_features and prediction_logs of a scored batch, in one write."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from schemas.events import ReviewCleaned, SentimentScored
from stream_processors.dlq import SINK_REJECTED, Rejection
from stream_processors.records import Decoded, Rejected
from stream_processors.sink.rows import PREDICTION_LOGS, RowBatch, prediction_row, review_batch
from stream_processors.wiring import Deps, Outputs

STAGE = "sink"


async def store(
    deps: Deps,
    outputs: Outputs,
    batch: RowBatch,
    sources: Sequence[Decoded[Any]],
    *,
    stage: str,
    what: str = "the row",
) -> set[int]:
    """Write ``batch`` (row sources index ``sources``) in one transaction, retrying while
    PostgreSQL is away; dead-letter each source whose rows PostgreSQL refused for their content
    (reason ``sink_rejected``) and return their indexes."""
    refused: set[int] = await deps.sink.write(batch)
    for index in sorted(refused):
        rejection = Rejection(SINK_REJECTED, f"PostgreSQL refused {what} (see log)")
        await outputs.dead_letter(Rejected(sources[index].record, rejection), stage=stage)
    return refused


class SinkStage:
    """Writes what the infer agent produced for one batch; called before the batch is acked."""

    def __init__(self, deps: Deps, outputs: Outputs) -> None:
        self._deps = deps
        self._outputs = outputs

    async def write(
        self, good: Sequence[Decoded[ReviewCleaned]], scored: Sequence[SentimentScored | None]
    ) -> list[SentimentScored | None]:
        """Write every review with its features, and its score where it has one, in one
        transaction (``sink.write`` returns only once PostgreSQL committed; it retries while
        PostgreSQL is away). A record whose rows PostgreSQL refuses for their content is
        dead-lettered with reason ``sink_rejected``; its score comes back as None (the other
        scores come back unchanged, in order)."""
        batch = review_batch([g.event for g in good])
        for i, s in enumerate(scored):
            if s is not None:
                batch.add(PREDICTION_LOGS, prediction_row(s), i)
        self._deps.metrics.events.labels(STAGE).inc(len(good))
        refused = await store(self._deps, self._outputs, batch, good, stage=STAGE)
        return [None if i in refused else s for i, s in enumerate(scored)]
