"""A token bucket: at most ``rate`` acquisitions per second on average, bursts up to ``burst``."""

from __future__ import annotations

import time
from collections.abc import Callable


class TokenBucket:
    """Classic token bucket with an injectable clock and sleep (tests pass fakes).

    ``rate`` is tokens per second (> 0); ``burst`` is the bucket size, default one tenth of a
    second's worth (at least one), so output is smooth rather than bursty. The bucket starts full.
    """

    def __init__(
        self,
        rate: float,
        burst: float | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not rate > 0:
            raise ValueError(f"rate must be > 0 per second, got {rate!r}")
        self.rate = float(rate)
        self.burst = float(burst) if burst is not None else max(1.0, self.rate / 10.0)
        if self.burst < 1:
            raise ValueError(f"burst must be >= 1, got {burst!r}")
        self._clock = clock
        self._sleep = sleep
        self._tokens = self.burst
        self._last = clock()

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
        self._last = now

    def wait_for(self, n: float = 1.0) -> float:
        """Seconds until ``n`` tokens are there (0 when they are now); takes none."""
        self._refill()
        return max(0.0, (n - self._tokens) / self.rate)

    def try_acquire(self, n: float = 1.0) -> float:
        """Take ``n`` tokens and return 0 if there are enough; else return the wait in seconds."""
        if n > self.burst:
            raise ValueError(f"cannot take {n} tokens from a bucket of {self.burst}")
        self._refill()
        if self._tokens >= n:
            self._tokens -= n
            return 0.0
        return (n - self._tokens) / self.rate

    def acquire(self, n: float = 1.0) -> float:
        """Block until ``n`` tokens are taken; returns the seconds slept."""
        wait = self.try_acquire(n)
        if wait <= 0:
            return 0.0
        self._sleep(wait)
        # after sleeping the computed wait the tokens are ours; rounding may leave a tiny debt
        self._refill()
        self._tokens -= n
        return wait
