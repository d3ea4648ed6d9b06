"""API keys (stored as SHA-256 digests, compared in constant time), per-key token buckets, audit.

Off by default: with ``auth_required=False`` every caller is anonymous (never an admin) and,
when a rate limit is configured, is limited per client address. Failed authentications are
limited per client address too (a spent bucket refuses even before the key is checked, so
keys cannot be guessed at speed) and each one is audited with the address. Buckets live in a
least-recently-used map of at most ``max_buckets`` entries, so many addresses cannot grow the
gateway's memory without bound.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import math
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from producers.gateway.errors import Forbidden, RateLimited, Unauthenticated
from producers.gateway.settings import ApiKey, GatewayConfig
from producers.ratelimit import TokenBucket

log = logging.getLogger(__name__)

ANONYMOUS = "anonymous"


def peer_host(peer: str) -> str:
    """The client address of a gRPC peer string (``ipv4:10.0.0.1:5000`` -> ``10.0.0.1``,
    ``ipv6:[::1]:5000`` -> ``::1``): buckets are per address, not per connection."""
    kind, sep, rest = peer.partition(":")
    if not sep or kind not in ("ipv4", "ipv6"):
        return peer
    if rest.startswith("["):
        return rest[1:].split("]", 1)[0]
    return rest.rsplit(":", 1)[0] if kind == "ipv4" else rest


class Buckets:
    """Token buckets by key, the least recently used evicted beyond ``max_size`` (an evicted
    key starts again with a full bucket)."""

    def __init__(self, max_size: int, clock: Callable[[], float] | None = None) -> None:
        self.max_size = max_size
        self._clock = clock
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    def __contains__(self, key: str) -> bool:
        return key in self._buckets

    def take(self, key: str, rate: float, burst: float) -> float:
        """Take a token of ``key``'s bucket: 0, or the seconds until one is back."""
        bucket = self._buckets.get(key)
        if bucket is None:
            kwargs: dict[str, Any] = {} if self._clock is None else {"clock": self._clock}
            bucket = TokenBucket(rate, burst, **kwargs)
            self._buckets[key] = bucket
            while len(self._buckets) > self.max_size:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
        return bucket.try_acquire()

    def wait(self, key: str) -> float:
        """Seconds until ``key`` has a token (0 when it has one or has no bucket); takes none."""
        bucket = self._buckets.get(key)
        return 0.0 if bucket is None else bucket.wait_for()


def hash_key(secret: str) -> str:
    """The hex SHA-256 digest stored in the settings for the API key ``secret``."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class Principal:
    """Who calls: a configured key's name, or ``anonymous`` (auth off) with the client address."""

    name: str
    admin: bool
    bucket_key: str


class AuthFailed(Unauthenticated):
    """An authentication that failed: ``client`` (the address) and ``why`` are audited."""

    def __init__(self, message: str, *, client: str, why: str) -> None:
        super().__init__(message)
        self.client = client
        self.why = why


class Guard:
    """Authenticates keys and enforces rate limits; one per gateway, shared by both protocols."""

    def __init__(self, cfg: GatewayConfig, clock: Callable[[], float] | None = None) -> None:
        self.cfg = cfg
        self._keys: list[ApiKey] = list(cfg.api_keys)
        self._buckets = Buckets(cfg.max_buckets, clock)
        self._failures = Buckets(cfg.max_buckets, clock)
        self._lock = threading.Lock()

    @property
    def auth_required(self) -> bool:
        return self.cfg.auth_required

    def bucket_count(self) -> tuple[int, int]:
        """(request buckets, failed-authentication buckets) held now."""
        with self._lock:
            return len(self._buckets), len(self._failures)

    def authenticate(self, secret: str | None, client: str = "") -> Principal:
        """The principal of ``secret``. With auth on, a missing or unknown key raises
        :class:`AuthFailed` (counted against ``client``'s failure bucket); a client whose failure
        bucket is spent gets :class:`RateLimited` before its key is even looked at."""
        if not self.cfg.auth_required:
            return Principal(ANONYMOUS, False, f"addr:{client}")
        with self._lock:
            locked = self._failures.wait(client)
        if locked > 0:
            raise RateLimited(
                f"too many failed authentications from {client or 'this address'}; retry in "
                f"{math.ceil(locked)} s with a valid API key",
                retry_after_s=locked,
            )
        found = self._match(secret) if secret else None
        if found is not None:
            return Principal(found.name, found.admin, f"key:{found.name}")
        with self._lock:
            self._failures.take(client, self.cfg.auth_fail_rate_per_s, self.cfg.auth_fail_burst)
        if not secret:
            raise AuthFailed(
                "an API key is required: send it as 'X-API-Key: <key>' (HTTP) or 'x-api-key' "
                "metadata (gRPC)",
                client=client,
                why="missing_key",
            )
        raise AuthFailed("the API key is not valid", client=client, why="invalid_key")

    def _match(self, secret: str) -> ApiKey | None:
        digest = hash_key(secret)
        found: ApiKey | None = None
        for key in self._keys:  # compare against every key: no early exit to time
            if hmac.compare_digest(digest, key.sha256):
                found = key
        return found

    def require_admin(self, who: Principal) -> None:
        if who.admin:
            return
        if who.name == ANONYMOUS:
            raise Forbidden(
                "admin calls need an admin API key, and auth is off on this gateway: turn it on "
                "(ULASAN_GATEWAY__AUTH_REQUIRED=true) with a key marked admin"
            )
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
            wait = self._buckets.take(
                who.bucket_key, rate, burst if burst is not None else max(1.0, rate)
            )
        if wait > 0:
            raise RateLimited(
                f"rate limit of {rate:g} requests/s for {who.name} exceeded; retry in "
                f"{math.ceil(wait)} s",
                retry_after_s=wait,
            )


class AuditLog:
    """Appends one JSON line per admin call (time, who, action, outcome) and per failed
    authentication (time, client address, why) to ``path``."""

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

    async def auth_failed(self, failure: AuthFailed, protocol: str) -> None:
        """One line per failed authentication, with the client address (and a log warning)."""
        log.warning("authentication failed (%s, %s) from %s", failure.why, protocol, failure.client)
        entry = {
            "time": datetime.now(UTC).isoformat(),
            "principal": None,
            "client": failure.client,
            "action": "authenticate",
            "outcome": failure.why,
            "protocol": protocol,
        }
        await asyncio.to_thread(self._write, json.dumps(entry))
