"""Settings for every ulasan process: one pydantic-settings tree, ``ULASAN_`` environment prefix.

Defaults point at the local stack (``ulasan stack up``) on 127.0.0.1, so the same code runs
against a real cluster by environment alone, e.g. ``ULASAN_KAFKA__BOOTSTRAP_SERVERS=kafka:9092``
or ``ULASAN_POSTGRES__HOST=db``. Nested fields use ``__`` as the delimiter.

Build a :class:`Settings` once at the entry point and pass it down; no other module reads
``os.environ`` for configuration.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal
from urllib.parse import quote

from pydantic import BaseModel, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parents[2]
ENV_PREFIX = "ULASAN_"
#: The stream workers' default faust app id, which is their Kafka consumer group.
WORKER_GROUP = "ulasan-worker"

REDACTED = "***"
# user:password@ in a URI (the password may hold '@': up to the last '@' before a space)
_URI_PASSWORD = re.compile(r"(?i)([a-z][a-z0-9+.-]*://[^:/?#@\s]*:)\S*@")
# password=... as a keyword (libpq "host=db password=x") or a query parameter ("?password=x")
_KEYWORD_PASSWORD = re.compile(r"(?i)(\bpassword\s*=\s*)('(?:[^'\\]|\\.)*'|[^\s&#]+)")


def redact_dsn(text: str) -> str:
    """``text`` (a DSN, or a message quoting one) with every password replaced by ``***``.

    Covers URI DSNs (``postgresql://user:secret@host/db``, ``...?password=secret``) and
    keyword DSNs (``host=db password=secret``); text without a password comes back unchanged.
    """
    text = _URI_PASSWORD.sub(lambda m: f"{m.group(1)}{REDACTED}@", text)
    return _KEYWORD_PASSWORD.sub(lambda m: f"{m.group(1)}{REDACTED}", text)


class KafkaSettings(BaseModel):
    """Where Kafka is and how topics are laid out."""

    bootstrap_servers: str = "127.0.0.1:19092"
    partitions: int = Field(6, ge=1, description="partitions for every topic ulasan creates")
    replication_factor: int = Field(1, ge=1)
    client_id: str = "ulasan"
    dlq_retention_days: float = Field(
        30.0,
        gt=0,
        description="retention.ms of the dead-letter topics (<topic>.dlq) ulasan creates; "
        "an existing topic with another retention is reported, not changed",
    )

    @property
    def dlq_retention_ms(self) -> int:
        return int(self.dlq_retention_days * 86_400_000)


class PostgresSettings(BaseModel):
    """Where PostgreSQL is; ``dsn`` is what psycopg and yoyo connect with."""

    host: str = "127.0.0.1"
    port: int = 55432
    user: str = "ulasan"
    password: str = ""
    dbname: str = "ulasan"

    @property
    def dsn(self) -> str:
        """The URI DSN; user and password are percent-encoded (libpq and yoyo decode them), so
        a password holding ``@``, ``/`` or a space neither breaks the URI nor its redaction."""
        user, password = quote(self.user, safe=""), quote(self.password, safe="")
        auth = user if not password else f"{user}:{password}"
        return f"postgresql://{auth}@{self.host}:{self.port}/{self.dbname}"

    @property
    def safe_dsn(self) -> str:
        """``dsn`` with the password redacted: the form to print."""
        return redact_dsn(self.dsn)


class MLflowSettings(BaseModel):
    """The MLflow tracking server and the registered model's name."""

    host: str = "127.0.0.1"
    port: int = 15000
    tracking_uri: str | None = Field(
        None, description="overrides http://host:port, e.g. for a remote server"
    )
    registered_model: str = "ulasan-sentiment"
    experiment: str = "ulasan-sentiment"

    @property
    def uri(self) -> str:
        return self.tracking_uri or f"http://{self.host}:{self.port}"


class PrometheusSettings(BaseModel):
    """The Prometheus server of the local stack."""

    host: str = "127.0.0.1"
    port: int = 19090
    targets_dir: Path | None = Field(
        None,
        description="file_sd folder where processes register their /metrics endpoint; "
        "default <state_dir>/prometheus/targets",
    )
    register_targets: bool = Field(
        True,
        description="register each /metrics endpoint as a file_sd target; off where Prometheus "
        "finds the processes itself (DNS service discovery in compose, a ServiceMonitor)",
    )

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


class StackSettings(BaseModel):
    """How the local development stack is run (``ulasan stack``)."""

    kafka_version: str = "3.9.1"
    kafka_controller_port: int = 19093
    kafka_heap: str = "768m"
    kafka_cache_dir: Path | None = Field(
        None,
        description="where the Kafka jars are kept between clones; "
        "default ~/.cache/ulasan/kafka-<kafka_version>",
    )
    postgres_bin_dir: Path | None = Field(
        None, description="PostgreSQL server binaries; default the newest /usr/lib/postgresql/*/bin"
    )
    startup_timeout_s: float = 90.0

    def kafka_libs_dir(self) -> Path:
        """The folder holding the Kafka jars (``kafka_cache_dir`` or the per-user default)."""
        if self.kafka_cache_dir is not None:
            return self.kafka_cache_dir
        return Path.home() / ".cache" / "ulasan" / f"kafka-{self.kafka_version}"


class ProjectPaths(BaseSettings):
    """Where the project's own files are: training configs, data sets, logs and run folders.

    The defaults are the source checkout's folders; an installed package (a container image)
    sets them, e.g. ``ULASAN_CONFIGS_DIR=/app/configs``, since nothing is found relative to
    ``site-packages``. Built alone (:func:`project_paths`) by modules that have no ``Settings``
    at hand; :class:`Settings` carries the same fields.
    """

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="ignore"
    )

    root_dir: Path = Field(
        PROJECT_ROOT,
        description="where relative project paths resolve (a training config's output_dir, "
        "artifacts/train by default)",
    )
    configs_dir: Path | None = Field(
        None, description="training configs; default <root_dir>/configs"
    )
    data_dir: Path | None = Field(
        None, description="the shipped data sets; default <root_dir>/data"
    )
    logs_dir: Path | None = Field(
        None, description="run logs (the trainer's retraining runs); default <root_dir>/logs"
    )
    models_dir: Path | None = Field(
        None,
        description="shipped models (the champion a fresh stack registers); "
        "default <root_dir>/models",
    )

    @property
    def configs(self) -> Path:
        return self.configs_dir or self.root_dir / "configs"

    @property
    def data(self) -> Path:
        return self.data_dir or self.root_dir / "data"

    @property
    def logs(self) -> Path:
        return self.logs_dir or self.root_dir / "logs"

    @property
    def models(self) -> Path:
        return self.models_dir or self.root_dir / "models"

    def resolve(self, path: Path) -> Path:
        """``path`` as is when absolute, else under :attr:`root_dir`."""
        return path if path.is_absolute() else self.root_dir / path


def project_paths() -> ProjectPaths:
    """The project's paths from the environment (``ULASAN_ROOT_DIR``, ``ULASAN_DATA_DIR``, ...)."""
    return ProjectPaths()


class Settings(ProjectPaths):
    """Everything a ulasan process needs to find its peers."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="ignore",
    )

    state_dir: Path = Field(
        PROJECT_ROOT / ".ulasan",
        description="where the local stack keeps data, logs, PIDs and downloaded jars",
    )
    kafka: KafkaSettings = KafkaSettings()
    postgres: PostgresSettings = PostgresSettings()
    mlflow: MLflowSettings = MLflowSettings()
    prometheus: PrometheusSettings = PrometheusSettings()
    stack: StackSettings = StackSettings()
    metrics_port: int = Field(
        9464, description="first port of the /metrics endpoints of ulasan's own processes"
    )
    log_format: Literal["text", "json"] = Field(
        "text", description="text for people; json (one object a line) for log shippers"
    )
