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
import os
import random
import signal
import statistics
import subprocess
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from ulasan.core.settings import Settings
from ulasan.errors import BenchError
from ulasan.pipeline_tools import (
    ULASAN_BIN,
    WorkerGroup,
    WorkerProcess,
    free_port,
    percentile,
    worker_env,
)

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
    from ulasan.core.inference import OnnxPredictor

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
    import grpc
    import httpx

    from producers.gateway.grpc_gen import ulasan_pb2 as pb
    from producers.gateway.grpc_gen import ulasan_pb2_grpc as pb_grpc

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
        parts: dict[str, list[float]] = {"queue_ms": [], "inference_ms": []}

        def http_call(client: httpx.AsyncClient) -> Call:
            async def call(text: str) -> None:
                resp = await client.post("/predict", json={"text": text})
                if resp.status_code != 200:
                    raise BenchError(f"HTTP {resp.status_code}: {resp.text[:200]}")
                prediction = resp.json()["prediction"]
                parts["queue_ms"].append(float(prediction["queue_ms"]))
                parts["inference_ms"].append(float(prediction["inference_ms"]))

            return call

        def grpc_call(stub: Any) -> Call:
            async def call(text: str) -> None:
                resp = await stub.Predict(pb.PredictRequest(text=text), timeout=10)
                parts["queue_ms"].append(resp.prediction.queue_ms)
                parts["inference_ms"].append(resp.prediction.inference_ms)

            return call

        async def measure(calls: list[Call]) -> dict[str, Any]:
            for i in range(WARMUP_REQUESTS):
                await calls[i % len(calls)](SHORT_REVIEWS[i % len(SHORT_REVIEWS)])
            for values in parts.values():
                values.clear()
            if rate is None:
                result = await _load(calls, duration_s)
            else:
                result = await _open_loop(calls, rate, duration_s)
            # where the time went (medians, from the replies): Kafka record time of the request
            # -> start of its batch in the worker, and the batch's inference time
            result["worker_queue_p50_ms"] = round(percentile(parts["queue_ms"], 50) or 0.0, 2)
            result["worker_inference_p50_ms"] = round(
                percentile(parts["inference_ms"], 50) or 0.0, 2
            )
            return result

        http = await measure([http_call(c) for c in https])
        grpc_result = await measure([grpc_call(s) for s in stubs])
    return {"http": http, "grpc": grpc_result}


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
    import httpx

    from ulasan.core.kafka_admin import admin_client

    suffix = uuid.uuid4().hex[:10]
    prefix, app_id = f"bench-gw-{suffix}.", f"ulasan-bench-gw-{suffix}"
    logs = settings.state_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    overrides = {
        "ULASAN_WORKER__TOPIC_PREFIX": prefix,
        "ULASAN_GATEWAY__TOPIC_PREFIX": prefix,
        "ULASAN_DRIFT__ENABLED": "false",
    }
    if threads is not None:
        overrides["ULASAN_WORKER__INTRA_OP_THREADS"] = str(threads)
    env = worker_env(overrides)
    worker = WorkerGroup(
        [
            WorkerProcess(
                ["--model", str(folder), "--metrics-port", "0", "--app-id", app_id],
                env,
                logs / f"bench-gateway-{suffix}-worker-{n}.log",
            )
            for n in range(workers)
        ]
    )
    http_port, grpc_port = free_port(), free_port()
    gateway_log = logs / f"bench-gateway-{suffix}-gateway.log"
    gateway: subprocess.Popen[bytes] | None = None
    try:
        say(f"topics {prefix}*: starting {workers} worker(s) on {folder.name}")
        worker.start()
        worker.wait_ready()
        say("starting the gateway")
        with gateway_log.open("wb") as log:
            gateway = subprocess.Popen(
                [
                    str(ULASAN_BIN),
                    "gateway",
                    "serve",
                    "--http-port",
                    str(http_port),
                    "--grpc-port",
                    str(grpc_port),
                    "--no-register",
                ],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        url = f"http://127.0.0.1:{http_port}"
        deadline = time.monotonic() + 120
        while True:
            worker.check_alive()
            if gateway.poll() is not None:
                raise BenchError(f"the gateway exited: {gateway_log.read_text()[-3000:]}")
            try:
                if httpx.get(url + "/ready", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise BenchError(f"the gateway was not ready in 120 s; see {gateway_log}")
            time.sleep(1)
        how = "closed loop" if rate is None else f"open loop at {rate:g} req/s"
        say(f"{concurrency} clients, {how}, {duration_s:g} s each for HTTP and gRPC")
        result = asyncio.run(
            _run_clients(url, f"127.0.0.1:{grpc_port}", concurrency, duration_s, rate)
        )
    finally:
        if gateway is not None and gateway.poll() is None:
            os.killpg(gateway.pid, signal.SIGTERM)
            try:
                gateway.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(gateway.pid, signal.SIGKILL)
        worker.stop()
        try:
            admin = admin_client(settings.kafka.bootstrap_servers)
            doomed = [
                t for t in admin.list_topics(timeout=10).topics if t.startswith((prefix, app_id))
            ]
            if doomed:
                for fut in admin.delete_topics(doomed, operation_timeout=30).values():
                    fut.result()
        except Exception as exc:  # noqa: BLE001 - cleanup must not hide the result or the error
            say(f"cleanup failed: {exc}")
    say("bare engine, batch 1, same texts")
    # the engine's best batch-1 latency: all cores (its default) and the workers' setting
    result["engine_batch1_p50_ms"] = round(
        min(engine_batch1_ms(folder, None), engine_batch1_ms(folder, threads)), 2
    )
    result["concurrency"] = concurrency
    result["workers"] = workers
    result["mode"] = "closed" if rate is None else "open"
    result["rate"] = rate
    result["duration_s"] = duration_s
    result["model"] = folder.name
    return result
