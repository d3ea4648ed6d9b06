"""Settings of the UI: the shared ``Settings`` tree plus a ``ui`` group (``ULASAN_UI__*``)."""

from __future__ import annotations

from pydantic import BaseModel, Field

from ulasan.core.settings import Settings


class UiConfig(BaseModel):
    """Where the UI listens and where it finds the gateway (env ``ULASAN_UI__<FIELD>``)."""

    host: str = Field("127.0.0.1", description="address the UI listens on")
    port: int = Field(8501, ge=1, le=65535, description="port the UI listens on")
    gateway_url: str = Field("http://127.0.0.1:8080", description="the gateway's HTTP API")
    api_key: str | None = Field(None, description="API key for the gateway, when auth is on")
    ca_file: str | None = Field(
        None, description="PEM bundle that verifies the gateway's TLS certificate (self-signed)"
    )
    topic_prefix: str = Field("", description="prefix of the topics a large batch is replayed to")
    timeout_s: float = Field(10.0, gt=0, description="longest wait for one gateway call")
    page_size: int = Field(50, ge=1, le=1000, description="rows per page of /history")
    reader_role: str | None = Field(
        "ulasan_reader",
        pattern=r"^[a-z_][a-z0-9_]*$",
        description="the read-only PostgreSQL role the UI's sessions take (migration 0004; "
        "its privileges are SELECT only); empty/None: only a read-only session",
    )


class UiSettings(Settings):
    """Everything the UI needs: the stack's addresses and the ``ui`` group."""

    ui: UiConfig = UiConfig()
