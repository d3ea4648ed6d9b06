"""Settings of the gateway: the shared ``Settings`` tree plus a ``gateway`` group."""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path

from pydantic import BaseModel, Field, field_validator, model_validator

from schemas.events import MAX_BATCH_TEXTS, MAX_TEXT_CHARS
from ulasan.core.settings import WORKER_GROUP, Settings

_SHA256 = re.compile(r"^[0-9a-f]{64}$")

#: The largest body a valid request can have: 100 texts of 5000 characters, each escaped as
#: a JSON surrogate pair (``\ud83d\ude00``, 12 bytes per character), plus room for the rest.
MAX_VALID_BODY_BYTES = MAX_BATCH_TEXTS * MAX_TEXT_CHARS * 12 + 64 * 1024
#: The largest valid gRPC message: 100 texts of 5000 four-byte UTF-8 characters plus framing.
MAX_VALID_GRPC_BYTES = MAX_BATCH_TEXTS * (MAX_TEXT_CHARS * 4 + 8) + 1024


def is_loopback(host: str) -> bool:
    """True when ``host`` is ``localhost`` or a loopback address (127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class ApiKey(BaseModel):
    """One API key, stored as the SHA-256 hex digest of the secret (never the secret itself).

    ``rate_per_s``/``burst`` override the gateway's default rate limit for this key.
    """

    name: str = Field(min_length=1, max_length=64)
    sha256: str = Field(description="hex SHA-256 of the key: `ulasan gateway hash-key`")
    admin: bool = Field(False, description="may call admin routes (POST /model/reload)")
    rate_per_s: float | None = Field(None, gt=0)
    burst: float | None = Field(None, ge=1)

    @field_validator("sha256")
    @classmethod
    def _hex(cls, value: str) -> str:
        value = value.lower()
        if not _SHA256.match(value):
            raise ValueError("sha256 must be 64 hex characters (the digest, not the key)")
        return value


class GatewayConfig(BaseModel):
    """Knobs of one gateway instance (env ``ULASAN_GATEWAY__<FIELD>``)."""

    host: str = Field("127.0.0.1", description="address both servers listen on")
    http_port: int = Field(8080, ge=0, le=65535, description="HTTP port (0 = no HTTP server)")
    grpc_port: int = Field(50051, ge=0, le=65535, description="gRPC port (0 = no gRPC server)")
    instance_id: str | None = Field(
        None,
        max_length=200,
        description="reply_to of this instance's requests; default gw-<host>-<random>",
    )
    topic_prefix: str = Field("", description="prepended to topic names (as the worker's)")
    deadline_s: float = Field(2.0, gt=0, le=60, description="default reply deadline per request")
    ready_window_s: float = Field(
        30.0, gt=0, description="a reply younger than this proves workers serve a model"
    )
    probe_deadline_s: float = Field(1.5, gt=0, description="deadline of /ready's probe request")
    worker_group: str = Field(
        WORKER_GROUP,
        min_length=1,
        description="the workers' consumer group (their ULASAN_WORKER__APP_ID): /ready checks "
        "that its members hold every partition of predict.requests.v1",
    )
    health_interval_s: float = Field(
        10.0, gt=0, description="how often the gRPC health service re-checks readiness"
    )
    champion_alias: str = Field("champion", min_length=1)
    # security: off by default for local use
    auth_required: bool = Field(False, description="require an API key on every non-open route")
    api_keys: list[ApiKey] = Field(default_factory=list)
    rate_per_s: float | None = Field(
        None, gt=0, description="default requests/s per key (client address without auth)"
    )
    burst: float | None = Field(None, ge=1, description="bucket size; default max(1, rate)")
    cors_origins: list[str] = Field(default_factory=list, description="allowed CORS origins")
    tls_cert: Path | None = Field(None, description="PEM certificate (HTTPS and gRPC over TLS)")
    tls_key: Path | None = Field(None, description="PEM private key of tls_cert")
    audit_log: Path | None = Field(
        None, description="JSON-lines audit log of admin calls; default <state_dir>/gateway/audit"
    )
    metrics_host: str = Field("127.0.0.1", description="address Prometheus reaches /metrics at")
    allow_plaintext_loopback: bool = Field(
        False,
        description="allow auth without TLS when the gateway listens on a loopback address only",
    )
    auth_fail_rate_per_s: float = Field(
        0.2, gt=0, description="failed authentications per second allowed per client address"
    )
    auth_fail_burst: float = Field(
        10, ge=1, description="failed authentications a client address may make at once"
    )
    max_buckets: int = Field(
        10_000, ge=1, description="rate-limit buckets kept (least recently used evicted first)"
    )
    docs_enabled: bool | None = Field(
        None, description="serve /docs and /openapi.json; default: only when auth is off"
    )
    grpc_reflection: bool | None = Field(
        None, description="serve gRPC server reflection; default: only when auth is off"
    )
    metrics_port: int | None = Field(
        None,
        ge=1,
        le=65535,
        description="serve /metrics on this port (at metrics_host) instead of the HTTP port; "
        "without it /metrics needs an API key when auth is on",
    )
    # limits of the HTTP server (uvicorn) and the gRPC server
    max_body_bytes: int = Field(
        6 * 1024 * 1024,
        ge=1024,
        description="largest request body; a larger one is refused with 413 before it is read",
    )
    body_timeout_s: float = Field(
        30.0, gt=0, description="longest time a client may take to send its body (else 408)"
    )
    http_limit_concurrency: int = Field(
        256, ge=1, description="connections + requests at once; more are answered 503"
    )
    http_keep_alive_s: int = Field(5, ge=1, description="idle keep-alive connections close after")
    http_max_header_bytes: int = Field(
        16 * 1024, ge=1024, description="largest request line + headers (else 400)"
    )
    grpc_max_message_bytes: int = Field(
        4 * 1024 * 1024, ge=1024, description="largest gRPC message received or sent"
    )
    grpc_max_concurrent_rpcs: int = Field(
        256, ge=1, description="RPCs at once; more are answered RESOURCE_EXHAUSTED"
    )
    stream_max_in_flight: int = Field(
        32, ge=1, description="messages of one PredictStream being scored at once"
    )
    hop_trace_size: int = Field(
        10_000,
        ge=0,
        le=1_000_000,
        description="answered requests whose per-hop timings GET /debug/hops keeps (a ring; "
        "0 = none; the ulasan_gateway_hop_seconds histogram is kept either way)",
    )
    loglevel: str = "info"

    @property
    def docs_on(self) -> bool:
        return self.docs_enabled if self.docs_enabled is not None else not self.auth_required

    @property
    def reflection_on(self) -> bool:
        on = self.grpc_reflection
        return on if on is not None else not self.auth_required

    @model_validator(mode="after")
    def _check(self) -> GatewayConfig:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("set both tls_cert and tls_key, or neither")
        if self.auth_required and not self.api_keys:
            raise ValueError("auth_required is on but no api_keys are configured")
        if self.auth_required and self.tls_cert is None:
            if not self.allow_plaintext_loopback:
                raise ValueError(
                    "auth_required is on without TLS: API keys would cross the network in "
                    "clear text. Set tls_cert and tls_key, or (on a loopback host only) "
                    "allow_plaintext_loopback=true"
                )
            if not is_loopback(self.host):
                raise ValueError(
                    f"allow_plaintext_loopback applies to a loopback host only, but host is "
                    f"{self.host!r}: set tls_cert and tls_key to serve API keys on it"
                )
        names = [k.name for k in self.api_keys]
        if len(names) != len(set(names)):
            raise ValueError("api key names must be unique")
        return self


class GatewaySettings(Settings):
    """Everything a gateway needs: peers (``Settings``) and its own ``gateway`` knobs."""

    gateway: GatewayConfig = GatewayConfig()

    @property
    def audit_log_path(self) -> Path:
        return self.gateway.audit_log or self.state_dir / "gateway" / "audit.jsonl"
