"""``ulasan bench burst``: ad-hoc gateway requests while a review backlog drains, with the
requests lane and without it, in one run.

Each *setup* runs on its own topics and consumer groups (one database for the run):

- ``all``: one ``ulasan worker --lane all`` scores reviews and requests (one model, one
  scorer thread, one event loop): what a deployment without the lane does;
- ``lane``: one ``ulasan worker --lane reviews`` beside one ``ulasan worker --lane requests``
  (its own consumer group, model and scorer; one ONNX Runtime thread);
- ``lane_nice``: the same with the reviews worker at a higher nice value (``--nice``), so the
  kernel schedules the lane first when both want the cores.

Per setup: start the workers and a gateway, warm up (requests, and reviews until the workers'
lag is 0), then **idle**: HTTP /predict at ``rate`` requests/s open loop (the client code of
``ulasan bench gateway``) for ``idle_s``; then **burst**: publish ``reviews`` reviews to
reviews.raw.v1 as fast as the producer goes (~1 s for 20,000), then run the same open loop
until the review group's lag (the review topics it reads, committed offsets) is 0. Burst
figures are those of the requests sent while the lag was > 0; the drain rate is reviews /
(first publish -> lag 0; commits every second, so up to ~1 s late). The target: burst p99
<= 2x idle p99 of the same setup, with no failed request.

The client (``--client``): ``compiled`` (the default) is oha at ``rate`` open loop, the
command of ``bench gateway``; its latencies run from each request's scheduled send time, and the
burst's oha is interrupted once the lag is 0 (it then waits for the requests in flight, so
the figures include at most a lag poll and a commit interval of requests after the drain).
``python`` is the asyncio client in this process: latency from the moment it calls to the
answer, its own event-loop delay (a 10 ms ticker's overshoot) reported beside as
``client_loop_lag_p99_ms``, the worker's queue time from each answer. Either way the client
runs on the same cores. Each phase also carries the gateway's hop breakdown of its requests
(``hop_breakdown``, from ``GET /debug/hops``): where the time went inside the gateway, the
broker and the worker, apart from the client's and the connection's share. Drift is off in
every worker (as in ``bench gateway``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from producers.gateway.hops import HOPS, nearest_rank, summarize
from producers.publish import Publisher, prefixed_topics
from schemas import topics
from schemas.events import ReviewReceived
from stream_processors.settings import configured_review_topics, requests_group
from ulasan.bench_gateway import (
    CLIENTS,
    SHORT_REVIEWS,
    hop_records,
    hop_seq,
    open_loop,
    write_bodies,
)
from ulasan.core.kafka_admin import ensure_topics
from ulasan.core.settings import Settings
from ulasan.errors import BenchError
from ulasan.loadgen import DEFAULT_TOOLS_DIR, ensure_oha, oha_command, parse_oha
from ulasan.pipeline_tools import (
    LagProbe,
    WorkerGroup,
    percentile,
    requests_lane,
    worker_group,
)
from ulasan.procs import Child, child_env, free_port, gateway_serve_args, spawn
from ulasan.sandbox import create_database, delete_topics, drop_database

#: Requests (sequential) and reviews that warm a setup up before anything is measured.
WARMUP_REQUESTS, WARMUP_REVIEWS = 40, 300
#: The target: burst p99 at most this many times the idle p99 of the same setup.
TARGET_RATIO = 2.0


@dataclass(frozen=True)
class Setup:
    """How the workers of one measured setup are laid out (see the module docstring)."""

    name: str
    lane: bool
    nice: int = 0


def setups(nice: int) -> list[Setup]:
    """The setups of one run: without the lane, with it, and with it and ``nice`` (if > 0)."""
    chosen = [Setup("all", lane=False), Setup("lane", lane=True)]
    if nice > 0:
        chosen.append(Setup("lane_nice", lane=True, nice=nice))
    return chosen


@dataclass(frozen=True)
class Sample:
    """One request: when it was sent (perf_counter s), how long it took (ms), whether it was
    answered with a prediction, and its time in the worker's queue (ms, from the reply)."""

    sent: float
    ms: float
    ok: bool
    queue_ms: float | None = None


def phase_summary(samples: Sequence[Sample], loop_lag_ms: Sequence[float]) -> dict[str, Any]:
    """p50/p99/max of the answered requests, the failures, the worker queue and the client's
    own loop lag."""
    good = [s.ms for s in samples if s.ok]
    queue = [s.queue_ms for s in samples if s.ok and s.queue_ms is not None]

    def pct(values: Sequence[float], q: float) -> float:
        return round(percentile(values, q) or 0.0, 2)

    return {
        "requests": len(samples),
        "errors": sum(1 for s in samples if not s.ok),
        "p50_ms": pct(good, 50),
        "p99_ms": pct(good, 99),
        "max_ms": round(max(good), 2) if good else 0.0,
        "worker_queue_p50_ms": pct(queue, 50),
        "worker_queue_p99_ms": pct(queue, 99),
        "client_loop_lag_p99_ms": pct(loop_lag_ms, 99),
    }


def verdict(idle: dict[str, Any], burst: dict[str, Any]) -> dict[str, Any]:
    """Burst p99 over idle p99, and whether the target holds (no failure, ratio <= 2)."""
    ratio = burst["p99_ms"] / idle["p99_ms"] if idle["p99_ms"] > 0 else None
    met = ratio is not None and ratio <= TARGET_RATIO and burst["errors"] == 0
    return {"burst_p99_over_idle_p99": round(ratio, 2) if ratio else None, "target_met": met}


# -- the client ------------------------------------------------------------------------------
class _Client:
    """HTTP /predict calls that record a :class:`Sample` each (failures included)."""

    def __init__(self) -> None:
        self.samples: list[Sample] = []
        self.pending = 0

    def call(self, client: httpx.AsyncClient) -> Callable[[str], Any]:
        async def predict(text: str) -> None:
            sent = time.perf_counter()
            self.pending += 1
            try:
                resp = await client.post("/predict", json={"text": text})
            except httpx.HTTPError:
                self.samples.append(Sample(sent, (time.perf_counter() - sent) * 1000.0, False))
                raise
            finally:
                self.pending -= 1
            ms = (time.perf_counter() - sent) * 1000.0
            if resp.status_code != 200:
                self.samples.append(Sample(sent, ms, False))
                raise BenchError(f"HTTP {resp.status_code}: {resp.text[:200]}")
            queue = resp.json()["prediction"].get("queue_ms")
            self.samples.append(Sample(sent, ms, True, None if queue is None else float(queue)))

        return predict


async def _loop_lag(out: list[float], tick_s: float = 0.01) -> None:
    """How late a ``tick_s`` sleep wakes up, in ms, until cancelled (the client's own delay)."""
    while True:
        started = time.perf_counter()
        await asyncio.sleep(tick_s)
        out.append(max(0.0, (time.perf_counter() - started - tick_s) * 1000.0))


async def _warm_up(url: str) -> None:
    """The open phase's warm-up requests, sequential, unmeasured."""
    recorder = _Client()
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        for i in range(WARMUP_REQUESTS):
            await recorder.call(client)(SHORT_REVIEWS[i % len(SHORT_REVIEWS)])


async def _open_phase(
    url: str, rate: float, concurrency: int, seconds: float, stop: threading.Event | None
) -> tuple[list[Sample], list[float]]:
    """The open loop of ``bench gateway`` at ``rate`` over ``concurrency`` connections for
    ``seconds``, or until ``stop`` is set; then wait for the requests still in flight."""
    recorder, lags = _Client(), list[float]()
    async with contextlib.AsyncExitStack() as stack:
        clients = [
            await stack.enter_async_context(httpx.AsyncClient(base_url=url, timeout=10))
            for _ in range(concurrency)
        ]
        for i in range(WARMUP_REQUESTS if stop is None else 0):
            await recorder.call(clients[i % concurrency])(SHORT_REVIEWS[i % len(SHORT_REVIEWS)])
        recorder.samples.clear()
        ticker = asyncio.create_task(_loop_lag(lags))
        loop = asyncio.create_task(open_loop([recorder.call(c) for c in clients], rate, seconds))
        while not loop.done():
            if stop is not None and stop.is_set():
                loop.cancel()  # requests already sent stay in flight and are recorded
                break
            await asyncio.sleep(0.05)
        with contextlib.suppress(asyncio.CancelledError):
            await loop
        deadline = time.perf_counter() + 15.0
        while recorder.pending and time.perf_counter() < deadline:
            await asyncio.sleep(0.05)
        ticker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await ticker
    return recorder.samples, lags


# -- the backlog -----------------------------------------------------------------------------
class _LagWatch(threading.Thread):
    """Polls the review group's lag; sets ``drained`` (and ``drained_at``) the first time it
    is 0 once :meth:`arm` was called."""

    def __init__(self, probe: LagProbe, poll_s: float = 0.25) -> None:
        super().__init__(name="burst-lag", daemon=True)
        self.probe, self.poll_s = probe, poll_s
        self.armed, self.drained, self.halt = (
            threading.Event(),
            threading.Event(),
            threading.Event(),
        )
        self.drained_at: float | None = None
        self.armed_at = 0.0

    def arm(self) -> None:
        """Watch for lag 0 from now on (call it once the backlog is published: then lag 0 on
        the log ends read from now on means every published review was handled)."""
        self.drained.clear()
        self.drained_at = None
        self.armed_at = time.perf_counter()
        self.armed.set()

    def run(self) -> None:
        while not self.halt.wait(self.poll_s):
            asked = time.perf_counter()
            lag = self.probe.lag()
            # a reading begun before arm() may predate the backlog's log ends
            if lag is None or not self.armed.is_set() or asked < self.armed_at:
                continue
            if lag == 0 and not self.drained.is_set():
                self.drained_at = time.perf_counter()
                self.drained.set()
                self.armed.clear()


def _reviews(id_prefix: str, texts: Sequence[str], n: int) -> list[ReviewReceived]:
    return [
        ReviewReceived(review_id=f"{id_prefix}-{i}", source="bench", text=texts[i % len(texts)])
        for i in range(n)
    ]


def _publish(publisher: Publisher, reviews: Sequence[ReviewReceived]) -> None:
    for review in reviews:
        publisher.publish_review(review)
    publisher.flush()


# -- one setup -------------------------------------------------------------------------------
@dataclass
class _BurstRun:
    """One run of the benchmark: its knobs, database and the names of each setup's topics."""

    settings: Settings
    folder: Path
    reviews: int
    rate: float
    idle_s: float
    concurrency: int
    threads: int | None
    say: Callable[[str], None]
    #: oha's binary (the compiled open-loop client), or None for the Python client
    oha: Path | None = None
    max_drain_s: float = 900.0
    suffix: str = field(default_factory=lambda: uuid.uuid4().hex[:10])

    def prefix(self, setup: Setup) -> str:
        return f"bench-burst-{self.suffix}-{setup.name}."

    def app_id(self, setup: Setup) -> str:
        return f"ulasan-bench-burst-{self.suffix}-{setup.name}"

    @property
    def dbname(self) -> str:
        return f"bench_burst_{self.suffix}"

    @property
    def dsn(self) -> str:
        pg = self.settings.postgres
        return f"postgresql://{pg.user}@{pg.host}:{pg.port}/{self.dbname}"

    @property
    def logs(self) -> Path:
        return self.settings.state_dir / "logs"

    def overrides(self, setup: Setup) -> dict[str, str]:
        """The ``ULASAN_*`` settings of the setup's workers and gateway."""
        group = self.app_id(setup)
        env = {
            "ULASAN_WORKER__TOPIC_PREFIX": self.prefix(setup),
            "ULASAN_GATEWAY__TOPIC_PREFIX": self.prefix(setup),
            "ULASAN_POSTGRES__DBNAME": self.dbname,
            # /ready checks that the group scoring the requests holds their partitions
            "ULASAN_GATEWAY__WORKER_GROUP": requests_group(group) if setup.lane else group,
            "ULASAN_DRIFT__ENABLED": "false",
        }
        if self.threads is not None:
            env["ULASAN_WORKER__INTRA_OP_THREADS"] = str(self.threads)
        return env


@dataclass
class _Procs:
    """The processes of one setup."""

    workers: WorkerGroup
    gateway: Child | None = None
    url: str = ""


def _start(run: _BurstRun, setup: Setup) -> _Procs:
    """The setup's topics, workers (and lane) and gateway, ready."""
    kafka = run.settings.kafka
    ensure_topics(
        kafka.bootstrap_servers,
        [run.prefix(setup) + t for t in topics.all_topics_with_dlq()],
        kafka.partitions,
        kafka.replication_factor,
    )
    env = run.overrides(setup)
    model, app_id, stem = (
        str(run.folder),
        run.app_id(setup),
        f"bench-burst-{run.suffix}-{setup.name}",
    )
    reviews_env = env | ({"ULASAN_WORKER__NICE": str(setup.nice)} if setup.nice else {})
    group = worker_group(
        model=model,
        app_id=app_id,
        overrides=reviews_env,
        log_dir=run.logs,
        stem=stem,
        ports=[0],
        lane="reviews" if setup.lane else "all",
    )
    if setup.lane:
        lane_env = env | {"ULASAN_WORKER__INTRA_OP_THREADS": "1"}
        lane_proc = requests_lane(
            model=model, app_id=app_id, overrides=lane_env, log_dir=run.logs, stem=stem, port=0
        )
        group = WorkerGroup([*group.workers, lane_proc])
    procs = _Procs(group)
    group.start()
    group.wait_ready()
    http_port, grpc_port = free_port(), free_port()
    log_path = run.logs / f"{stem}-gateway.log"
    proc = spawn(gateway_serve_args(http_port, grpc_port), env=child_env(env), log_path=log_path)
    procs.gateway = Child("gateway", proc, log_path)
    procs.url = f"http://127.0.0.1:{http_port}"
    _wait_ready(procs)
    return procs


def _wait_ready(procs: _Procs, timeout_s: float = 120.0) -> None:
    """Until the gateway answers /ready; raise if it or a worker dies, or after ``timeout_s``."""
    assert procs.gateway is not None
    deadline = time.monotonic() + timeout_s
    while True:
        procs.workers.check_alive()
        if not procs.gateway.alive():
            raise BenchError(f"the gateway exited: {procs.gateway.log(3000)}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(procs.url + "/ready", timeout=5).status_code == 200:
                return
        if time.monotonic() > deadline:
            raise BenchError(f"the gateway was not ready in {timeout_s:.0f} s")
        time.sleep(1)


def _stop(run: _BurstRun, setup: Setup, procs: _Procs | None) -> None:
    if procs is not None:
        if procs.gateway is not None:
            procs.gateway.stop(30)
        procs.workers.stop()
    try:
        delete_topics(run.settings.kafka.bootstrap_servers, (run.prefix(setup), run.app_id(setup)))
    except Exception as exc:  # noqa: BLE001 - cleanup must not hide the result or the error
        run.say(f"cleanup failed: {exc}")


def _drain(run: _BurstRun, watch: _LagWatch, publisher: Publisher, batch: Sequence[Any]) -> float:
    """Publish ``batch`` and wait until the group's lag is 0; the seconds from the first
    publish to that."""
    started = time.perf_counter()
    _publish(publisher, batch)
    watch.arm()
    if not watch.drained.wait(run.max_drain_s):
        raise BenchError(f"the backlog did not drain in {run.max_drain_s:.0f} s")
    assert watch.drained_at is not None
    return watch.drained_at - started


def _measure_setup(run: _BurstRun, setup: Setup, procs: _Procs, texts: Sequence[str]) -> Any:
    """Warm-up, idle phase, burst phase of one setup (its processes running)."""
    prefix = run.prefix(setup)
    publisher = Publisher(
        run.settings, topic_overrides=prefixed_topics(prefix), config={"log_level": 4}
    )
    probe = LagProbe(
        run.settings.kafka.bootstrap_servers,
        run.app_id(setup),
        [prefix + t for t in configured_review_topics()],
    )
    watch = _LagWatch(probe)
    watch.start()
    try:
        run.say(f"{setup.name}: warming up ({WARMUP_REVIEWS} reviews)")
        _drain(run, watch, publisher, _reviews(f"{setup.name}-warm", texts, WARMUP_REVIEWS))
        run.say(f"{setup.name}: idle, {run.rate:g} req/s for {run.idle_s:g} s")
        if run.oha is not None:  # oha's warm-up: the Python client's, sequential
            asyncio.run(_warm_up(procs.url))
        seq = hop_seq(procs.url)
        if run.oha is not None:
            idle = _oha_phase(run, procs.url, run.idle_s, None)
        else:
            idle = phase_summary(
                *asyncio.run(_open_phase(procs.url, run.rate, run.concurrency, run.idle_s, None))
            )
        idle_hops = hop_records(procs.url, seq)
        batch = _reviews(f"{setup.name}-burst", texts, run.reviews)
        run.say(f"{setup.name}: burst, {run.reviews} reviews, {run.rate:g} req/s until drained")
        seq = hop_seq(procs.url)
        burst, drain_s = _burst(run, procs, watch, publisher, batch)
        return idle, idle_hops, burst, drain_s, hop_records(procs.url, seq)
    finally:
        watch.halt.set()
        watch.join(timeout=5)
        probe.close()
        publisher.close()


def _burst(
    run: _BurstRun, procs: _Procs, watch: _LagWatch, publisher: Publisher, batch: Sequence[Any]
) -> tuple[dict[str, Any], float]:
    """Publish ``batch``, then run the open loop until the group's lag is 0: the figures of
    the requests sent before that (oha: until it was stopped, at most a lag poll and a commit
    interval later) and the drain's seconds (from the first publish). Publishing first keeps
    the producer's work out of the client's loop."""
    started = time.perf_counter()
    _publish(publisher, batch)
    watch.arm()
    if run.oha is not None:
        figures = _oha_phase(run, procs.url, run.max_drain_s, watch.drained)
        samples: list[Sample] = []
        lags: list[float] = []
    else:
        samples, lags = asyncio.run(
            _open_phase(procs.url, run.rate, run.concurrency, run.max_drain_s, watch.drained)
        )
    procs.workers.check_alive()
    drained_at = watch.drained_at
    if drained_at is None:
        raise BenchError(f"the backlog did not drain in {run.max_drain_s:.0f} s")
    if run.oha is None:
        during = [s for s in samples if s.sent < drained_at]
        if not during:
            raise BenchError("the backlog drained before a request was measured: more --reviews")
        figures = phase_summary(during, lags)
    return figures, drained_at - started


def _oha_phase(
    run: _BurstRun, url: str, seconds: float, stop: threading.Event | None
) -> dict[str, Any]:
    """oha at ``run.rate`` open loop (``bench gateway``'s command) for ``seconds``, or until
    ``stop`` is set (then interrupted: oha stops sending, waits for the requests in flight and
    prints its report); the phase's figures in the Python client's keys."""
    assert run.oha is not None
    bodies = write_bodies(run.logs / f"burst-{run.suffix}-bodies.jsonl")
    args = oha_command(
        run.oha, url + "/predict", bodies, duration_s=seconds, concurrency=run.concurrency,
        rate=run.rate,
    )  # fmt: skip
    started = time.perf_counter()
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    while stop is not None and proc.poll() is None:
        if stop.wait(0.05):
            proc.send_signal(signal.SIGINT)
            break
    try:
        out, err = proc.communicate(timeout=seconds + 60.0)
    except subprocess.TimeoutExpired as exc:
        proc.kill()
        raise BenchError("oha did not finish") from exc
    if proc.returncode not in (0, -signal.SIGINT, 130):
        raise BenchError(f"oha failed (exit {proc.returncode}): {err[-2000:]}")
    try:
        report = json.loads(out)
    except json.JSONDecodeError as exc:
        raise BenchError(f"oha printed no JSON report: {out[-500:]!r}") from exc
    return oha_phase_summary(report, run.rate, time.perf_counter() - started)


def oha_phase_summary(report: dict[str, Any], rate: float, elapsed_s: float) -> dict[str, Any]:
    """A phase's figures from oha's JSON report, in the Python client's keys (its latencies
    run from each request's scheduled send time: ``--latency-correction``)."""
    figures = parse_oha(report, rate=rate, duration_s=elapsed_s)
    slowest = report["summary"].get("slowest")
    return {
        "load_generator": "oha",
        "requests": figures["sent"],
        "errors": figures["error_count"],
        "p50_ms": figures["p50_ms"],
        "p99_ms": figures["p99_ms"],
        "max_ms": round(float(slowest) * 1000.0, 2) if slowest is not None else 0.0,
        "achieved_rps": figures["achieved_rps"],
    }


def hop_breakdown(records: Sequence[dict[str, Any]], tail: float = 0.01) -> dict[str, Any]:
    """The HTTP requests' hops (``producers.gateway.hops``): p50 and p99 of each, and the
    mean of each over the slowest ``tail`` share of the requests (by total): where the time of
    the requests behind the p99 went."""
    mine = [r for r in records if r.get("protocol") == "http" and r.get("total") is not None]
    by_total = sorted(mine, key=lambda r: float(r["total"]), reverse=True)
    slowest = by_total[: math.ceil(len(mine) * tail)]
    return {
        "requests": len(mine),
        "hops": summarize(mine, "http"),
        "total_p99_ms": nearest_rank([float(r["total"]) for r in mine], 99),
        "slowest": {
            "requests": len(slowest),
            "mean_ms": {
                hop: round(sum(float(r[hop]) for r in vals) / len(vals), 3) if vals else None
                for hop in HOPS
                for vals in [[r for r in slowest if r.get(hop) is not None]]
            },
        },
    }


def _setup_result(run: _BurstRun, measured: Any) -> dict[str, Any]:
    idle, idle_hops, burst, drain_s, burst_hops = measured
    # the hop records of the burst phase include the few requests answered after the drain
    idle["hop_breakdown"] = hop_breakdown(idle_hops)
    burst["hop_breakdown"] = hop_breakdown(burst_hops)
    return {
        "idle": idle,
        "burst": burst,
        "drain_s": round(drain_s, 2),
        "drain_reviews_per_s": round(run.reviews / drain_s, 1) if drain_s > 0 else None,
        **verdict(idle, burst),
    }


def run_burst_bench(
    settings: Settings,
    *,
    folder: Path,
    reviews: int,
    rate: float = 20.0,
    idle_s: float = 15.0,
    concurrency: int = 4,
    nice: int = 10,
    threads: int | None = None,
    client: str = "compiled",
    say: Callable[[str], None] = lambda _: None,
) -> dict[str, Any]:
    """Measure every setup of :func:`setups` on ``folder`` (a serving folder); see the module
    docstring. ``threads``: ONNX Runtime threads of the review-scoring worker; ``client``:
    ``compiled`` (oha, built on first use) or ``python`` (asyncio clients in this process)."""
    from trainer.bench_engine import bench_texts  # noqa: PLC0415 - heavy, onnxruntime

    if reviews < 1 or rate <= 0 or idle_s <= 0 or concurrency < 1:
        raise BenchError("reviews, rate, idle and concurrency must be positive")
    if client not in CLIENTS:
        raise BenchError(f"--client must be one of {', '.join(CLIENTS)}, got {client!r}")
    oha = ensure_oha(DEFAULT_TOOLS_DIR, say).binary if client == "compiled" else None
    run = _BurstRun(settings, folder, reviews, rate, idle_s, concurrency, threads, say, oha)
    run.logs.mkdir(parents=True, exist_ok=True)
    texts = bench_texts(1260)
    create_database(settings.postgres.dsn, run.dbname, run.dsn)
    results: dict[str, Any] = {}
    try:
        for setup in setups(nice):
            procs: _Procs | None = None
            try:
                say(f"{setup.name}: starting workers and the gateway on {folder.name}")
                procs = _start(run, setup)
                results[setup.name] = _setup_result(run, _measure_setup(run, setup, procs, texts))
            finally:
                _stop(run, setup, procs)
    finally:
        try:
            drop_database(settings.postgres.dsn, run.dbname)
        except Exception as exc:  # noqa: BLE001 - cleanup must not hide the result or the error
            say(f"cleanup failed: {exc}")
    return {
        "reviews": reviews,
        "rate": rate,
        "idle_s": idle_s,
        "concurrency": concurrency,
        "threads": threads,
        "nice": nice,
        "client": client,
        "model": folder.name,
        "target": f"burst p99 <= {TARGET_RATIO:g}x idle p99 of the same setup, no errors",
        "setups": results,
    }
