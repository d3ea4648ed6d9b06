"""The sink agents: reviews.clean.v1 -> reviews + text_features, sentiment.v1 -> prediction_logs."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import faust

from schemas.events import Event, ReviewCleaned, SentimentScored
from stream_processors.dlq import SINK_REJECTED, Rejection
from stream_processors.records import Rejected, decode_records, records_of
from stream_processors.sink.rows import RowBatch, prediction_batch, review_batch

if TYPE_CHECKING:
    from stream_processors.app import Deps, Outputs

E = TypeVar("E", bound=Event)
STAGE = "sink"


def register(app: faust.App, deps: Deps, outputs: Outputs) -> dict[str, Any]:
    """Attach both sink agents to ``app``; return them by name."""
    from stream_processors.app import topic

    cfg = deps.settings.worker
    metrics = deps.metrics
    sink = deps.sink

    def sink_agent(
        source_name: str, model: type[E], to_rows: Callable[[list[E]], RowBatch], name: str
    ) -> Any:
        @app.agent(topic(app, source_name), name=f"{app.conf.id}.{name}")
        async def write(stream: Any) -> None:
            # The batch is acked (and its offsets become committable) only when this body
            # returns, and sink.write returns only after PostgreSQL committed the rows: it
            # retries for as long as PostgreSQL is away, so consuming pauses meanwhile.
            async for events in stream.take_events(
                cfg.sink_batch_size, within=cfg.sink_flush_ms / 1000.0
            ):
                records = records_of(events)
                metrics.events.labels(name).inc(len(records))
                good, bad = decode_records(records, model)
                for rejected in bad:
                    await outputs.dead_letter(rejected, stage=STAGE)
                if not good:
                    continue
                refused = await sink.write(to_rows([g.event for g in good]))
                for index in sorted(refused):
                    rejection = Rejection(SINK_REJECTED, "PostgreSQL refused the row (see log)")
                    await outputs.dead_letter(Rejected(good[index].record, rejection), stage=STAGE)

        return write

    return {
        "sink_reviews": sink_agent(deps.topics.clean, ReviewCleaned, review_batch, "sink_reviews"),
        "sink_predictions": sink_agent(
            deps.topics.sentiment, SentimentScored, prediction_batch, "sink_predictions"
        ),
    }
