"""Exponential backoff, computed: the delays between tries (the caller sleeps and decides when
to stop). One shape for every retry loop: ``initial_s``, doubling, capped at ``max_s``."""

from __future__ import annotations

import math
from collections.abc import Iterator


def backoff(initial_s: float, max_s: float = math.inf) -> Iterator[float]:
    """Endless exponential backoff delays in seconds: ``initial_s``, doubling, capped at
    ``max_s`` (no cap by default). Raises :class:`ValueError` unless
    ``0 < initial_s <= max_s``."""
    if not 0 < initial_s <= max_s:
        raise ValueError(f"backoff needs 0 < initial_s <= max_s, got {initial_s} and {max_s}")
    return _delays(initial_s, max_s)


def _delays(initial_s: float, max_s: float) -> Iterator[float]:
    delay = initial_s
    while True:
        yield delay
        delay = min(delay * 2, max_s)


class Backoff:
    """:func:`backoff` for a loop that starts over after a success: :meth:`next` is the wait
    to use now, :meth:`reset` goes back to ``initial_s``."""

    def __init__(self, initial_s: float, max_s: float = math.inf) -> None:
        self._delays = backoff(initial_s, max_s)  # checks the arguments
        self.initial_s = initial_s
        self.max_s = max_s

    def next(self) -> float:
        """The wait to use now; the one after it doubles (up to ``max_s``)."""
        return next(self._delays)

    def reset(self) -> None:
        self._delays = backoff(self.initial_s, self.max_s)
