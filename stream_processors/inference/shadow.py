"""Shadow scoring of the ``challenger`` alias: scored beside the champion, stored, never published.

The infer agent hands each batch it scored to :meth:`Shadow.after_batch`; when a challenger is
loaded it scores the same texts and sends the scores to the internal ``sentiment.shadow.v1``
topic, whose sink agent writes them to prediction_logs with ``shadow = true`` (sentiment.v1 and
its consumers never see them). :func:`shadow_report` compares the two from PostgreSQL:
agreement on the same reviews and accuracy on those with feedback.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import faust
import psycopg
from prometheus_client import CollectorRegistry, Counter

from schemas.events import SentimentScored
from stream_processors.inference.batching import BatchScorer, PredictorHolder, ScoreItem
from stream_processors.kafka.guard import BatchGuard
from stream_processors.records import decode_records, records_of
from stream_processors.sink.rows import PREDICTION_LOGS, RowBatch, prediction_row
from stream_processors.sink.stage import store
from stream_processors.wiring import Deps, Outputs, raw_topic

log = logging.getLogger(__name__)
SINK_STAGE = "sink_shadow"


class Shadow:
    """Scores batches with the shadow holder's predictor, when it holds one."""

    def __init__(self, holder: PredictorHolder, registry: CollectorRegistry | None = None) -> None:
        self.holder = holder
        self.scorer = BatchScorer(holder)
        self.agreement = Counter(
            "ulasan_shadow_predictions",
            "Challenger scores made in shadow, by agreement with the champion.",
            ["agrees"],
            registry=registry,
        )

    @property
    def active(self) -> bool:
        return self.holder.current is not None

    async def after_batch(
        self,
        items: Sequence[ScoreItem],
        champion: Sequence[SentimentScored],
        send: Callable[[SentimentScored], Awaitable[None]],
    ) -> None:
        """Score ``items`` with the challenger and ``send`` each score; never raises (a failing
        challenger must not hurt the champion's stream: it is logged and counted)."""
        if not self.active:
            return
        try:
            batch = await self.scorer.score(items)
        except Exception:
            log.exception("shadow scoring of %d texts failed", len(items))
            self.agreement.labels("error").inc(len(items))
            return
        for shadow, main in zip(batch.events, champion, strict=True):
            self.agreement.labels(str(shadow.label == main.label).lower()).inc()
            await send(shadow)

    def close(self) -> None:
        self.scorer.close()


def shadow_batch(events: list[SentimentScored]) -> RowBatch:
    """prediction_logs rows with ``shadow = true``."""
    batch = RowBatch()
    for i, e in enumerate(events):
        batch.add(PREDICTION_LOGS, prediction_row(e, shadow=True), i)
    return batch


def register_sink(app: faust.App, deps: Deps, outputs: Outputs) -> Any:
    """The sink agent of sentiment.shadow.v1 (prediction_logs, shadow = true)."""
    cfg = deps.settings.worker
    guard = BatchGuard(SINK_STAGE, outputs, deps.metrics)

    async def process(events: Sequence[Any]) -> None:
        good, bad = decode_records(records_of(events), SentimentScored)
        for rejected in bad:
            await outputs.dead_letter(rejected, stage=SINK_STAGE)
        if good:
            batch = shadow_batch([g.event for g in good])
            await store(deps, outputs, batch, good, stage=SINK_STAGE, what="the shadow row")

    @app.agent(raw_topic(app, deps.topics.shadow), name=f"{app.conf.id}.sink_shadow")
    async def sink_shadow(stream: Any) -> None:
        async for events in stream.take_events(
            cfg.sink_batch_size, within=cfg.sink_flush_ms / 1000
        ):
            await guard.run(events, process)

    return sink_shadow


SHADOW_REPORT_SQL = """
SELECT s.model_version AS challenger,
       count(*) AS n,
       avg((s.label = c.label)::int) AS agreement,
       count(s.actual_label) AS n_labelled,
       avg((s.label = s.actual_label)::int) FILTER (WHERE s.actual_label IS NOT NULL)
           AS challenger_accuracy,
       avg((c.label = c.actual_label)::int) FILTER (WHERE c.actual_label IS NOT NULL)
           AS champion_accuracy
FROM prediction_logs AS s
JOIN prediction_logs AS c ON c.review_id = s.review_id AND NOT c.shadow
WHERE s.shadow
GROUP BY s.model_version
ORDER BY s.model_version
"""


def shadow_report(dsn: str) -> list[dict[str, Any]]:
    """Per challenger version: reviews scored in shadow, agreement with the champion, and both
    accuracies on the reviews with feedback (None where none has feedback yet)."""
    with psycopg.connect(dsn, connect_timeout=10) as conn:
        cur = conn.execute(SHADOW_REPORT_SQL)
        cols = [d.name for d in cur.description or []]
        return [
            {
                k: (float(v) if hasattr(v, "as_integer_ratio") and k != "challenger" else v)
                for k, v in zip(cols, row, strict=True)
            }
            for row in cur.fetchall()
        ]
