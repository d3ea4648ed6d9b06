"""A worker without a champion waits with backoff, logs each try, and gives up after the limit."""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from stream_processors.model_wait import Backoff, wait_for_model
from ulasan.core.inference import ModelFolderError, ModelResolutionError
from ulasan.core.settings import PROJECT_ROOT


def test_backoff_doubles_up_to_its_ceiling_and_never_exceeds_the_wait() -> None:
    assert Backoff(0).delays() == []
    assert Backoff(100, initial_s=1, max_s=8).delays() == [1, 2, 4, *[8] * 11, 5]
    assert sum(Backoff(7.5, initial_s=1, max_s=30).delays()) == 7.5


class Registry:
    """A loader whose model appears after ``missing`` failed tries."""

    def __init__(self, missing: int, error: Exception | None = None) -> None:
        self.missing = missing
        self.calls = 0
        self.error = error or ModelResolutionError("no alias champion")

    def load(self) -> str:
        self.calls += 1
        if self.calls <= self.missing:
            raise self.error
        return "model"


def test_waits_until_the_model_appears_and_logs_each_try(
    caplog: pytest.LogCaptureFixture,
) -> None:
    registry, slept = Registry(missing=3), []
    with caplog.at_level(logging.INFO, logger="stream_processors.model_wait"):
        got = wait_for_model(
            registry.load, "models:/m@champion", Backoff(60, 1, 30), sleep=slept.append
        )
    assert got == "model" and registry.calls == 4
    assert slept == [1, 2, 4]
    tries = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert [r.args[2] for r in tries] == [1, 2, 3]  # type: ignore[index]
    assert all("no alias champion" in r.getMessage() for r in tries)
    assert "found after 4 tries" in caplog.records[-1].getMessage()


def test_gives_up_with_the_last_error_when_the_wait_is_over(
    caplog: pytest.LogCaptureFixture,
) -> None:
    registry, slept = Registry(missing=10**6), []
    with pytest.raises(ModelResolutionError, match="no alias"):
        wait_for_model(registry.load, "models:/m@champion", Backoff(10, 1, 4), sleep=slept.append)
    assert sum(slept) == 10 and registry.calls == len(slept) + 1
    assert "giving up" in caplog.records[-1].getMessage()


def test_zero_wait_is_one_try() -> None:
    registry = Registry(missing=1)
    with pytest.raises(ModelResolutionError):
        wait_for_model(registry.load, "x", Backoff(0), sleep=pytest.fail)
    assert registry.calls == 1


def test_a_broken_model_fails_at_once() -> None:
    registry = Registry(missing=1, error=ModelFolderError("model.onnx is truncated"))
    with pytest.raises(ModelFolderError):
        wait_for_model(registry.load, "x", Backoff(60), sleep=pytest.fail)
    assert registry.calls == 1


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_worker_started_alone_waits_for_the_registry_then_exits_2(tmp_path: Path) -> None:
    """The real ``ulasan worker`` against a registry that is down: it retries, logs, gives up."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ULASAN_", "MLFLOW_"))}
    env.update(
        ULASAN_STATE_DIR=str(tmp_path),
        ULASAN_MLFLOW__TRACKING_URI=f"http://127.0.0.1:{closed_port()}",
        ULASAN_WORKER__MODEL="models:/nobody@champion",
        ULASAN_WORKER__MODEL_WAIT_S="3",
        ULASAN_WORKER__MODEL_RETRY_INITIAL_S="0.5",
        ULASAN_METRICS_PORT="0",
        ULASAN_LOG_FORMAT="json",
        MLFLOW_HTTP_REQUEST_MAX_RETRIES="0",
        MLFLOW_HTTP_REQUEST_TIMEOUT="5",
    )
    done = subprocess.run(
        [sys.executable, "-m", "ulasan.cli", "worker"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    lines = [ln for ln in done.stderr.splitlines() if ln.startswith("{")]
    tries = [ln for ln in lines if "no model at models:/nobody@champion yet" in ln]
    assert len(tries) == 3, done.stderr  # 0.5 + 1 + 1.5 s of waiting: 4 tries, 3 retries
    assert any("giving up" in ln for ln in lines)
    assert "cannot load the model" in done.stdout
