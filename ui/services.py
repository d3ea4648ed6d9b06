"""The UI's connections to the stack, each failure turned into :class:`ServiceDown` (which
service, why, and the command that starts it).

PostgreSQL is read over a read-only connection: the session takes the read-only role
``ulasan_reader`` (SELECT only; migration 0004) and is marked read-only at connect time, so a
page can never write there, even by ending the read-only transaction mode. Writes go
through the gateway (labels: ``POST /feedback``) or Kafka (a large batch: ``reviews.raw.v1``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import httpx
import psycopg
from confluent_kafka import KafkaException, Producer
from psycopg.rows import dict_row

from schemas import topics
from schemas.codec import encode
from schemas.events import ReviewReceived
from ui.errors import ServiceDown
from ui.queries import Query
from ui.settings import UiSettings
from ulasan.core.client import (
    ClientError,
    DeadlineExceeded,
    GatewayClient,
    GatewayUnavailable,
    GatewayUnreachable,
)

STACK_UP = "ulasan stack up"
GATEWAY_UP = "ulasan gateway serve"
WORKER_UP = "ulasan worker"
READ_ONLY = "-c default_transaction_read_only=on"
MIGRATE = "ulasan stack migrate"


def session_options(settings: UiSettings) -> str:
    """libpq ``options`` of a UI session: read-only, and as the reader role when one is set."""
    role = settings.ui.reader_role
    return f"{READ_ONLY} -c role={role}" if role else READ_ONLY


@contextmanager
def read_only(settings: UiSettings, timeout_s: int = 3) -> Iterator[psycopg.Connection[Any]]:
    """A read-only connection to ulasan's database (rows as dicts)."""
    try:
        conn = psycopg.connect(
            settings.postgres.dsn,
            connect_timeout=timeout_s,
            options=session_options(settings),
            row_factory=dict_row,
            autocommit=True,
        )
    except psycopg.OperationalError as exc:
        if settings.ui.reader_role and "role" in str(exc) and "does not exist" in str(exc):
            why = f"{_first_line(exc)} (the read-only role comes with the migrations)"
            raise ServiceDown("PostgreSQL", why, MIGRATE) from exc
        raise ServiceDown("PostgreSQL", _first_line(exc), STACK_UP) from exc
    try:
        conn.read_only = True
        yield conn
    finally:
        conn.close()


def rows(settings: UiSettings, query: Query) -> list[dict[str, Any]]:
    """The rows of one query, on its own read-only connection."""
    sql, params = query
    with read_only(settings) as conn:
        try:
            return list(conn.execute(sql, params).fetchall())
        except psycopg.errors.UndefinedTable as exc:
            raise ServiceDown("PostgreSQL", f"{_first_line(exc)} (not migrated)", MIGRATE) from exc
        except psycopg.OperationalError as exc:
            raise ServiceDown("PostgreSQL", _first_line(exc), STACK_UP) from exc


def many(settings: UiSettings, queries: Sequence[Query]) -> list[list[dict[str, Any]]]:
    """The rows of several queries over one read-only connection."""
    with read_only(settings) as conn:
        try:
            return [list(conn.execute(sql, p).fetchall()) for sql, p in queries]
        except psycopg.OperationalError as exc:
            raise ServiceDown("PostgreSQL", _first_line(exc), STACK_UP) from exc


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [exc.__class__.__name__])[0]


# -- Prometheus and MLflow -----------------------------------------------------------------------
def prometheus(settings: UiSettings, promql: str, timeout_s: float = 3.0) -> list[dict[str, Any]]:
    """The instant vector of ``promql`` (``[{"metric": {...}, "value": float}]``)."""
    url = settings.prometheus.url
    try:
        resp = httpx.get(f"{url}/api/v1/query", params={"query": promql}, timeout=timeout_s)
        body = resp.json()
    except (httpx.HTTPError, ValueError) as exc:
        raise ServiceDown("Prometheus", f"{url}: {exc}", STACK_UP) from exc
    if body.get("status") != "success":
        raise ServiceDown("Prometheus", f"query failed: {body.get('error')}", STACK_UP)
    return [{"metric": r["metric"], "value": float(r["value"][1])} for r in body["data"]["result"]]


def prometheus_range(
    settings: UiSettings, promql: str, minutes: int = 15, step_s: int = 15
) -> list[dict[str, Any]]:
    """``[{"time": epoch s, "value": float}]`` of the first series of ``promql`` over the last
    ``minutes``."""
    url = settings.prometheus.url
    end = time.time()
    params: dict[str, str | float] = {
        "query": promql,
        "start": end - minutes * 60,
        "end": end,
        "step": step_s,
    }
    try:
        body = httpx.get(f"{url}/api/v1/query_range", params=params, timeout=5).json()
    except (httpx.HTTPError, ValueError) as exc:
        raise ServiceDown("Prometheus", f"{url}: {exc}", STACK_UP) from exc
    result = body.get("data", {}).get("result") or []
    if not result:
        return []
    return [{"time": float(t), "value": float(v)} for t, v in result[0]["values"]]


def mlflow_versions(settings: UiSettings) -> list[dict[str, Any]]:
    """The registered model's versions, newest first, each with its aliases and the
    accuracy/macro-F1 recorded on the fixed evaluation set."""
    base = settings.mlflow.uri.rstrip("/") + "/api/2.0/mlflow"
    name = settings.mlflow.registered_model
    try:
        got = httpx.get(f"{base}/registered-models/get", params={"name": name}, timeout=5)
        if got.status_code == 404:
            return []
        got.raise_for_status()
        found = httpx.get(
            f"{base}/model-versions/search",
            params={"filter": f"name='{name}'", "max_results": 50},
            timeout=5,
        )
        found.raise_for_status()
    except (httpx.HTTPError, ValueError) as exc:
        raise ServiceDown("MLflow", f"{settings.mlflow.uri}: {exc}", STACK_UP) from exc
    aliases: dict[str, list[str]] = {}
    for a in got.json().get("registered_model", {}).get("aliases", []):
        aliases.setdefault(str(a["version"]), []).append(a["alias"])
    out = []
    for mv in found.json().get("model_versions", []):
        tags = {t["key"]: t["value"] for t in mv.get("tags", [])}
        out.append(
            {
                "version": int(mv["version"]),
                "aliases": ", ".join(sorted(aliases.get(str(mv["version"]), []))),
                "created": time.strftime(
                    "%Y-%m-%d %H:%M", time.gmtime(int(mv["creation_timestamp"]) / 1000)
                ),
                "accuracy": _float(tags.get("ulasan.eval.accuracy")),
                "macro_f1": _float(tags.get("ulasan.eval.macro_f1")),
                "run_id": mv.get("run_id"),
            }
        )
    return sorted(out, key=lambda v: -v["version"])


def _float(value: str | None) -> float | None:
    try:
        return None if value is None else float(value)
    except ValueError:
        return None


# -- the gateway ---------------------------------------------------------------------------------
def gateway(settings: UiSettings) -> GatewayClient:
    cfg = settings.ui
    return GatewayClient(
        cfg.gateway_url, api_key=cfg.api_key, timeout_s=cfg.timeout_s, ca_file=cfg.ca_file
    )


def as_service_down(exc: ClientError, settings: UiSettings) -> ServiceDown | ClientError:
    """The gateway's errors that mean a process is down, as :class:`ServiceDown`."""
    if isinstance(exc, GatewayUnreachable):
        return ServiceDown(
            "the gateway", f"nothing answers at {settings.ui.gateway_url}", GATEWAY_UP
        )
    if isinstance(exc, DeadlineExceeded):
        return ServiceDown("the stream workers", "no worker answered in time", WORKER_UP)
    if isinstance(exc, GatewayUnavailable):
        return ServiceDown("Kafka (behind the gateway)", str(exc), STACK_UP)
    return exc


@contextmanager
def via_gateway(settings: UiSettings) -> Iterator[GatewayClient]:
    """A gateway client whose down-service errors arrive as :class:`ServiceDown`."""
    client = gateway(settings)
    try:
        yield client
    except ClientError as exc:
        raise as_service_down(exc, settings) from exc
    finally:
        client.close()


# -- Kafka (a large batch, replayed) -------------------------------------------------------------
def publish_reviews(
    settings: UiSettings,
    events: Sequence[ReviewReceived],
    progress: Callable[[int], None] | None = None,
    timeout_s: float = 30.0,
) -> int:
    """Publish ``events`` to reviews.raw.v1 (idempotent producer, key = review id); call
    ``progress(n acknowledged)`` as Kafka acknowledges; the number acknowledged. Raises
    :class:`ServiceDown` when Kafka does not take them all."""
    topic = settings.ui.topic_prefix + topics.REVIEWS_RAW
    producer = Producer(
        {
            "bootstrap.servers": settings.kafka.bootstrap_servers,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 20,
            "message.timeout.ms": int(timeout_s * 1000),
            "client.id": "ulasan-ui",
        }
    )
    acked = 0
    failures: list[str] = []

    def delivered(err: Any, msg: Any) -> None:
        nonlocal acked
        if err is not None:
            failures.append(str(err))
        else:
            acked += 1

    try:
        for i, event in enumerate(events):
            producer.produce(topic, key=event.review_id, value=encode(event), on_delivery=delivered)
            if i % 200 == 199:
                producer.poll(0)
                if progress:
                    progress(acked)
        left = producer.flush(timeout_s)
    except (KafkaException, BufferError) as exc:
        raise ServiceDown("Kafka", str(exc), STACK_UP) from exc
    if progress:
        progress(acked)
    if left or failures:
        reason = failures[0] if failures else f"{left} reviews not acknowledged in {timeout_s:.0f}s"
        raise ServiceDown("Kafka", f"{acked} of {len(events)} published; {reason}", STACK_UP)
    return acked


def stored_json(value: Any) -> dict[str, float]:
    """A ``probabilities`` column (jsonb comes back parsed; text is parsed here)."""
    if isinstance(value, str):
        value = json.loads(value)
    return {str(k): float(v) for k, v in (value or {}).items()}
