"""Waiting for a model to serve: a worker started before the first champion retries with backoff.

In a fresh deployment the workers start while the first model is still being trained
(compose's bootstrap, a Helm pre-install job); a worker that exited would be restarted in a
crash loop. Instead it retries resolving the model reference with a doubling backoff and
logs every try, until the model appears or ``model_wait_s`` has passed.

Only :class:`ModelResolutionError` is waited for (no such alias or version yet, the registry
unreachable): a broken serving folder does not mend itself, so it fails at once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from ulasan.core.inference import ModelResolutionError

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class Backoff:
    """How long to wait: at most ``max_wait_s`` in all (0 = one try), ``initial_s`` first,
    doubling up to ``max_s`` between tries."""

    max_wait_s: float
    initial_s: float = 1.0
    max_s: float = 30.0

    def delays(self) -> list[float]:
        """The sleeps between tries, in order; their sum is at most ``max_wait_s``."""
        out: list[float] = []
        delay, left = self.initial_s, self.max_wait_s
        while left > 0:
            step = min(delay, self.max_s, left)
            out.append(step)
            left -= step
            delay *= 2
        return out


def wait_for_model(
    load: Callable[[], T],
    ref: str,
    backoff: Backoff,
    *,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """``load()``, retried after each :class:`ModelResolutionError` along ``backoff``.

    Each retry is logged with the reason, the try number and the time waited so far. Raises
    the last :class:`ModelResolutionError` when the wait is over; other errors at once.
    """
    waited = 0.0
    delays = backoff.delays()
    for attempt, delay in enumerate([*delays, None], start=1):
        try:
            model = load()
        except ModelResolutionError as exc:
            if delay is None:
                log.error(
                    "no model at %s after %d tries in %.0fs; giving up (model_wait_s=%.0f)",
                    ref,
                    attempt,
                    waited,
                    backoff.max_wait_s,
                )
                raise
            log.warning(
                "no model at %s yet (%s); try %d failed, next in %.1fs (waited %.0fs of %.0fs)",
                ref,
                exc,
                attempt,
                delay,
                waited,
                backoff.max_wait_s,
            )
            sleep(delay)
            waited += delay
            continue
        if attempt > 1:
            log.info("model %s found after %d tries (%.0fs)", ref, attempt, waited)
        return model
    raise AssertionError("unreachable: the last try either returns or raises")
