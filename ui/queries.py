"""The SQL of the pages, built from plain filter values (pure: no connection here).

Every builder returns ``(sql, params)`` for psycopg with named placeholders; user text only
ever travels as a parameter. A prediction's source is its review's source, or ``gateway`` for
an ad-hoc request (``request_id`` set); shadow (challenger) rows are left out unless asked for.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

Query = tuple[str, dict[str, Any]]
LABELS = ("negative", "neutral", "positive")
GATEWAY_SOURCE = "gateway"
#: buckets the analytics page groups time by (date_trunc units)
BUCKETS = ("minute", "hour", "day", "week")

_SOURCE = f"COALESCE(r.source, CASE WHEN p.request_id IS NOT NULL THEN '{GATEWAY_SOURCE}' END)"
_APP = "COALESCE(r.app_id, '')"
_FROM = "FROM prediction_logs AS p LEFT JOIN reviews AS r ON r.review_id = p.review_id"


def like_pattern(text: str) -> str:
    r"""``%text%`` for ILIKE with ``%``, ``_`` and ``\`` in ``text`` matched literally."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


@dataclass(frozen=True)
class HistoryFilter:
    """What /history shows: a time range, apps, labels, a confidence range, sources, a text
    search (case-insensitive, literal) and one page of ``page_size`` rows (pages from 0)."""

    since: datetime | None = None
    until: datetime | None = None
    apps: tuple[str, ...] = ()
    labels: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()
    min_confidence: float = 0.0
    max_confidence: float = 1.0
    search: str = ""
    shadow: bool = False
    page: int = 0
    page_size: int = 50

    def __post_init__(self) -> None:
        if not 0 <= self.min_confidence <= self.max_confidence <= 1:
            raise ValueError("confidence range must satisfy 0 <= min <= max <= 1")
        if self.page < 0 or self.page_size < 1:
            raise ValueError("page must be >= 0 and page_size >= 1")
        unknown = set(self.labels) - set(LABELS)
        if unknown:
            raise ValueError(f"unknown labels: {sorted(unknown)}")


def _where(f: HistoryFilter) -> tuple[str, dict[str, Any]]:
    clauses = ["p.confidence BETWEEN %(cmin)s AND %(cmax)s"]
    params: dict[str, Any] = {"cmin": f.min_confidence, "cmax": f.max_confidence}
    if not f.shadow:
        clauses.append("NOT p.shadow")
    if f.since is not None:
        clauses.append('p."timestamp" >= %(since)s')
        params["since"] = f.since
    if f.until is not None:
        clauses.append('p."timestamp" < %(until)s')
        params["until"] = f.until
    if f.apps:
        clauses.append(f"{_APP} = ANY(%(apps)s)")
        params["apps"] = list(f.apps)
    if f.labels:
        clauses.append("p.label = ANY(%(labels)s)")
        params["labels"] = list(f.labels)
    if f.sources:
        clauses.append(f"{_SOURCE} = ANY(%(sources)s)")
        params["sources"] = list(f.sources)
    if f.search.strip():
        clauses.append("p.input ILIKE %(search)s")
        params["search"] = like_pattern(f.search.strip())
    return " AND ".join(clauses), params


def history(f: HistoryFilter) -> Query:
    """One page of predictions, newest first."""
    where, params = _where(f)
    sql = (
        f'SELECT p."timestamp" AS time, p.input AS text, p.label, p.confidence, '
        f"{_APP} AS app, {_SOURCE} AS source, p.model_version, p.actual_label, "
        f"p.processing_time_ms, COALESCE(p.review_id, p.request_id) AS id "
        f'{_FROM} WHERE {where} ORDER BY p."timestamp" DESC, p.event_id '
        f"LIMIT %(limit)s OFFSET %(offset)s"
    )
    return sql, {**params, "limit": f.page_size, "offset": f.page * f.page_size}


def history_count(f: HistoryFilter) -> Query:
    """How many predictions the filter matches (for the page count)."""
    where, params = _where(f)
    return f"SELECT count(*) AS n {_FROM} WHERE {where}", params


def choices() -> Query:
    """The apps and sources seen, for the filters' pick lists."""
    return (
        f"SELECT DISTINCT {_APP} AS app, {_SOURCE} AS source {_FROM} WHERE NOT p.shadow "
        "ORDER BY 1, 2 LIMIT 500",
        {},
    )


# -- analytics -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Window:
    """The analytics range ``[since, until)`` and the time bucket of its series."""

    since: datetime
    until: datetime
    bucket: str = "hour"

    def __post_init__(self) -> None:
        if self.bucket not in BUCKETS:
            raise ValueError(f"bucket must be one of {BUCKETS}")
        if self.until <= self.since:
            raise ValueError("until must be after since")


def _range(w: Window) -> tuple[str, dict[str, Any]]:
    return (
        'NOT p.shadow AND p."timestamp" >= %(since)s AND p."timestamp" < %(until)s',
        {"since": w.since, "until": w.until},
    )


def sentiment_over_time(w: Window) -> Query:
    """Predictions per bucket, app, source and label."""
    where, params = _range(w)
    sql = (
        f'SELECT date_trunc(%(bucket)s, p."timestamp") AS bucket, {_APP} AS app, '
        f"{_SOURCE} AS source, p.label, count(*) AS n {_FROM} WHERE {where} "
        "GROUP BY 1, 2, 3, 4 ORDER BY 1"
    )
    return sql, {**params, "bucket": w.bucket}


def label_shares(w: Window) -> Query:
    where, params = _range(w)
    return f"SELECT p.label, count(*) AS n {_FROM} WHERE {where} GROUP BY 1 ORDER BY 1", params


def confidence_histogram(w: Window, bins: int = 20) -> Query:
    """Predictions per confidence bin ``[i/bins, (i+1)/bins)`` (1.0 falls in the last bin)."""
    where, params = _range(w)
    sql = (
        "SELECT LEAST(width_bucket(p.confidence, 0, 1, %(bins)s), %(bins)s) AS bin, "
        f"count(*) AS n {_FROM} WHERE {where} GROUP BY 1 ORDER BY 1"
    )
    return sql, {**params, "bins": bins}


RATING_LABEL = (
    "CASE WHEN r.rating >= 4 THEN 'positive' WHEN r.rating = 3 THEN 'neutral' "
    "WHEN r.rating <= 2 THEN 'negative' END"
)


def rating_confusion(w: Window) -> Query:
    """Predictions of rated reviews by the label the rating implies (4-5 positive, 3 neutral,
    1-2 negative) and the predicted label."""
    where, params = _range(w)
    sql = (
        f"SELECT {RATING_LABEL} AS rating_label, p.label AS predicted, count(*) AS n "
        f"{_FROM} WHERE {where} AND r.rating IS NOT NULL GROUP BY 1, 2"
    )
    return sql, params


def negative_texts(since: datetime, until: datetime, limit: int = 20000) -> Query:
    """The negative predictions' texts in ``[since, until)`` with their time, newest first."""
    sql = (
        'SELECT p.input AS text, p."timestamp" AS time FROM prediction_logs AS p '
        "WHERE NOT p.shadow AND p.label = 'negative' "
        'AND p."timestamp" >= %(since)s AND p."timestamp" < %(until)s '
        'ORDER BY p."timestamp" DESC LIMIT %(limit)s'
    )
    return sql, {"since": since, "until": until, "limit": limit}


def time_range() -> Query:
    """The first and last prediction's time (the analytics window ends at the last)."""
    return (
        'SELECT min("timestamp") AS first, max("timestamp") AS last FROM prediction_logs '
        "WHERE NOT shadow",
        {},
    )


# -- the closed loop -----------------------------------------------------------------------------
def drift_reports(limit: int = 10) -> Query:
    return (
        "SELECT report_id, window_start, window_end, n_events, model_version, drift_score, "
        "drifted, signals, created_at FROM drift_reports ORDER BY window_end DESC LIMIT %(n)s",
        {"n": limit},
    )


def retrain_runs(limit: int = 10) -> Query:
    return (
        "SELECT run_id, status, reasons, started_at, finished_at, duration_s, decision, "
        "promoted_version, scores, data_sizes, error FROM retrain_runs "
        "ORDER BY started_at DESC LIMIT %(n)s",
        {"n": limit},
    )


def shadow_agreement() -> Query:
    """Per challenger version: reviews scored in shadow, agreement with the champion's label,
    and both accuracies where feedback arrived."""
    return (
        """
SELECT s.model_version AS challenger, count(*) AS n,
       avg((s.label = c.label)::int)::float8 AS agreement,
       count(s.actual_label) AS n_labelled,
       (avg((s.label = s.actual_label)::int) FILTER (WHERE s.actual_label IS NOT NULL))::float8
           AS challenger_accuracy,
       (avg((c.label = c.actual_label)::int) FILTER (WHERE c.actual_label IS NOT NULL))::float8
           AS champion_accuracy
FROM prediction_logs AS s
JOIN prediction_logs AS c ON c.review_id = s.review_id AND NOT c.shadow
WHERE s.shadow
GROUP BY s.model_version ORDER BY s.model_version""",
        {},
    )


# -- the label queue -----------------------------------------------------------------------------
_UNLABELLED = """
SELECT DISTINCT ON (p.review_id) p.review_id, p.input AS text, p.label, p.confidence,
       p.probabilities, p."timestamp" AS time, COALESCE(r.app_id, '') AS app, r.rating
FROM prediction_logs AS p LEFT JOIN reviews AS r ON r.review_id = p.review_id
WHERE NOT p.shadow AND p.review_id IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM feedback AS f WHERE f.review_id = p.review_id
                  AND f.source = 'human')
  {extra}
ORDER BY p.review_id, p."timestamp" DESC
"""


def least_sure(limit: int = 20, skip: tuple[str, ...] = ()) -> Query:
    """Reviews without a human label whose latest prediction is least confident."""
    sql = (
        f"SELECT * FROM ({_UNLABELLED.format(extra='AND NOT (p.review_id = ANY(%(skip)s))')}) "
        "AS q ORDER BY confidence ASC, time DESC LIMIT %(n)s"
    )
    return sql, {"n": limit, "skip": list(skip)}


FEATURE_COLUMNS = (
    "word_count",
    "char_count",
    "avg_word_length",
    "sentiment_words_positive",
    "sentiment_words_negative",
    "exclamation_marks",
    "question_marks",
    "uppercase_ratio",
    "special_chars_count",
    "number_count",
)


def window_features(since: datetime, until: datetime, limit: int = 5000) -> Query:
    """Unlabelled reviews scored in ``[since, until)`` with their confidence and features."""
    extra = 'AND p."timestamp" >= %(since)s AND p."timestamp" < %(until)s'
    cols = ", ".join(f"t.{c}" for c in FEATURE_COLUMNS)
    sql = (
        f"SELECT q.*, {cols} FROM ({_UNLABELLED.format(extra=extra)}) AS q "
        "JOIN text_features AS t ON t.review_id = q.review_id LIMIT %(n)s"
    )
    return sql, {"since": since, "until": until, "n": limit}


def latest_drifted() -> Query:
    """The newest report that found drift (its window and signals)."""
    return (
        "SELECT report_id, window_start, window_end, signals FROM drift_reports "
        "WHERE drifted ORDER BY window_end DESC LIMIT 1",
        {},
    )


def next_retrain_labels() -> Query:
    """What the next retrain will train on: reviews with a label (human or rating feedback,
    or their own rating, as ``trainer.data.load_postgres`` picks them), the human labels
    among them, and the human labels given since the last retrain started."""
    return (
        """
SELECT
  (SELECT count(*) FROM reviews AS r WHERE r.rating IS NOT NULL
     OR EXISTS (SELECT 1 FROM feedback AS f WHERE f.review_id = r.review_id)) AS labelled,
  (SELECT count(DISTINCT f.review_id) FROM feedback AS f
     JOIN reviews AS r ON r.review_id = f.review_id WHERE f.source = 'human') AS human,
  (SELECT count(DISTINCT f.review_id) FROM feedback AS f
     JOIN reviews AS r ON r.review_id = f.review_id WHERE f.source = 'human'
     AND f.time > COALESCE((SELECT max(started_at) FROM retrain_runs), '-infinity'))
     AS human_since_last_retrain""",
        {},
    )


def feedback_rows(review_ids: list[str]) -> Query:
    return (
        "SELECT feedback_id, review_id, label, source, time FROM feedback "
        "WHERE review_id = ANY(%(ids)s) ORDER BY time DESC",
        {"ids": review_ids},
    )


def batch_scores(review_ids: list[str]) -> Query:
    """The latest champion prediction of each of ``review_ids``."""
    return (
        "SELECT DISTINCT ON (p.review_id) p.review_id, p.input AS text, p.label, p.confidence, "
        "p.probabilities, p.model_version FROM prediction_logs AS p "
        "WHERE p.review_id = ANY(%(ids)s) AND NOT p.shadow "
        'ORDER BY p.review_id, p."timestamp" DESC',
        {"ids": review_ids},
    )
