"""Pure parts of the feedback join: outcome rows, the rolling error rate (JSON state), SQL.

A review's true label is its latest ``human`` feedback, else its latest ``rating`` feedback
(the same rule as ``trainer.data.load_postgres``). The join runs in PostgreSQL, where the sink
has stored the predictions: it sets ``prediction_logs.actual_label`` on every prediction of the
review (champion and shadow) and returns the rows it changed: those are the outcomes.

Feedback on a gateway request (``POST /feedback {request_id, label}``) carries the request id
in ``review_id`` (the subject of the label); it joins the request's stored predictions
(``prediction_logs.request_id``, written by the request-logs agent), every text of the request.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from schemas.events import LabelFeedback

FEEDBACK_COLUMNS = ("feedback_id", "review_id", "label", "source", "time")
INSERT_FEEDBACK = (
    'INSERT INTO feedback (feedback_id, review_id, label, source, "time") '
    "VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING"
)
_CHOSEN = """
    SELECT DISTINCT ON (f.review_id) f.review_id, f.label
    FROM feedback AS f
    WHERE {where}
    ORDER BY f.review_id, (f.source = 'human') DESC, f."time" DESC, f.feedback_id DESC
"""
_UPDATE = """
WITH chosen AS ({chosen})
UPDATE prediction_logs AS p SET actual_label = c.label
FROM chosen AS c
WHERE (p.review_id = c.review_id OR p.request_id = c.review_id)
    AND p.actual_label IS DISTINCT FROM c.label
RETURNING coalesce(p.review_id, p.request_id), p.label, p.actual_label, p.model_version, p.shadow
"""
#: Join the feedback of the given review ids (``%(ids)s``) to their predictions.
JOIN_BY_IDS = _UPDATE.format(chosen=_CHOSEN.format(where="f.review_id = ANY(%(ids)s)"))
#: Join feedback that arrived before its prediction (recent feedback, unlabelled predictions).
RECONCILE = _UPDATE.format(
    chosen=_CHOSEN.format(
        where="f.created_at >= now() - make_interval(secs => %(lookback_s)s) AND EXISTS ("
        "SELECT 1 FROM prediction_logs AS q "
        "WHERE (q.review_id = f.review_id OR q.request_id = f.review_id) "
        "AND q.actual_label IS NULL)"
    )
)


@dataclass(frozen=True, slots=True)
class Outcome:
    """One prediction whose true label is now known (``review_id``: the review's id, or the
    gateway request's id for an ad-hoc prediction)."""

    review_id: str
    label: str
    actual_label: str
    model_version: str
    shadow: bool

    @property
    def correct(self) -> bool:
        return self.label == self.actual_label


def feedback_row(e: LabelFeedback) -> tuple[Any, ...]:
    return (e.feedback_id, e.review_id, e.label, e.source, e.time)


def outcomes(rows: list[tuple[Any, ...]]) -> list[Outcome]:
    """``RETURNING`` rows of the join as outcomes."""
    return [Outcome(str(r[0]), str(r[1]), str(r[2]), str(r[3]), bool(r[4])) for r in rows]


class RollingError:
    """The error rate over the last ``size`` outcomes; reducer over ``{"outcomes": [0|1, ...]}``
    (1 = wrong), JSON-serialisable so the drift agent keeps it in its table."""

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError(f"size must be >= 1, got {size}")
        self.size = size

    def initialize(self) -> dict[str, Any]:
        return {"outcomes": []}

    def agg(self, state: dict[str, Any], correct: bool) -> dict[str, Any]:
        seen: list[int] = state["outcomes"]
        seen.append(0 if correct else 1)
        if len(seen) > self.size:
            del seen[: len(seen) - self.size]
        return state

    def result(self, state: dict[str, Any]) -> tuple[float | None, int]:
        """``(error rate or None when empty, outcomes counted)``."""
        seen = state["outcomes"]
        return (sum(seen) / len(seen) if seen else None), len(seen)
