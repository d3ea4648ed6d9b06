"""Fixtures of the stream integration tests (imported by the test_stream_* modules)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.stream_env import StreamEnv
from tests.helpers.tiny_serving import copy_serving_folder
from ulasan.core.settings import Settings


@pytest.fixture(name="stream_env")
def stream_env_fixture(tmp_path: Path) -> Iterator[StreamEnv]:
    """Own topics (unique prefix), own database on the shared PostgreSQL, a tiny model folder.

    Fails (never skips) when Kafka or PostgreSQL of the local stack do not answer.
    """
    env = StreamEnv(Settings(), copy_serving_folder(tmp_path / "model"), tmp_path)
    try:
        env.create()
    except Exception as exc:
        raise AssertionError(
            f"the local stack is not usable ({exc}); run `ulasan stack up`"
        ) from exc
    try:
        yield env
    finally:
        env.destroy()
