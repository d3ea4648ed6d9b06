"""The main job end to end: `ulasan run --once` trains a tiny champion, streams 200 reviews into
PostgreSQL, and a second run reuses the model and streams them again under a new run id; the
full `ulasan run` supervises workers, the requests lane, gateway and trainer, restarts a killed
gateway, and leaves no process behind on SIGTERM."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import httpx
import psycopg
from mlflow.exceptions import MlflowException

from deploy.local.database import migrate
from tests.helpers.tiny_serving import copy_serving_folder
from ulasan.core.registry import client
from ulasan.core.settings import PROJECT_ROOT, Settings
from ulasan.procs import ULASAN_BIN
from ulasan.sandbox import create_database, delete_topics, drop_database

TABLES = ("reviews", "text_features", "prediction_logs")
T = TypeVar("T")


def counts(dsn: str) -> dict[str, int]:
    with psycopg.connect(dsn) as conn:
        return {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES}


def test_main_job_once_with_a_tiny_model(tmp_path):
    settings = Settings()
    suffix = uuid.uuid4().hex[:10]
    dbname, prefix, model_name = f"e2e_{suffix}", f"e2e-{suffix}.", f"ulasan-e2e-{suffix}"
    app_id = f"ulasan-e2e-{suffix}"
    pg = settings.postgres
    admin_dsn = pg.dsn
    dsn = f"postgresql://{pg.user}@{pg.host}:{pg.port}/{dbname}"
    create_database(admin_dsn, dbname)
    small = tmp_path / "prdect-200.csv"
    lines = (PROJECT_ROOT / "data/prdect_id/prdect_id.csv").read_text("utf-8").splitlines(True)
    small.write_text("".join(lines[:201]), encoding="utf-8")
    env = {
        **os.environ,
        "ULASAN_POSTGRES__DBNAME": dbname,
        "ULASAN_MLFLOW__REGISTERED_MODEL": model_name,
        "PYTHONUNBUFFERED": "1",
        "COLUMNS": "200",
    }
    cmd = [
        str(ULASAN_BIN),
        "run",
        "--once",
        "--file",
        str(small),
        "--preset",
        "prdect",
        "--train-config",
        str(PROJECT_ROOT / "configs" / "tiny.yaml"),
        "--topic-prefix",
        prefix,
        "--app-id",
        app_id,
    ]
    try:
        migrate(dsn)
        first = subprocess.run(
            cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=1200
        )
        out = first.stdout + first.stderr
        assert first.returncode == 0, out[-6000:]
        assert "has no champion yet: training one" in out
        assert f"trained and promoted {model_name} version 1" in out
        assert "reviews 200, text_features 200, prediction_logs 200" in out
        assert counts(dsn) == {t: 200 for t in TABLES}
        with psycopg.connect(dsn) as conn:
            labels = dict(
                conn.execute("SELECT label, count(*) FROM prediction_logs GROUP BY label")
            )
            ratings = conn.execute("SELECT count(*) FROM reviews WHERE rating IS NULL").fetchone()
        assert sum(labels.values()) == 200 and set(labels) <= {"negative", "neutral", "positive"}
        assert ratings[0] == 0  # the star ratings were kept

        second = subprocess.run(
            cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=1200
        )
        out = second.stdout + second.stderr
        assert second.returncode == 0, out[-6000:]
        assert "champion is version 1 (reused)" in out
        assert "training one" not in out
        assert counts(dsn) == {t: 400 for t in TABLES}  # the same file, a new run id
    finally:
        drop_database(admin_dsn, dbname)
        delete_topics(settings.kafka.bootstrap_servers, (prefix, app_id))
        with contextlib.suppress(MlflowException):  # already gone is fine
            client(settings).delete_registered_model(model_name)


def _wait(check: Callable[[], T], timeout_s: float, what: str, log: Path) -> T:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(
        f"timed out waiting for {what}; the run's output:\n{log.read_text()[-6000:]}"
    )


def _children() -> dict[int, tuple[int, str]]:
    """Every process: pid -> (parent pid, command line)."""
    out = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (FileNotFoundError, ProcessLookupError):
            continue
        out[int(entry.name)] = (int(stat[1]), cmdline)
    return out


def _descendants(root: int) -> dict[int, str]:
    procs = _children()
    found: dict[int, str] = {}
    frontier = [root]
    while frontier:
        parent = frontier.pop()
        for pid, (ppid, cmdline) in procs.items():
            if ppid == parent and pid not in found:
                found[pid] = cmdline
                frontier.append(pid)
    return found


def _answers(url: str) -> bool:
    try:
        return httpx.get(f"{url}/health", timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def test_run_supervises_every_process_and_sigterm_leaves_none(tmp_path: Path) -> None:
    settings = Settings()
    suffix = uuid.uuid4().hex[:10]
    dbname, prefix, app_id = f"e2e_{suffix}", f"e2e-{suffix}.", f"ulasan-e2e-{suffix}"
    pg = settings.postgres
    admin_dsn = pg.dsn
    dsn = f"postgresql://{pg.user}@{pg.host}:{pg.port}/{dbname}"
    create_database(admin_dsn, dbname)
    small = tmp_path / "prdect-60.csv"
    lines = (PROJECT_ROOT / "data/prdect_id/prdect_id.csv").read_text("utf-8").splitlines(True)
    small.write_text("".join(lines[:61]), encoding="utf-8")
    model = copy_serving_folder(tmp_path / "model")
    env = {
        **os.environ,
        "ULASAN_POSTGRES__DBNAME": dbname,
        "ULASAN_MLFLOW__REGISTERED_MODEL": f"ulasan-e2e-{suffix}",
        "PYTHONUNBUFFERED": "1",
        "COLUMNS": "200",
    }
    cmd = [str(ULASAN_BIN), "run", "--no-stack", "--model", str(model), "--file", str(small)]
    cmd += ["--preset", "prdect", "--topic-prefix", prefix, "--app-id", app_id, "--workers", "1"]
    log = tmp_path / "run.log"
    seen: dict[int, str] = {}
    migrate(dsn)
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, env=env, cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT)
    try:
        _wait(lambda: "serving:" in log.read_text(), 600, "the replay and the summary", log)
        text = log.read_text()
        assert "reviews 60, text_features 60, prediction_logs 60" in text
        assert "profile demo: drift window 20s (production 3600s)" in text
        assert re.search(r"^ui  \S", text, re.M), text[-3000:]
        url = re.search(r"^http docs  (http://127\.0\.0\.1:\d+)/docs", text, re.M)
        assert url is not None, text[-3000:]
        base = url[1]
        answer = httpx.post(f"{base}/predict", json={"text": "barang bagus"}, timeout=30)
        assert answer.status_code == 200, answer.text

        seen.update(_descendants(proc.pid))
        roles = {
            role: [pid for pid, cmdline in seen.items() if role in cmdline]
            for role in ("gateway serve", "trainer serve", "--lane reviews", "--lane requests")
        }
        # one review worker (--workers 1) and the gateway's requests lane beside it
        assert all(len(pids) == 1 for pids in roles.values()), seen
        # a gateway that dies is reported and started again
        os.killpg(roles["gateway serve"][0], signal.SIGKILL)
        _wait(lambda: "gateway: restarted (1 of 3)" in log.read_text(), 60, "the restart", log)
        assert "gateway: exited with code -9" in log.read_text()
        _wait(lambda: _answers(base), 120, "the restarted gateway", log)
        seen.update(_descendants(proc.pid))

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=180) == 0, log.read_text()[-6000:]
        survivors = {pid: cmdline for pid, cmdline in seen.items() if _alive(pid)}
        assert survivors == {}, log.read_text()[-3000:]
        assert "stopping" in log.read_text() and "stopped: worker-0" in log.read_text()
        assert "requests-lane (0)" in log.read_text()  # the lane left cleanly too
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for pid in seen:
            if _alive(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        drop_database(admin_dsn, dbname)
        delete_topics(settings.kafka.bootstrap_servers, (prefix, app_id))
