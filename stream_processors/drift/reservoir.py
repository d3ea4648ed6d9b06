"""A bounded uniform sample of a stream (Algorithm R) whose whole state is plain JSON.

The random draws come from a counter-based generator (splitmix64 of ``seed`` and the item's
position), so the state needs no pickled RNG: the same items in the same order always give the
same sample, also after the state was written to a changelog and read back.
"""

from __future__ import annotations

from typing import Any

_MASK = (1 << 64) - 1


def splitmix64(x: int) -> int:
    """One round of splitmix64: a well-mixed 64-bit integer from any integer."""
    z = (x + 0x9E3779B97F4A7C15) & _MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
    return z ^ (z >> 31)


def initialize() -> dict[str, Any]:
    """An empty reservoir: ``n`` items seen, ``sample`` kept."""
    return {"n": 0, "sample": []}


def agg(state: dict[str, Any], value: float, *, size: int, seed: int) -> dict[str, Any]:
    """Offer ``value`` to the reservoir (in place; also returned). Keeps at most ``size`` items,
    each of the ``n`` seen with probability ``size / n``."""
    n = int(state["n"])
    sample: list[float] = state["sample"]
    if len(sample) < size:
        sample.append(float(value))
    else:
        j = splitmix64((seed << 32) ^ n) % (n + 1)
        if j < size:
            sample[j] = float(value)
    state["n"] = n + 1
    return state
