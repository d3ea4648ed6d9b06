"""``ulasan bench gateway``: HTTP /predict and gRPC Predict latency and requests/s from C
clients, beside the bare engine's batch-1 latency on the same model and texts.

Two load modes. *Closed loop* (no ``rate``): each client sends its next request when the
previous answer is in, so throughput = C / mean latency (Little's law) and the run finds the
saturation throughput. *Open loop* (``rate`` R): the C clients together offer R requests/s on
a fixed schedule (each every C/R s from a random phase, however many are still in flight) and
latency runs from the scheduled send time (no coordinated omission, as wrk2 and k6's
constant-arrival-rate); achieved requests/s falls below R when the system cannot keep up.

Each run gets its own topics (a unique prefix) and consumer group; one ``ulasan worker`` and one
``ulasan gateway serve`` run as subprocesses, the clients (asyncio: httpx and grpc.aio, one
connection each) run in this process. A warm-up (not measured) loads the model and fills the
caches first. The bare engine figure is ``OnnxPredictor.predict([text])`` on the same short
reviews, one at a time, with the worker's thread setting: tokenisation, the ONNX graph and the
softmax, nothing else.
"""

from __future__ import annotations

import asyncio
import contextlib
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

from ulasan.core.grpc_gen import ulasan_pb2 as pb
from ulasan.core.grpc_gen import ulasan_pb2_grpc as pb_grpc
from ulasan.core.settings import Settings
from ulasan.errors import BenchError
from ulasan.pipeline_tools import WorkerGroup, percentile, worker_group
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


async def _open_loop(
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
        """A warm-up (not measured), then the closed loop, or the open loop at ``rate``."""
        for i in range(WARMUP_REQUESTS):
            await calls[i % len(calls)](SHORT_REVIEWS[i % len(SHORT_REVIEWS)])
        for values in self.parts.values():
            values.clear()
        if rate is None:
            result = await _load(calls, duration_s)
        else:
            result = await _open_loop(calls, rate, duration_s)
        # where the time went (medians, from the replies): Kafka record time of the request
        # -> start of its batch in the worker, and the batch's inference time
        result["worker_queue_p50_ms"] = round(percentile(self.parts["queue_ms"], 50) or 0.0, 2)
        result["worker_inference_p50_ms"] = round(
            percentile(self.parts["inference_ms"], 50) or 0.0, 2
        )
        return result


async def _run_clients(
    http_url: str,
    grpc_target: str,
    concurrency: int,
    duration_s: float,
    rate: float | None = None,
) -> dict[str, Any]:
    """Both protocols, one after the other; each client has its own connection (an httpx
    client, which opens a second connection only while an open-loop request is still in
    flight, or a grpc.aio channel, which multiplexes in-flight requests)."""
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

    @property
    def prefix(self) -> str:
        return f"bench-gw-{self.suffix}."

    @property
    def app_id(self) -> str:
        return f"ulasan-bench-gw-{self.suffix}"

    @property
    def logs(self) -> Path:
        return self.settings.state_dir / "logs"

    def overrides(self) -> dict[str, str]:
        """The ``ULASAN_*`` settings of the worker and gateway processes."""
        overrides = {
            "ULASAN_WORKER__TOPIC_PREFIX": self.prefix,
            "ULASAN_GATEWAY__TOPIC_PREFIX": self.prefix,
            # /ready checks that this group holds the request partitions
            "ULASAN_GATEWAY__WORKER_GROUP": self.app_id,
            "ULASAN_DRIFT__ENABLED": "false",
        }
        if self.threads is not None:
            overrides["ULASAN_WORKER__INTRA_OP_THREADS"] = str(self.threads)
        return overrides


def _workers(run: _GatewayRun) -> WorkerGroup:
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


def run_gateway_bench(
    settings: Settings,
    *,
    folder: Path,
    concurrency: int,
    duration_s: float,
    rate: float | None = None,
    threads: int | None = None,
    workers: int = 1,
    say: Callable[[str], None] = lambda _: None,
) -> dict[str, Any]:
    """Measure the gateway on ``folder`` (a serving folder) with ``workers`` worker processes
    in one group (``threads`` ONNX Runtime threads each); see the module docstring."""
    run = _GatewayRun(settings, folder, threads, workers, say)
    run.logs.mkdir(parents=True, exist_ok=True)
    worker = _workers(run)
    gateway: Child | None = None
    try:
        say(f"topics {run.prefix}*: starting {workers} worker(s) on {folder.name}")
        worker.start()
        worker.wait_ready()
        say("starting the gateway")
        gateway, http_port, grpc_port = _spawn_gateway(run)
        url = f"http://127.0.0.1:{http_port}"
        _wait_gateway(gateway, url, worker)
        how = "closed loop" if rate is None else f"open loop at {rate:g} req/s"
        say(f"{concurrency} clients, {how}, {duration_s:g} s each for HTTP and gRPC")
        result = asyncio.run(
            _run_clients(url, f"127.0.0.1:{grpc_port}", concurrency, duration_s, rate)
        )
    finally:
        _cleanup(run, worker, gateway)
    say("bare engine, batch 1, same texts")
    # the engine's best batch-1 latency: all cores (its default) and the workers' setting
    result["engine_batch1_p50_ms"] = round(
        min(engine_batch1_ms(folder, None), engine_batch1_ms(folder, threads)), 2
    )
    return result | {
        "concurrency": concurrency,
        "workers": workers,
        "mode": "closed" if rate is None else "open",
        "rate": rate,
        "duration_s": duration_s,
        "model": folder.name,
    }
