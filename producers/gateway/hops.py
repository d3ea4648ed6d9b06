"""Where each prediction request's time went, hop by hop, from the request's own timestamps.

Every answered ``/predict``, ``/predict/batch``, ``Predict`` and ``PredictBatch`` is cut into
hops (milliseconds), from wall-clock epoch times taken by the gateway and the worker (the two
run on one host here, so their clocks are the same clock; across hosts the two middle hops
would carry the clock offset between them):

- ``parse_auth``: the request reached the gateway's app (HTTP: the outermost ASGI middleware;
  gRPC: the handler, after grpc parsed the message) -> the gateway hands the request event to
  its Kafka producer (authentication, rate limit, body read, validation, the event built);
- ``produce``: -> the worker's consumer received the record (the gateway's produce to
  predict.requests.v1, the broker, the worker's fetch);
- ``worker_wait``: -> the worker starts scoring the batch holding it (decoding, the deadline
  check, a batch still being scored on the shared scorer thread);
- ``inference``: the batch's model time (``SentimentScored.timings.inference_ms``);
- ``reply``: the end of scoring -> the gateway's reply reader got the reply (the worker's
  reply encode and produce to predict.replies.v1, the broker, the gateway's fetch);
- ``response_write``: -> the response was handed to the server (HTTP: the last body chunk
  sent to uvicorn; gRPC: the response message returned to grpc, which serialises it after);
- ``total``: the first timestamp -> the last: the sum of the hops above.

The worker's consume time travels back in the reply record's Kafka header
``schemas.events.REPLY_CONSUMED_AT_HEADER`` (epoch milliseconds as ASCII), not in the event:
``SentimentScored`` is a closed v1 contract (``schemas.compat``), which a new field would break
for an old reader. Without the header (an older worker) ``produce`` and ``worker_wait`` are
``None``. For a request with several texts the hops follow the reply that completed it.

:class:`HopRecorder` observes each hop in the ``ulasan_gateway_hop_seconds`` histogram and
keeps the last ``capacity`` requests' hops in a ring that ``GET /debug/hops`` serves, so a
benchmark can compute exact percentiles over exactly its own requests (histogram buckets only
bound them).
"""

from __future__ import annotations

import math
import threading
from array import array
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from schemas.events import REPLY_CONSUMED_AT_HEADER as CONSUMED_HEADER
from schemas.events import SentimentScored

#: The hops, in the order a request passes them; ``total`` last.
HOPS: tuple[str, ...] = (
    "parse_auth",
    "produce",
    "worker_wait",
    "inference",
    "reply",
    "response_write",
    "total",
)

Hops = dict[str, float | None]
#: the protocols a ring row can name
PROTOCOLS: tuple[str, ...] = ("http", "grpc")


def consumed_at(headers: Iterable[tuple[str, bytes]] | None) -> float | None:
    """The worker's consume time (epoch seconds) from a reply's Kafka headers; None when the
    header is missing or not a number (a reply is never refused for its header)."""
    for key, value in headers or ():
        if key == CONSUMED_HEADER:
            try:
                ms = float(value.decode("ascii"))
            except (UnicodeDecodeError, ValueError, AttributeError):
                return None
            return ms / 1000.0 if math.isfinite(ms) else None
    return None


@dataclass(frozen=True, slots=True)
class ReplyTrace:
    """A request's timestamps from the gateway's side (epoch seconds) and its last reply."""

    sent_at: float
    got_at: float
    consumed_at: float | None
    scored: SentimentScored


def hop_ms(t_in: float, trace: ReplyTrace, t_out: float) -> Hops:
    """The hops of one request (ms; None where a timestamp is missing): ``t_in`` when it reached
    the gateway, ``t_out`` when its response was handed to the server (epoch seconds)."""
    scored = trace.scored
    end = scored.scored_at.timestamp()
    inference_ms = scored.timings.inference_ms
    start = end - inference_ms / 1000.0
    received = trace.consumed_at
    return {
        "parse_auth": (trace.sent_at - t_in) * 1000.0,
        "produce": None if received is None else (received - trace.sent_at) * 1000.0,
        "worker_wait": None if received is None else (start - received) * 1000.0,
        "inference": inference_ms,
        "reply": (trace.got_at - end) * 1000.0,
        "response_write": (t_out - trace.got_at) * 1000.0,
        "total": (t_out - t_in) * 1000.0,
    }


class HopRecorder:
    """The hop histogram and a ring of the last ``capacity`` requests' hops (0: no ring).

    The ring is a flat ``array('d')`` (9 doubles, 72 bytes a request: sequence number,
    protocol, the hops, NaN for a missing one) that grows as requests come, up to
    ``capacity``, then overwrites the oldest: no object per request, so it barely shows in the
    gateway's memory."""

    WIDTH = 2 + len(HOPS)

    def __init__(self, histogram: Any, capacity: int) -> None:
        self.histogram = histogram
        self.capacity = capacity
        self._buf: array[float] = array("d")
        self._next = 0  # the slot written next once the ring is full
        self._seq = 0
        self._lock = threading.Lock()

    def record(self, protocol: str, t_in: float, trace: ReplyTrace | None, t_out: float) -> None:
        """Observe one answered request (a ``None`` trace, an unanswered one, is skipped)."""
        if trace is None:
            return
        hops = hop_ms(t_in, trace, t_out)
        for hop, value in hops.items():
            if value is not None:  # same clock, ordered events: >= 0 but for rounding
                self.histogram.labels(hop, protocol).observe(max(0.0, value) / 1000.0)
        if not self.capacity:
            return
        code = float(PROTOCOLS.index(protocol)) if protocol in PROTOCOLS else -1.0
        with self._lock:
            self._seq += 1
            row = [float(self._seq), code, *(math.nan if v is None else v for v in hops.values())]
            if len(self._buf) < self.capacity * self.WIDTH:
                self._buf.extend(row)
            else:
                at = self._next * self.WIDTH
                self._buf[at : at + self.WIDTH] = array("d", row)
                self._next = (self._next + 1) % self.capacity

    def _rows(self) -> list[list[float]]:
        w, buf = self.WIDTH, self._buf
        rows = [buf[i : i + w].tolist() for i in range(0, len(buf), w)]
        return rows[self._next :] + rows[: self._next]

    def since(self, after: int = 0) -> dict[str, Any]:
        """The ring's requests with a sequence number above ``after``: ``seq`` (the last one
        recorded), ``complete`` (False when requests after ``after`` already left the ring)
        and ``records`` (each ``{"seq", "protocol", <hop>: ms or None}``)."""
        with self._lock:
            rows = [r for r in self._rows() if r[0] > after]
            seq = self._seq
        first = int(rows[0][0]) if rows else seq + 1
        records = [
            {
                "seq": int(r[0]),
                "protocol": PROTOCOLS[int(r[1])] if r[1] >= 0 else "other",
                **{
                    h: None if math.isnan(v) else round(v, 4)
                    for h, v in zip(HOPS, r[2:], strict=True)
                },
            }
            for r in rows
        ]
        return {
            "seq": seq,
            "capacity": self.capacity,
            "complete": bool(self.capacity) and first <= after + 1,
            "records": records,
        }


def nearest_rank(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile ``q`` (0-100) of ``values`` (any order); None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(q / 100.0 * len(ordered))))
    return ordered[rank - 1]


def summarize(records: Iterable[Mapping[str, Any]], protocol: str) -> dict[str, dict[str, Any]]:
    """Per hop of ``protocol``'s records: ``n`` (requests with that hop), ``p50_ms``, ``p99_ms``."""
    mine = [r for r in records if r.get("protocol") == protocol]
    out: dict[str, dict[str, Any]] = {}
    for hop in HOPS:
        values = [float(r[hop]) for r in mine if r.get(hop) is not None]
        p50, p99 = nearest_rank(values, 50), nearest_rank(values, 99)
        out[hop] = {
            "n": len(values),
            "p50_ms": None if p50 is None else round(p50, 3),
            "p99_ms": None if p99 is None else round(p99, 3),
        }
    return out
