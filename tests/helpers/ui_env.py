"""The live stack for UI tests: a StreamEnv's worker and gateway, optionally ``ulasan ui``."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg

from tests.helpers.gateway_env import GatewayProcess, start_gateway
from tests.helpers.stream_env import StreamEnv, wait_until
from tests.helpers.tiny_serving import copy_serving_folder
from tests.integration.conftest import delete_topics
from ulasan.core.settings import Settings
from ulasan.procs import Child, free_port, spawn


@dataclass
class Live:
    env: StreamEnv
    gateway: GatewayProcess

    def ui_env(self, **extra: str) -> dict[str, str]:
        """The environment a UI process (or an in-process AppTest) needs for this stack."""
        return self.env.env(
            ULASAN_UI__GATEWAY_URL=self.gateway.url,
            ULASAN_UI__TOPIC_PREFIX=self.env.prefix,
            **extra,
        )


@contextmanager
def live_stack(workdir: Path, reviews: int = 0) -> Iterator[Live]:
    """A worker and a gateway on private topics and a private database, with ``reviews`` test
    reviews streamed into it first. The worker runs its closed-loop agents (they store the
    feedback the UI's labels publish) with the production windows: no retrain starts."""
    env = StreamEnv(Settings(), copy_serving_folder(workdir / "model"), workdir, partitions=2)
    try:
        env.create()
    except Exception as exc:
        raise AssertionError(
            f"the local stack is not usable ({exc}); run `ulasan stack up`"
        ) from exc
    gw = None
    try:
        worker = env.start_worker("w1")
        env.wait_assigned(worker)
        gw = start_gateway(env, "ui")
        gw.wait_ready()
        if reviews:
            env.produce_reviews(0, reviews)
            env.wait_rows(reviews, timeout_s=120)
        yield Live(env, gw)
    finally:
        if gw is not None:
            gw.stop()
        env.destroy()
        delete_topics(env.bootstrap, [], prefix=env.prefix)


@contextmanager
def ui_process(live: Live, workdir: Path) -> Iterator[str]:
    """``ulasan ui --port N`` on this stack; yields its base URL."""
    port = free_port()
    log = workdir / "ui.log"
    proc = spawn(["ui", "--port", str(port)], env=live.ui_env(), log_path=log, cwd=workdir)
    child = Child("ui", proc, log)
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        if not child.alive():
            raise AssertionError(f"the UI exited:\n{child.log(4000)}")
        try:
            return httpx.get(f"{url}/_stcore/health", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_until(up, 60, "the UI to answer /_stcore/health")
        yield url
    finally:
        child.stop(10, 5)


def feedback_rows(env: StreamEnv, review_id: str) -> list[tuple[str, str]]:
    with psycopg.connect(env.dsn) as conn:
        return [
            (r[0], r[1])
            for r in conn.execute(
                "SELECT label, source FROM feedback WHERE review_id = %s", (review_id,)
            )
        ]
