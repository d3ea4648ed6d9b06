"""API keys (stored as SHA-256 digests, compared in constant time), per-key token buckets, audit.

Off by default: with ``auth_required=False`` every caller is anonymous and, when a rate limit
is configured, is limited per client address.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from producers.gateway.errors import Forbidden, RateLimited, Unauthenticated
from producers.gateway.settings import ApiKey, GatewayConfig
from producers.ratelimit import TokenBucket

ANONYMOUS = "anonymous"


def hash_key(secret: str) -> str:
    """The hex SHA-256 digest stored in the settings for the API key ``secret``."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class Principal:
    """Who calls: a configured key's name, or ``anonymous`` (auth off) with the client address."""

    name: str
    admin: bool
    bucket_key: str


class Guard:
    """Authenticates keys and enforces rate limits; one per gateway, shared by both protocols."""

    def __init__(self, cfg: GatewayConfig, clock: Callable[[], float] | None = None) -> None:
        self.cfg = cfg
        self._keys: list[ApiKey] = list(cfg.api_keys)
        self._buckets: dict[str, TokenBucket] = {}
        self._lock = threading.Lock()
        self._clock = clock

    @property
    def auth_required(self) -> bool:
        return self.cfg.auth_required

    def authenticate(self, secret: str | None, client: str = "") -> Principal:
        """The principal of ``secret``; raises :class:`Unauthenticated` when auth is on and the
        key is missing or unknown."""
        if not self.cfg.auth_required:
            return Principal(ANONYMOUS, True, f"addr:{client}")
        if not secret:
            raise Unauthenticated(
                "an API key is required: send it as 'X-API-Key: <key>' (HTTP) or 'x-api-key' "
                "metadata (gRPC)"
            )
        digest = hash_key(secret)
        found: ApiKey | None = None
        for key in self._keys:  # compare against every key: no early exit to time
            if hmac.compare_digest(digest, key.sha256):
                found = key
        if found is None:
            raise Unauthenticated("the API key is not valid")
        return Principal(found.name, found.admin, f"key:{found.name}")

    def require_admin(self, who: Principal) -> None:
        if not who.admin:
            raise Forbidden(f"key {who.name!r} may not make admin calls; use an admin key")

    def limit(self, who: Principal) -> None:
        """Take one token of ``who``'s bucket; raises :class:`RateLimited` with Retry-After."""
        rate, burst = self.cfg.rate_per_s, self.cfg.burst
        key = next((k for k in self._keys if f"key:{k.name}" == who.bucket_key), None)
        if key is not None and key.rate_per_s is not None:
            rate, burst = key.rate_per_s, key.burst or burst
        if rate is None:
            return
        with self._lock:
            bucket = self._buckets.get(who.bucket_key)
            if bucket is None:
                kwargs: dict[str, Any] = {} if self._clock is None else {"clock": self._clock}
                bucket = TokenBucket(rate, burst if burst is not None else max(1.0, rate), **kwargs)
                self._buckets[who.bucket_key] = bucket
            wait = bucket.try_acquire()
        if wait > 0:
            raise RateLimited(
                f"rate limit of {rate:g} requests/s for {who.name} exceeded; retry in "
                f"{math.ceil(wait)} s",
                retry_after_s=wait,
            )


class AuditLog:
    """Appends one JSON line per admin call (time, who, action, outcome) to ``path``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def _write(self, line: str) -> None:
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as fh:
                fh.write(line + "\n")

    async def record(self, who: Principal, action: str, outcome: str, **details: Any) -> None:
        entry = {
            "time": datetime.now(UTC).isoformat(),
            "principal": who.name,
            "client": who.bucket_key,
            "action": action,
            "outcome": outcome,
            **details,
        }
        await asyncio.to_thread(self._write, json.dumps(entry, default=str))
