"""``ulasan bench gateway``: HTTP /predict and gRPC Predict latency and requests/s under C
concurrent clients, beside the bare engine's batch-1 latency on the same model and texts.

Each run gets its own topics (a unique prefix) and consumer group; one ``ulasan worker`` and one
``ulasan gateway serve`` run as subprocesses, the clients (asyncio: httpx and grpc.aio, one
connection each) run in this process. Latency is measured at the client: request sent to answer
parsed. A warm-up (not measured) loads the model and fills the caches first. The bare engine
figure is ``OnnxPredictor.predict([text])`` on the same short reviews, one at a time, with the
worker's thread setting: tokenisation, the ONNX graph and the softmax, nothing else.
"""

from __future__ import annotations

import asyncio
import os
import signal
import statistics
import subprocess
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from ulasan.errors import BenchError
from ulasan.pipeline_tools import ULASAN_BIN, WorkerProcess, free_port, percentile, worker_env
from ulasan.settings import Settings

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
    from stream_processors.inference import OnnxPredictor

    predictor = OnnxPredictor.from_folder(folder, intra_op_threads=threads)
    for text in SHORT_REVIEWS:
        predictor.predict([text])
    times = []
    for i in range(n):
        started = time.perf_counter()
        predictor.predict([SHORT_REVIEWS[i % len(SHORT_REVIEWS)]])
        times.append((time.perf_counter() - started) * 1000.0)
    return statistics.median(times)


async def _load(
    call: Callable[[str], Awaitable[None]], concurrency: int, duration_s: float
) -> dict[str, Any]:
    """``concurrency`` closed-loop clients calling for ``duration_s``; latencies of successes."""
    latencies: list[float] = []
    errors: dict[str, int] = {}
    stop_at = time.perf_counter() + duration_s

    async def client(k: int) -> None:
        i = k
        while time.perf_counter() < stop_at:
            text = SHORT_REVIEWS[i % len(SHORT_REVIEWS)]
            i += concurrency
            started = time.perf_counter()
            try:
                await call(text)
            except Exception as exc:  # counted and reported: the run goes on
                errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
                continue
            latencies.append((time.perf_counter() - started) * 1000.0)

    began = time.perf_counter()
    await asyncio.gather(*(client(k) for k in range(concurrency)))
    elapsed = time.perf_counter() - began
    return {
        "requests": len(latencies),
        "errors": errors,
        "rps": round(len(latencies) / elapsed, 1),
        "p50_ms": round(percentile(latencies, 50) or 0.0, 2),
        "p95_ms": round(percentile(latencies, 95) or 0.0, 2),
        "p99_ms": round(percentile(latencies, 99) or 0.0, 2),
    }


async def _run_clients(
    http_url: str, grpc_target: str, concurrency: int, duration_s: float
) -> dict[str, Any]:
    import grpc
    import httpx

    from producers.gateway.grpc_gen import ulasan_pb2 as pb
    from producers.gateway.grpc_gen import ulasan_pb2_grpc as pb_grpc

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with (
        httpx.AsyncClient(base_url=http_url, timeout=10, limits=limits) as client,
        grpc.aio.insecure_channel(grpc_target) as channel,
    ):
        stub = pb_grpc.GatewayStub(channel)  # type: ignore[no-untyped-call]
        parts: dict[str, list[float]] = {"queue_ms": [], "inference_ms": []}

        async def http_call(text: str) -> None:
            resp = await client.post("/predict", json={"text": text})
            if resp.status_code != 200:
                raise BenchError(f"HTTP {resp.status_code}: {resp.text[:200]}")
            prediction = resp.json()["prediction"]
            for key, values in parts.items():
                values.append(float(prediction[key]))

        async def grpc_call(text: str) -> None:
            await stub.Predict(pb.PredictRequest(text=text), timeout=10)

        for i in range(WARMUP_REQUESTS):
            await http_call(SHORT_REVIEWS[i % len(SHORT_REVIEWS)])
            await grpc_call(SHORT_REVIEWS[i % len(SHORT_REVIEWS)])
        for values in parts.values():
            values.clear()
        http = await _load(http_call, concurrency, duration_s)
        # where the time went (medians, from the replies): Kafka record time -> batch start
        # in the worker, and the batch's inference (shared by the requests batched together)
        http["worker_queue_p50_ms"] = round(percentile(parts["queue_ms"], 50) or 0.0, 2)
        http["worker_inference_p50_ms"] = round(percentile(parts["inference_ms"], 50) or 0.0, 2)
        grpc_result = await _load(grpc_call, concurrency, duration_s)
    return {"http": http, "grpc": grpc_result}


def run_gateway_bench(
    settings: Settings,
    *,
    folder: Path,
    concurrency: int,
    duration_s: float,
    threads: int | None = None,
    say: Callable[[str], None] = lambda _: None,
) -> dict[str, Any]:
    """Measure the gateway on ``folder`` (a serving folder); see the module docstring."""
    import httpx

    from deploy.local.kafka import admin_client

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
    worker = WorkerProcess(
        ["--model", str(folder), "--metrics-port", "0", "--app-id", app_id],
        env,
        logs / f"bench-gateway-{suffix}-worker.log",
    )
    http_port, grpc_port = free_port(), free_port()
    gateway_log = logs / f"bench-gateway-{suffix}-gateway.log"
    gateway: subprocess.Popen[bytes] | None = None
    try:
        say(f"topics {prefix}*: starting a worker on {folder.name}")
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
        say(f"{concurrency} clients, {duration_s:g} s each for HTTP and gRPC")
        result = asyncio.run(_run_clients(url, f"127.0.0.1:{grpc_port}", concurrency, duration_s))
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
    result["engine_batch1_p50_ms"] = round(engine_batch1_ms(folder, threads), 2)
    result["concurrency"] = concurrency
    result["duration_s"] = duration_s
    result["model"] = folder.name
    return result
