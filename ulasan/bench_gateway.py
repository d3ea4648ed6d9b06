"""``ulasan bench gateway``: HTTP /predict and gRPC Predict latency and requests/s from C
clients, beside the bare engine's batch-1 latency on the same model and texts.

Two load modes. *Closed loop* (no ``rate``): each client sends its next request when the
previous answer is in, so throughput = C / mean latency (Little's law) and the run finds the
saturation throughput. *Open loop* (``rate`` R): the C clients together offer R requests/s on
a fixed schedule (each every C/R s from a random phase, however many are still in flight) and
latency runs from the scheduled send time (no coordinated omission, as wrk2 and k6's
constant-arrival-rate); achieved requests/s falls below R when the system cannot keep up.

Each run gets its own topics (a unique prefix) and consumer group; ``ulasan worker``(s) and one
``ulasan gateway serve`` run as subprocesses. The load comes from oha (HTTP) and ghz (gRPC),
separate compiled processes built on first use (``--client compiled``, :mod:`ulasan.loadgen`;
open loop: oha ``-q R --latency-correction``, ghz ``--rps R --async``), or from asyncio clients
in this process (``--client python``: httpx and grpc.aio, one connection each, the loops
below). A warm-up (not measured) loads the model and fills the caches first. Then the
gateway's hop ring (:mod:`producers.gateway.hops`, ``GET /debug/hops``) gives each measured
request's hops (parse and auth, produce, wait in the worker, inference, reply, response write)
for exact p50/p99 per hop, and the worker's and gateway's peak RSS (``VmHWM``) is read before
they stop. The bare engine figure is ``OnnxPredictor.predict([text])`` on the same short
reviews, one at a time, with the worker's thread setting: tokenisation, the ONNX graph and the
softmax, nothing else.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import httpx

import schemas
from producers.gateway.hops import summarize
from stream_processors.settings import requests_group
from ulasan.core.grpc_gen import ulasan_pb2 as pb
from ulasan.core.grpc_gen import ulasan_pb2_grpc as pb_grpc
from ulasan.core.settings import Settings
from ulasan.errors import BenchError
from ulasan.loadgen import (
    DEFAULT_TOOLS_DIR,
    Tool,
    ensure_ghz,
    ensure_oha,
    ghz_command,
    oha_command,
    parse_ghz,
    parse_oha,
    run_report,
)
from ulasan.pipeline_tools import WorkerGroup, percentile, requests_lane, worker_group
from ulasan.proc_cpu import CpuWindow
from ulasan.proc_memory import process_memory
from ulasan.procs import Child, child_env, free_port, gateway_serve_args, spawn
from ulasan.sandbox import delete_topics

#: Short reviews (the gateway's typical ad-hoc request).
SHORT_REVIEWS: tuple[str, ...] = (
    "Aplikasinya bagus, sangat membantu!",
    "Jelek, sering force close.",
    "Pengiriman cepat, barang sesuai.",
    "Tidak bisa login sejak update kemarin",
    "Lumayan lah untuk harga segini",
    "Mantap, pelayanan ramah",
    "Kurang puas, kualitas menurun",
    "Biasa saja, tidak istimewa",
    "Sangat kecewa dengan customer service",
    "Oke banget, recommended!",
    "Aplikasi lemot dan boros baterai",
    "Barang rusak saat diterima",
)
WARMUP_REQUESTS = 60
#: the ``--client`` choices: oha + ghz (built on first use), or asyncio clients in this process
CLIENTS = ("compiled", "python")
PYTHON_CLIENT = {
    "name": "ulasan-python",
    "version": f"httpx {httpx.__version__}, grpcio {grpc.__version__}",
}
#: the gateway's hop ring for a run (grows as used: 72 bytes a request)
HOP_RING = 500_000
#: the gRPC contract ghz reads
PROTO = Path(schemas.__file__).parent / "ulasan.proto"


def engine_batch1_ms(folder: Path, threads: int | None, n: int = 200) -> float:
    """Median ms of one ``predict([text])`` call over the short reviews (after a warm-up)."""
    from ulasan.core.inference import OnnxPredictor  # noqa: PLC0415 - heavy, onnxruntime

    predictor = OnnxPredictor.from_folder(folder, intra_op_threads=threads)
    for text in SHORT_REVIEWS:
        predictor.predict([text])
    times = []
    for i in range(n):
        started = time.perf_counter()
        predictor.predict([SHORT_REVIEWS[i % len(SHORT_REVIEWS)]])
        times.append((time.perf_counter() - started) * 1000.0)
    return statistics.median(times)


Call = Callable[[str], Awaitable[None]]


def _summary(latencies: list[float], errors: dict[str, int], elapsed_s: float) -> dict[str, Any]:
    return {
        "requests": len(latencies),
        "errors": errors,
        "rps": round(len(latencies) / elapsed_s, 1) if elapsed_s > 0 else 0.0,
        "p50_ms": round(percentile(latencies, 50) or 0.0, 2),
        "p95_ms": round(percentile(latencies, 95) or 0.0, 2),
        "p99_ms": round(percentile(latencies, 99) or 0.0, 2),
    }


def _count(errors: dict[str, int], exc: BaseException) -> None:
    errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1


async def _load(calls: Sequence[Call], duration_s: float) -> dict[str, Any]:
    """Closed loop: client ``k`` calls ``calls[k]`` back to back for ``duration_s`` (the next
    request leaves when the previous answer is in); latencies of the successes."""
    latencies: list[float] = []
    errors: dict[str, int] = {}
    stop_at = time.perf_counter() + duration_s
    concurrency = len(calls)

    async def client(k: int) -> None:
        i = k
        while time.perf_counter() < stop_at:
            text = SHORT_REVIEWS[i % len(SHORT_REVIEWS)]
            i += concurrency
            started = time.perf_counter()
            try:
                await calls[k](text)
            except Exception as exc:  # counted and reported: the run goes on
                _count(errors, exc)
                continue
            latencies.append((time.perf_counter() - started) * 1000.0)

    began = time.perf_counter()
    await asyncio.gather(*(client(k) for k in range(concurrency)))
    return {"mode": "closed", **_summary(latencies, errors, time.perf_counter() - began)}


async def open_loop(
    calls: Sequence[Call], rate: float, duration_s: float, *, seed: int = 0
) -> dict[str, Any]:
    """Open loop at ``rate`` requests/s in total over the clients (``calls[k]`` is client k's
    connection): each client sends every ``len(calls) / rate`` s from a random phase, whether
    or not its earlier requests have been answered (they stay in flight beside the new one).
    Latency runs from a request's *scheduled* send time to its answer, so a client that falls
    behind, or a server that queues, shows in the latency (no coordinated omission). Achieved
    requests/s = answers / (first scheduled send -> last answer): below ``rate`` when the
    system cannot keep up."""
    if rate <= 0:
        raise BenchError(f"--rate must be > 0 requests/s, got {rate:g}")
    period = len(calls) / rate
    rng = random.Random(seed)  # noqa: S311 - send phases, not secrets
    phases = [rng.uniform(0.0, period) for _ in calls]
    latencies: list[float] = []
    errors: dict[str, int] = {}
    inflight: set[asyncio.Task[None]] = set()
    sent = 0
    lateness: list[float] = []  # how late the client itself sent (its own event loop's delay)

    async def fire(call: Call, text: str, scheduled: float) -> None:
        try:
            await call(text)
        except Exception as exc:  # counted and reported: the run goes on
            _count(errors, exc)
            return
        latencies.append((time.perf_counter() - scheduled) * 1000.0)

    async def client(k: int, began: float, end: float) -> None:
        nonlocal sent
        n = 0
        while (at := began + phases[k] + n * period) < end:
            delay = at - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            lateness.append(max(0.0, time.perf_counter() - at) * 1000.0)
            text = SHORT_REVIEWS[(k + n * len(calls)) % len(SHORT_REVIEWS)]
            task = asyncio.create_task(fire(calls[k], text, at))
            inflight.add(task)
            task.add_done_callback(inflight.discard)
            sent += 1
            n += 1

    began = time.perf_counter() + 0.01
    end = began + duration_s
    await asyncio.gather(*(client(k, began, end) for k in range(len(calls))))
    while inflight:
        await asyncio.gather(*list(inflight))
    elapsed = time.perf_counter() - began
    return {
        "mode": "open",
        "offered_rps": round(sent / duration_s, 1),
        "sent": sent,
        **_summary(latencies, errors, elapsed),
        "client_send_lateness_p99_ms": round(percentile(lateness, 99) or 0.0, 2),
    }


class _Clients:
    """C connections per protocol, and the worker's own timings (queue, inference) from the
    replies of the measured requests."""

    def __init__(self) -> None:
        self.parts: dict[str, list[float]] = {"queue_ms": [], "inference_ms": []}

    def http_call(self, client: httpx.AsyncClient) -> Call:
        async def call(text: str) -> None:
            resp = await client.post("/predict", json={"text": text})
            if resp.status_code != 200:
                raise BenchError(f"HTTP {resp.status_code}: {resp.text[:200]}")
            prediction = resp.json()["prediction"]
            self.parts["queue_ms"].append(float(prediction["queue_ms"]))
            self.parts["inference_ms"].append(float(prediction["inference_ms"]))

        return call

    def grpc_call(self, stub: Any) -> Call:
        async def call(text: str) -> None:
            resp = await stub.Predict(pb.PredictRequest(text=text), timeout=10)
            self.parts["queue_ms"].append(resp.prediction.queue_ms)
            self.parts["inference_ms"].append(resp.prediction.inference_ms)

        return call

    async def measure(
        self, calls: list[Call], duration_s: float, rate: float | None
    ) -> dict[str, Any]:
        """The closed loop, or the open loop at ``rate`` (after the warm-up: :func:`_warm_up`)."""
        for values in self.parts.values():
            values.clear()
        if rate is None:
            result = await _load(calls, duration_s)
        else:
            result = await open_loop(calls, rate, duration_s)
        # where the time went (medians, from the replies): Kafka record time of the request
        # -> start of its batch in the worker, and the batch's inference time
        result["worker_queue_p50_ms"] = round(percentile(self.parts["queue_ms"], 50) or 0.0, 2)
        result["worker_inference_p50_ms"] = round(
            percentile(self.parts["inference_ms"], 50) or 0.0, 2
        )
        result["load_generator"] = PYTHON_CLIENT
        result["achieved_rps"] = result["rps"]
        result["error_count"] = sum(result["errors"].values())
        if rate is None:
            result["offered_rps"] = None
        return result


async def _run_clients(
    http_url: str,
    grpc_target: str,
    concurrency: int,
    duration_s: float,
    rate: float | None = None,
) -> dict[str, Any]:
    """Both protocols, one after the other, from this process (``--client python``); each
    client has its own connection (an httpx client, which opens a second connection only
    while an open-loop request is still in flight, or a grpc.aio channel, which multiplexes
    in-flight requests)."""
    clients = _Clients()
    async with contextlib.AsyncExitStack() as stack:
        https = [
            await stack.enter_async_context(
                httpx.AsyncClient(base_url=http_url, timeout=10, limits=httpx.Limits())
            )
            for _ in range(concurrency)
        ]
        channels = [
            await stack.enter_async_context(grpc.aio.insecure_channel(grpc_target))
            for _ in range(concurrency)
        ]
        stubs = [pb_grpc.GatewayStub(c) for c in channels]  # type: ignore[no-untyped-call]
        http = await clients.measure([clients.http_call(c) for c in https], duration_s, rate)
        grpc_result = await clients.measure([clients.grpc_call(s) for s in stubs], duration_s, rate)
    return {"http": http, "grpc": grpc_result}


@dataclass
class _GatewayRun:
    """One benchmark run: its knobs, and the private topics and consumer group."""

    settings: Settings
    folder: Path
    threads: int | None
    workers: int
    say: Callable[[str], None]
    suffix: str = field(default_factory=lambda: uuid.uuid4().hex[:10])
    dbname: str | None = None  # a private database (None: the stack's)
    lane: bool = False  # the requests lane scores the requests (as `ulasan run` deploys it)

    @property
    def prefix(self) -> str:
        return f"bench-gw-{self.suffix}."

    @property
    def app_id(self) -> str:
        return f"ulasan-bench-gw-{self.suffix}"

    @property
    def group(self) -> str:
        """The consumer group that scores the requests."""
        return requests_group(self.app_id) if self.lane else self.app_id

    @property
    def logs(self) -> Path:
        return self.settings.state_dir / "logs"

    def overrides(self) -> dict[str, str]:
        """The ``ULASAN_*`` settings of the worker and gateway processes."""
        overrides = {
            "ULASAN_WORKER__TOPIC_PREFIX": self.prefix,
            "ULASAN_GATEWAY__TOPIC_PREFIX": self.prefix,
            # /ready checks that this group holds the request partitions
            "ULASAN_GATEWAY__WORKER_GROUP": requests_group(self.app_id)
            if self.lane
            else self.app_id,
            "ULASAN_DRIFT__ENABLED": "false",
            "ULASAN_GATEWAY__HOP_TRACE_SIZE": str(HOP_RING),
        }
        if self.threads is not None:
            overrides["ULASAN_WORKER__INTRA_OP_THREADS"] = str(self.threads)
        if self.dbname is not None:
            overrides["ULASAN_POSTGRES__DBNAME"] = self.dbname
        return overrides


def _workers(run: _GatewayRun) -> WorkerGroup:
    if run.lane:  # only requests flow here: the lane alone (idle review workers add nothing)
        return WorkerGroup(
            [
                requests_lane(
                    model=str(run.folder),
                    app_id=run.app_id,
                    overrides=run.overrides(),
                    log_dir=run.logs,
                    stem=f"bench-gateway-{run.suffix}",
                    port=0,
                )
            ]
        )
    return worker_group(
        model=str(run.folder),
        app_id=run.app_id,
        overrides=run.overrides(),
        log_dir=run.logs,
        stem=f"bench-gateway-{run.suffix}",
        ports=[0] * run.workers,
    )


def _spawn_gateway(run: _GatewayRun) -> tuple[Child, int, int]:
    """``ulasan gateway serve`` on free ports: (process, HTTP port, gRPC port)."""
    http_port, grpc_port = free_port(), free_port()
    log_path = run.logs / f"bench-gateway-{run.suffix}-gateway.log"
    proc = spawn(
        gateway_serve_args(http_port, grpc_port),
        env=child_env(run.overrides()),
        log_path=log_path,
    )
    return Child("gateway", proc, log_path), http_port, grpc_port


def _wait_gateway(gateway: Child, url: str, worker: WorkerGroup, timeout_s: float = 120) -> None:
    """Until the gateway answers /ready; raise if it or a worker dies, or after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        worker.check_alive()
        if not gateway.alive():
            raise BenchError(f"the gateway exited: {gateway.log(3000)}")
        try:
            if httpx.get(url + "/ready", timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise BenchError(
                f"the gateway was not ready in {timeout_s:.0f} s; see {gateway.log_path}"
            )
        time.sleep(1)


def _cleanup(run: _GatewayRun, worker: WorkerGroup, gateway: Child | None) -> None:
    """Stop the gateway and the workers, remove the run's topics."""
    if gateway is not None:
        gateway.stop(30)
    worker.stop()
    try:
        delete_topics(run.settings.kafka.bootstrap_servers, (run.prefix, run.app_id))
    except Exception as exc:  # noqa: BLE001 - cleanup must not hide the result or the error
        run.say(f"cleanup failed: {exc}")


@dataclass(frozen=True)
class _Load:
    """What load a run offers: C clients for S seconds per protocol, at R req/s or closed."""

    concurrency: int
    duration_s: float
    rate: float | None
    client: str


async def _warm_up(http_url: str, grpc_target: str) -> int:
    """:data:`WARMUP_REQUESTS` per protocol, not measured (the model loaded, the caches warm);
    the gateway's hop ring position after them (the measured requests come after it)."""
    async with (
        httpx.AsyncClient(base_url=http_url, timeout=10) as client,
        grpc.aio.insecure_channel(grpc_target) as channel,
    ):
        stub = pb_grpc.GatewayStub(channel)  # type: ignore[no-untyped-call]
        for i in range(WARMUP_REQUESTS):
            text = SHORT_REVIEWS[i % len(SHORT_REVIEWS)]
            resp = await client.post("/predict", json={"text": text})
            if resp.status_code != 200:
                raise BenchError(f"warm-up: HTTP {resp.status_code}: {resp.text[:200]}")
            await stub.Predict(pb.PredictRequest(text=text), timeout=10)
    return hop_seq(http_url)


def write_bodies(path: Path) -> Path:
    """oha's request bodies (``-Z``): one ``{"text": ...}`` line per short review; ``path``."""
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in SHORT_REVIEWS))
    return path


def hop_seq(http_url: str) -> int:
    """The sequence number of the gateway's newest hop record: records after it are new."""
    resp = httpx.get(http_url + "/debug/hops", params={"after": 2**62}, timeout=30)
    resp.raise_for_status()
    return int(resp.json()["seq"])


def hop_records(http_url: str, after: int) -> list[dict[str, Any]]:
    """The gateway's hop records after ``after`` (raise when some already left its ring)."""
    resp = httpx.get(http_url + "/debug/hops", params={"after": after}, timeout=30)
    resp.raise_for_status()
    body = resp.json()
    if not body["complete"]:
        raise BenchError(
            f"the gateway's hop ring ({body['capacity']} requests) lost some of the run's "
            "requests: shorten --duration"
        )
    return list(body["records"])


def _compiled(
    tools: tuple[Tool, Tool],
    http_url: str,
    grpc_target: str,
    load: _Load,
    keep: Path,
    pids: dict[str, int],
) -> dict[str, Any]:
    """oha on HTTP /predict, then ghz on gRPC Predict (see :mod:`ulasan.loadgen`); their raw
    reports are kept as ``<keep>-oha.json`` and ``<keep>-ghz.json``. Each protocol's ``cpu``:
    where the machine's CPU went while it ran (:class:`~ulasan.proc_cpu.CpuWindow` over
    ``pids``; the load generator is the child)."""
    oha, ghz = tools
    limit = load.duration_s + 120.0
    bodies = write_bodies(keep.with_name(keep.name + "-bodies.jsonl"))
    duration, concurrency, rate = load.duration_s, load.concurrency, load.rate
    http_args = oha_command(
        oha.binary,
        http_url + "/predict",
        bodies,
        duration_s=duration,
        concurrency=concurrency,
        rate=rate,
    )
    oha_report = keep.with_name(keep.name + "-oha.json")
    with CpuWindow(pids) as http_cpu:
        oha_out = run_report(http_args, limit, oha_report)
    http = parse_oha(oha_out, rate=rate, duration_s=duration)
    messages = [{"text": t} for t in SHORT_REVIEWS]
    grpc_args = ghz_command(
        ghz.binary,
        grpc_target,
        PROTO,
        messages,
        duration_s=duration,
        concurrency=concurrency,
        rate=rate,
    )
    ghz_report = keep.with_name(keep.name + "-ghz.json")
    with CpuWindow(pids) as grpc_cpu:
        ghz_out = run_report(grpc_args, limit, ghz_report)
    grpc_result = parse_ghz(ghz_out, rate=rate, duration_s=duration)
    return {
        "http": {
            **http,
            "load_generator": oha.describe(),
            "report": str(oha_report),
            "cpu": http_cpu.result(),
        },
        "grpc": {
            **grpc_result,
            "load_generator": ghz.describe(),
            "report": str(ghz_report),
            "cpu": grpc_cpu.result(),
        },
    }


def _with_hops(result: dict[str, Any], records: list[dict[str, Any]]) -> None:
    """Each protocol's per-hop p50/p99 (and, for the compiled clients, the worker's queue and
    inference medians the Python clients read from the replies)."""
    for proto in ("http", "grpc"):
        hops = summarize(records, proto)
        result[proto]["hops"] = hops
        if "worker_queue_p50_ms" in result[proto]:
            continue
        queue = [
            r["produce"] + r["worker_wait"]
            for r in records
            if r["protocol"] == proto and r["produce"] is not None and r["worker_wait"] is not None
        ]
        result[proto]["worker_queue_p50_ms"] = round(percentile(queue, 50) or 0.0, 2)
        result[proto]["worker_inference_p50_ms"] = hops["inference"]["p50_ms"] or 0.0


def _measure(
    http_url: str,
    grpc_target: str,
    load: _Load,
    tools: tuple[Tool, Tool] | None,
    keep: Path,
    pids: dict[str, int],
) -> dict[str, Any]:
    """Warm up, then both protocols with the chosen clients, then the hops of exactly the
    measured requests from the gateway's ring."""
    seq = asyncio.run(_warm_up(http_url, grpc_target))
    if tools is None:
        # the Python clients run in this process: their CPU is the "bench" process's
        with CpuWindow({**pids, "bench": os.getpid()}) as cpu:
            result = asyncio.run(
                _run_clients(http_url, grpc_target, load.concurrency, load.duration_s, load.rate)
            )
        result["cpu"] = cpu.result()
    else:
        result = _compiled(tools, http_url, grpc_target, load, keep, pids)
    _with_hops(result, hop_records(http_url, seq))
    return result


def _memory(worker: WorkerGroup, gateway: Child) -> dict[str, Any]:
    """Peak and current RSS of each serving process, read while it still runs."""
    out = {w.name: process_memory(w.child.proc.pid) for w in worker.workers if w.child is not None}
    out["gateway"] = process_memory(gateway.proc.pid)
    return out


def load_generators(
    client: str, tools_dir: Path, say: Callable[[str], None]
) -> tuple[Tool, Tool] | None:
    """oha and ghz for ``--client compiled`` (built on first use), None for ``python``."""
    if client not in CLIENTS:
        raise BenchError(f"--client must be one of {', '.join(CLIENTS)}, got {client!r}")
    if client == "python":
        return None
    return ensure_oha(tools_dir, say), ensure_ghz(tools_dir, say)


def run_gateway_bench(
    settings: Settings,
    *,
    folder: Path,
    concurrency: int,
    duration_s: float,
    rate: float | None = None,
    threads: int | None = None,
    workers: int = 1,
    client: str = "compiled",
    lane: bool = False,
    tools_dir: Path = DEFAULT_TOOLS_DIR,
    say: Callable[[str], None] = lambda _: None,
) -> dict[str, Any]:
    """Measure the gateway on ``folder`` (a serving folder) with ``workers`` worker processes
    in one group (``threads`` ONNX Runtime threads each), or with ``lane`` one requests lane
    (``ulasan worker --lane requests``, as ``ulasan run``, compose and Helm deploy it); see
    the module docstring."""
    load = _Load(concurrency, duration_s, rate, client)
    tools = load_generators(client, tools_dir, say)  # a build happens before anything starts
    run = _GatewayRun(settings, folder, threads, workers, say, lane=lane)
    run.logs.mkdir(parents=True, exist_ok=True)
    worker = _workers(run)
    gateway: Child | None = None
    try:
        what = "the requests lane" if lane else f"{workers} worker(s)"
        say(f"topics {run.prefix}*: starting {what} on {folder.name}")
        worker.start()
        worker.wait_ready()
        say("starting the gateway")
        gateway, http_port, grpc_port = _spawn_gateway(run)
        url = f"http://127.0.0.1:{http_port}"
        _wait_gateway(gateway, url, worker)
        how = "closed loop" if rate is None else f"open loop at {rate:g} req/s"
        say(f"{client} clients: {concurrency}, {how}, {duration_s:g} s each for HTTP and gRPC")
        keep = run.logs / f"bench-gateway-{run.suffix}"
        pids = {w.name: w.child.proc.pid for w in worker.workers if w.child is not None}
        pids["gateway"] = gateway.proc.pid
        result = _measure(url, f"127.0.0.1:{grpc_port}", load, tools, keep, pids)
        result["memory"] = _memory(worker, gateway)
    finally:
        _cleanup(run, worker, gateway)
    say("bare engine, batch 1, same texts")
    # the engine's best batch-1 latency: all cores (its default) and the workers' setting
    result["engine_batch1_p50_ms"] = round(
        min(engine_batch1_ms(folder, None), engine_batch1_ms(folder, threads)), 2
    )
    return result | {
        "concurrency": concurrency,
        "workers": 0 if lane else workers,
        "lane": lane,
        "mode": "closed" if rate is None else "open",
        "rate": rate,
        "duration_s": duration_s,
        "model": folder.name,
        "client": client,
        "clock": "hops from wall-clock epoch times of the gateway and the worker, one host",
    }
