"""``ulasan bench memory``: the peak resident memory of each ulasan process.

On a private database and private topics of the local stack (removed after), one after the
other:
- the worker(s) and the gateway serving the given model, after a warm-up of predictions over
  HTTP and gRPC (``ulasan worker``, ``ulasan gateway serve``), read while they run;
- the UI (``ulasan ui``) after a headless chromium (Debian's, through selenium) loaded its
  pages over HTTP (Streamlit runs a page's script only for a browser session);
- the trainer consumer idle (``ulasan trainer serve``, once it imported the training stack);
- a training to its end (``ulasan train -c CONFIG --no-register``; its ``wait4`` peak).

Peak RSS is ``VmHWM`` (see :mod:`ulasan.proc_memory`); each process also says whether PyTorch
is mapped into it (the serving processes must not load it).
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from ulasan.bench_gateway import (
    _cleanup,
    _GatewayRun,
    _memory,
    _spawn_gateway,
    _wait_gateway,
    _warm_up,
    _workers,
)
from ulasan.errors import BenchError
from ulasan.proc_memory import process_memory, waited_peak_mib
from ulasan.procs import Child, child_env, free_port, read_tail, spawn
from ulasan.sandbox import create_database, drop_database

Say = Callable[[str], None]
#: the UI pages loaded before the UI's memory is read ("" is the home page)
UI_PAGES = ("", "predict", "history", "analytics")
#: what ``ulasan trainer serve`` logs once the training stack (torch) is imported
TRAINER_READY = "training stack imported"


def _wait_log(child: Child, mark: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while mark not in child.log():
        if not child.alive():
            raise BenchError(f"{child.name} exited: {child.log(3000)}")
        if time.monotonic() > deadline:
            raise BenchError(f"{child.name} did not log {mark!r} in {timeout_s:.0f} s")
        time.sleep(0.5)


def _ui(run: _GatewayRun, gateway_url: str, say: Say) -> dict[str, Any]:
    """``ulasan ui`` on a free port, its pages loaded by chromium, then its memory."""
    from ui import browser  # noqa: PLC0415 - selenium, only for this measurement

    port = free_port()
    env = child_env(
        {
            **run.overrides(),
            "ULASAN_UI__GATEWAY_URL": gateway_url,
            "ULASAN_UI__TOPIC_PREFIX": run.prefix,
        }
    )
    log = run.logs / f"bench-memory-{run.suffix}-ui.log"
    child = Child("ui", spawn(["ui", "--port", str(port)], env=env, log_path=log), log)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            if not child.alive():
                raise BenchError(f"the UI exited: {child.log(3000)}")
            try:
                if httpx.get(url + "/_stcore/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise BenchError(f"the UI did not answer in 90 s; see {log}")
            time.sleep(0.5)
        say(f"loading {len(UI_PAGES)} UI pages in headless chromium")
        driver = browser.chrome(1280, 1600)
        try:
            for path in UI_PAGES:
                browser.open_page(driver, url, path, timeout_s=60)
        finally:
            driver.quit()
        return {**process_memory(child.proc.pid, tree=True), "pages": list(UI_PAGES)}
    finally:
        child.stop(20, 10)


def _trainer_idle(run: _GatewayRun, say: Say) -> dict[str, Any]:
    """``ulasan trainer serve`` on the run's topics and group, idle once warm."""
    overrides = {
        **run.overrides(),
        "ULASAN_RETRAIN__TOPIC_PREFIX": run.prefix,
        "ULASAN_RETRAIN__GROUP_ID": f"{run.app_id}-trainer",
    }
    log = run.logs / f"bench-memory-{run.suffix}-trainer.log"
    child = Child(
        "trainer", spawn(["trainer", "serve"], env=child_env(overrides), log_path=log), log
    )
    try:
        say("trainer consumer: waiting until it imported the training stack")
        _wait_log(child, TRAINER_READY, 600)
        time.sleep(2.0)  # idle: polling its topic
        return process_memory(child.proc.pid, tree=True)
    finally:
        child.stop(30, 10)


def _training(run: _GatewayRun, config: Path, say: Say, timeout_s: float = 1800) -> dict[str, Any]:
    """``ulasan train -c CONFIG --no-register`` to its end; its peak from ``wait4``."""
    log = run.logs / f"bench-memory-{run.suffix}-train.log"
    say(f"training with {config} (to its end)")
    with tempfile.TemporaryDirectory(prefix="ulasan-bench-train-") as out:
        args = ["train", "-c", str(config), "--no-register", "--output-dir", out]
        proc = spawn(args, env=child_env(run.overrides()), log_path=log)
        started = time.monotonic()
        watchdog = threading.Timer(timeout_s, lambda: os.killpg(proc.pid, 9))
        watchdog.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            watchdog.cancel()
        proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise BenchError(f"the training failed (exit {proc.returncode}): {read_tail(log, 3000)}")
    return {
        "peak_rss_mib": waited_peak_mib(usage),
        "seconds": round(time.monotonic() - started, 1),
        "config": str(config),
    }


def _live_processes(run: _GatewayRun, say: Say) -> dict[str, Any]:
    """Worker(s) and gateway up and warm, the UI on them, the trainer consumer idle on the
    run's topics (removed after); every one's memory."""
    worker = _workers(run)
    gateway: Child | None = None
    try:
        say(f"starting {run.workers} worker(s) on {run.folder.name} and the gateway")
        worker.start()
        worker.wait_ready()
        gateway, http_port, grpc_port = _spawn_gateway(run)
        url = f"http://127.0.0.1:{http_port}"
        _wait_gateway(gateway, url, worker)
        asyncio.run(_warm_up(url, f"127.0.0.1:{grpc_port}"))
        ui = _ui(run, url, say)
        trainer = _trainer_idle(run, say)
        return {**_memory(worker, gateway), "ui": ui, "trainer_idle": trainer}
    finally:
        _cleanup(run, worker, gateway)


def run_memory_bench(
    settings: Any,
    *,
    folder: Path,
    train_config: Path,
    workers: int = 1,
    threads: int | None = None,
    say: Say = lambda _: None,
) -> dict[str, Any]:
    """Peak RSS of each process (see the module docstring), on a private database."""
    if not train_config.is_file():
        raise BenchError(f"no training config at {train_config}: give --train-config")
    run = _GatewayRun(settings, folder, threads, workers, say)
    run.dbname = f"bench_mem_{run.suffix}"
    run.logs.mkdir(parents=True, exist_ok=True)
    pg = settings.postgres
    create_database(pg.dsn, run.dbname, f"postgresql://{pg.user}@{pg.host}:{pg.port}/{run.dbname}")
    try:
        processes = _live_processes(run, say)
        processes["training"] = _training(run, train_config, say)
    finally:
        try:
            drop_database(pg.dsn, run.dbname)
        except Exception as exc:  # noqa: BLE001 - cleanup must not hide the result or the error
            say(f"dropping {run.dbname} failed: {exc}")
    return {
        "model": folder.name,
        "workers": workers,
        "train_config": str(train_config),
        "warmup_requests_per_protocol": 60,
        "processes": processes,
    }
