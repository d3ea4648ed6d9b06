"""The main job end to end: `ulasan run --once` trains a tiny champion, streams 200 reviews into
PostgreSQL, and a second run reuses the model and streams them again under a new run id."""

from __future__ import annotations

import contextlib
import os
import subprocess
import uuid

import psycopg
from mlflow.exceptions import MlflowException

from deploy.local.database import migrate
from ulasan.core.registry import client
from ulasan.core.settings import PROJECT_ROOT, Settings
from ulasan.procs import ULASAN_BIN
from ulasan.sandbox import create_database, delete_topics, drop_database

TABLES = ("reviews", "text_features", "prediction_logs")


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
