"""Settings of the gateway: the shared ``Settings`` tree plus a ``gateway`` group."""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import BaseModel, Field, field_validator, model_validator

from ulasan.core.settings import Settings

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


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
    loglevel: str = "info"

    @model_validator(mode="after")
    def _check(self) -> GatewayConfig:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("set both tls_cert and tls_key, or neither")
        if self.auth_required and not self.api_keys:
            raise ValueError("auth_required is on but no api_keys are configured")
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
