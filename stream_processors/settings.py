"""Settings of the stream worker: the shared ``Settings`` tree plus a ``worker`` group."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, model_validator

from schemas import topics
from stream_processors.drift.config import DriftConfig
from stream_processors.triggers.logic import TriggerConfig
from ulasan.core.registry import champion_uri
from ulasan.core.settings import WORKER_GROUP, Settings

#: What one worker process runs (``ulasan worker --lane``): ``all`` (every agent, one consumer
#: group), ``reviews`` (every agent but the gateway's requests) or ``requests`` (only
#: predict.requests.v1, in a consumer group of its own: :data:`REQUESTS_GROUP_SUFFIX`).
Lane = Literal["all", "reviews", "requests"]
LANES: tuple[Lane, ...] = ("all", "reviews", "requests")
#: The requests lane's consumer group is the worker's app id with this suffix: a group's members
#: must all run the same agents, so the lane cannot share the review workers' group.
REQUESTS_GROUP_SUFFIX = "-requests"


def requests_group(app_id: str) -> str:
    """The consumer group (faust app id) of the requests lane beside workers of ``app_id``."""
    return app_id + REQUESTS_GROUP_SUFFIX


def review_topics(clean_and_score: bool) -> tuple[str, ...]:
    """The review topics (canonical names) review workers read: reviews.raw.v1, and
    reviews.clean.v1 where the infer agent consumes it (``clean_and_score`` off)."""
    if clean_and_score:
        return (topics.REVIEWS_RAW,)
    return (topics.REVIEWS_RAW, topics.REVIEWS_CLEAN)


def configured_review_topics() -> tuple[str, ...]:
    """:func:`review_topics` of workers started with this process's environment
    (``ULASAN_WORKER__CLEAN_AND_SCORE``): what a lag probe beside them must watch."""
    return WorkerSettings().worker.review_topics


#: A dead letter's payload limit: 256 KiB (key and value cut alike stay under 700 KB base64).
DLQ_MAX_PAYLOAD_BYTES = 256 * 1024


class WorkerConfig(BaseModel):
    """Knobs of one stream worker (env ``ULASAN_WORKER__<FIELD>``)."""

    app_id: str = Field(
        WORKER_GROUP,
        min_length=1,
        description="faust app id = Kafka consumer group; workers with one id share partitions",
    )
    lane: Lane = Field(
        "all",
        description="what this worker runs: all (every agent), reviews (every agent but the "
        "gateway's requests) or requests (only predict.requests.v1, in the consumer group "
        "<app_id>-requests, so ad-hoc requests never wait behind a review backlog)",
    )
    nice: int = Field(
        0,
        ge=0,
        le=19,
        description="raise the process's nice value by this much at start (0 = unchanged): "
        "e.g. 10 for a reviews-lane worker, so a requests lane on the same cores is scheduled "
        "first while a review backlog drains",
    )
    model: str = Field(
        "",
        description="models:/NAME@ALIAS, models:/NAME/VERSION or a serving folder; empty (the "
        "default): models:/<mlflow.registered_model>@champion, the model the trainer promotes",
    )
    model_wait_s: float = Field(
        900.0,
        ge=0,
        description="how long a worker waits for its model to appear in the registry (a fresh "
        "deployment trains the first champion while workers start), retrying with a doubling "
        "backoff and logging each try; 0 = exit at once (code 2)",
    )
    model_retry_initial_s: float = Field(1.0, gt=0, description="first wait for the model")
    model_retry_max_s: float = Field(30.0, gt=0, description="longest wait between tries")
    topic_prefix: str = Field(
        "",
        description="prepended to every topic name (isolates tests and tenants), e.g. 't1.'",
    )
    max_batch: int = Field(
        256,
        ge=1,
        le=4096,
        description="reviews per micro-batch of the infer agent: one PostgreSQL transaction, "
        "one sentiment.v1 send and one drift message per batch. 256 drains a backlog about "
        "13 % faster than 64 (docs/benchmarks.md); a batch is cut after max_wait_ms anyway, "
        "and predict requests have their own bound (request_max_batch)",
    )
    clean_and_score: bool = Field(
        True,
        description="one agent cleans each batch of reviews.raw.v1, publishes it to "
        "reviews.clean.v1 for downstream consumers and scores, stores and publishes the same "
        "batch from memory; false: the infer agent consumes reviews.clean.v1 (a hop of its "
        "own: a consume, a decode and faust's per-record path for every review)",
    )
    request_max_batch: int = Field(
        64,
        ge=1,
        le=4096,
        description="requests per micro-batch of the predict-requests agent: kept small so a "
        "request never waits behind hundreds of others' inference",
    )
    inference_batch: int = Field(
        8,
        ge=1,
        le=4096,
        description="texts per ONNX Runtime call: a micro-batch is sorted by token length and "
        "run in runs of this many, so short reviews are not padded to the longest of 64",
    )
    max_wait_ms: float = Field(
        20.0, gt=0, description="longest wait for a batch to fill before scoring what is there"
    )
    request_max_wait_ms: float = Field(
        0.0,
        ge=0,
        description="gateway requests (predict.requests.v1): 0 scores what is ready at once "
        "(batches form only from requests that arrive during a batch); > 0 waits up to this "
        "long for a batch to fill",
    )
    sink_batch_size: int = Field(500, ge=1, description="rows per PostgreSQL write")
    sink_flush_ms: float = Field(200.0, gt=0, description="longest wait before writing a batch")
    metrics_port: int | None = Field(
        None,
        ge=0,
        le=65535,
        description="/metrics port; None = Settings.metrics_port; 0 = no metrics server",
    )
    metrics_host: str = Field(
        "127.0.0.1",
        description="address Prometheus scrapes this worker at (registered as a file_sd target)",
    )
    dlq_enabled: bool = Field(
        True, description="send bad records to <topic>.dlq; off = log and count them only"
    )
    dlq_max_payload_bytes: int = Field(
        DLQ_MAX_PAYLOAD_BYTES,
        ge=1024,
        le=350_000,
        description="a dead letter keeps at most this many bytes of the record's value (and "
        "key); a longer one is cut, with its size and SHA-256, so the dead letter (base64, "
        "4/3 larger) always fits under the producer's 1 MB message limit",
    )
    pg_pool_size: int = Field(2, ge=1)
    pg_connect_timeout_s: float = Field(5.0, gt=0)
    pg_retry_initial_s: float = Field(0.2, gt=0, description="first backoff after a failed write")
    pg_retry_max_s: float = Field(10.0, gt=0, description="backoff ceiling (it doubles up to it)")
    intra_op_threads: int | None = Field(
        None, ge=1, description="ONNX Runtime threads per batch; None = its default"
    )
    intra_op_spinning: bool = Field(
        False,
        description="let ONNX Runtime's idle threads spin-wait between batches (lower latency "
        "per call, but they take CPU from the event loop, Kafka and the sink in a worker)",
    )
    producer_linger_ms: float = Field(
        5.0,
        ge=0,
        le=1000,
        description="how long the producer gathers messages into one produce request (faust's "
        "producer_linger): 0 sends each as soon as it is queued, many small requests that cost "
        "a socket write each (the pipeline profile's largest item); a batch's delivery wait "
        "grows by at most this",
    )
    commit_interval_s: float = Field(1.0, gt=0, description="how often acked offsets commit")
    session_timeout_s: float = Field(
        30.0, ge=6, description="a silent worker leaves the group after this (>= broker minimum)"
    )
    heartbeat_interval_s: float = Field(3.0, gt=0, description="< session_timeout_s / 3")
    lag_interval_s: float = Field(5.0, gt=0, description="how often consumer lag is measured")
    stall_seek_s: float = Field(
        20.0,
        gt=0,
        description="seek a partition back to its committed offset when it stayed below the "
        "log end this long with nothing in flight (see stream_processors/kafka/transport.py)",
    )
    recovery_stall_s: float = Field(
        5.0,
        gt=0,
        description="seek a table's changelog partition again when recovery has waited this "
        "long for its next record (see stream_processors/kafka/transport.py RecoveryWatch)",
    )
    reload_retry_initial_s: float = Field(
        1.0,
        gt=0,
        description="hot reload: first wait before a failed reconcile or a failed model.updates "
        "listener is tried again (it doubles)",
    )
    reload_retry_max_s: float = Field(30.0, gt=0, description="hot reload: ceiling of that wait")
    reload_reconcile_s: float = Field(
        300.0,
        gt=0,
        description="hot reload: how often the registry is asked even when all went well (an "
        "announcement may be lost)",
    )
    loglevel: str = "info"

    @property
    def group(self) -> str:
        """The consumer group (faust app id) this worker joins: ``app_id``, or in the requests
        lane :func:`requests_group` of it."""
        return requests_group(self.app_id) if self.lane == "requests" else self.app_id

    @property
    def runs_reviews(self) -> bool:
        """Whether this worker runs the review agents (clean, infer, sinks, drift, logs)."""
        return self.lane != "requests"

    @property
    def runs_requests(self) -> bool:
        """Whether this worker scores the gateway's requests (predict.requests.v1)."""
        return self.lane != "reviews"

    @property
    def review_topics(self) -> tuple[str, ...]:
        """The review topics (canonical names) the review agents' consumer group reads: the
        lag to drain and the offsets to commit are theirs."""
        return review_topics(self.clean_and_score)

    @model_validator(mode="after")
    def _check_backoff(self) -> WorkerConfig:
        if self.pg_retry_max_s < self.pg_retry_initial_s:
            raise ValueError("pg_retry_max_s must be >= pg_retry_initial_s")
        if self.reload_retry_max_s < self.reload_retry_initial_s:
            raise ValueError("reload_retry_max_s must be >= reload_retry_initial_s")
        if self.heartbeat_interval_s * 3 > self.session_timeout_s:
            raise ValueError("heartbeat_interval_s must be at most a third of session_timeout_s")
        return self


class WorkerSettings(Settings):
    """Everything a stream worker needs: peers (``Settings``) and its own ``worker`` knobs."""

    worker: WorkerConfig = WorkerConfig()
    drift: DriftConfig = DriftConfig()  # ULASAN_DRIFT__*: windows and tests (docs/drift.md)
    triggers: TriggerConfig = TriggerConfig()  # ULASAN_TRIGGERS__*: retraining thresholds

    @model_validator(mode="after")
    def _default_model(self) -> WorkerSettings:
        # one setting names the model (ULASAN_MLFLOW__REGISTERED_MODEL): the worker serves
        # what the trainer promotes and the triggers judge, whatever it is called
        if not self.worker.model.strip():
            self.worker = self.worker.model_copy(update={"model": champion_uri(self)})
        return self

    @property
    def effective_metrics_port(self) -> int:
        """The port /metrics is served on (0 = none)."""
        port = self.worker.metrics_port
        return self.metrics_port if port is None else port
