"""``ulasan scenario domain-shift``: the closed loop, end to end, with no human action.

A champion trained on SmSA only serves a stream of PRDECT-ID product reviews (a domain it has
not seen) with rating-derived feedback. The worker reports drift, a trigger fires, the trainer
consumer retrains on the new labelled reviews, the gate promotes, the worker hot-reloads, and
later reviews are scored by the new version. Everything runs in an isolated corner of the
local stack: its own topic prefix, database, registered model name and state folder.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from ulasan.core.settings import PROJECT_ROOT, Settings

app = typer.Typer(help="End-to-end scenarios of the closed loop.", no_args_is_help=True)
ULASAN = Path(sys.executable).parent / "ulasan"


@dataclass
class ScenarioConfig:
    """Knobs of one run (the CI test uses the tiny model and a few hundred reviews)."""

    train_config: Path = PROJECT_ROOT / "configs" / "ulasan-mini.yaml"
    #: dotted config keys for both trainings (the SmSA champion and the retrain)
    train_overrides: dict[str, Any] = field(default_factory=dict)
    #: dotted config keys for the retrain only (on top of ``train_overrides``)
    retrain_overrides: dict[str, Any] = field(default_factory=dict)
    #: the trainer consumer's own knobs (``RetrainConfig`` fields, e.g. ``labelled_weight``)
    retrain_settings: dict[str, Any] = field(default_factory=dict)
    reviews: int | None = None  # PRDECT-ID rows streamed (None = all)
    first_share: float = 0.7  # streamed before the retrain; the rest after the promotion
    window_s: float = 20.0
    min_events: int = 100
    holdout_share: float = 0.2
    #: the retrain gate compares on SmSA valid + the stream hold-out: no loss allowed there
    gate_tolerance: float = 0.0
    timeout_s: float = 1800.0
    rate: float = 300.0  # reviews per second
    keep: bool = False  # keep the database, topics and registered model afterwards
    #: reuse the SmSA champion of an earlier MLflow run (its ``serving/`` artifact, trained
    #: with ``train_config`` + ``train_overrides`` on SmSA) instead of training one now
    champion_run: str | None = None
    #: the champion has not seen the stream's domain at all: where the config pre-trains on
    #: every unlabelled corpus (``pretrain_corpus: train``, which holds PRDECT-ID's texts, the
    #: scored hold-out's among them), it pre-trains without PRDECT-ID (``no-prdect``)
    champion_unseen_domain: bool = True


def _json_object(value: str, option: str) -> dict[str, Any]:
    """The JSON object an option carries; a clear usage error for anything else."""
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError as exc:
        raise typer.BadParameter(f"not valid JSON: {exc}", param_hint=option) from exc
    if not isinstance(parsed, dict):
        raise typer.BadParameter(
            f"must be a JSON object, got {type(parsed).__name__}", param_hint=option
        )
    return parsed


def _wait(check: Callable[[], Any], timeout_s: float, what: str, procs: list[Any]) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for name, proc, log in procs:
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited ({proc.returncode}):\n{_tail(log)}")
        value = check()
        if value:
            return value
        time.sleep(1.0)
    logs = "\n".join(f"--- {n}\n{_tail(log)}" for n, _, log in procs)
    raise TimeoutError(f"timed out after {timeout_s:.0f}s waiting for {what}\n{logs}")


def _tail(path: Path, n: int = 4000) -> str:
    return path.read_text(errors="replace")[-n:] if path.exists() else ""


def run(settings: Settings, cfg: ScenarioConfig, console: Console | None = None) -> dict[str, Any]:
    """Run the scenario; the result dict (``macro_f1_before``, ``macro_f1_after``,
    ``loop_seconds``, ``promoted_version`` and details). Raises on a timeout or a dead process."""
    import psycopg
    from confluent_kafka import Producer

    from deploy.local.database import migrate
    from schemas import topics
    from schemas.codec import encode
    from schemas.events import LabelFeedback, ReviewReceived
    from trainer.data import load_prdect
    from trainer.evaluate import evaluate_model
    from trainer.pipeline import run_training
    from trainer.retrain.split import holdout
    from ulasan.core.kafka_admin import ensure_topics

    console = console or Console(stderr=True)
    tag = uuid.uuid4().hex[:10]
    prefix, dbname, model = f"scn{tag}.", f"scenario_{tag}", f"ulasan-scenario-{tag}"
    workdir = settings.state_dir / "scenario" / tag
    workdir.mkdir(parents=True, exist_ok=True)
    pg = settings.postgres
    admin = pg.dsn
    dsn = pg.model_copy(update={"dbname": dbname}).dsn
    scoped = settings.model_copy(
        update={
            "postgres": pg.model_copy(update={"dbname": dbname}),
            "mlflow": settings.mlflow.model_copy(update={"registered_model": model}),
            "state_dir": workdir / "state",
        }
    )
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{dbname}"')
    migrate(dsn)
    procs: list[Any] = []
    try:
        rows = [e for e in load_prdect() if e.label is not None and e.text.strip()]
        if cfg.reviews is not None:
            rows = rows[: cfg.reviews]
        held = [(e.text, str(e.label)) for e in rows if holdout(str(e.id), cfg.holdout_share)]

        env = {k: v for k, v in os.environ.items() if not k.startswith("ULASAN_")}
        env.update(
            {
                "ULASAN_KAFKA__BOOTSTRAP_SERVERS": settings.kafka.bootstrap_servers,
                "ULASAN_POSTGRES__HOST": pg.host,
                "ULASAN_POSTGRES__PORT": str(pg.port),
                "ULASAN_POSTGRES__USER": pg.user,
                "ULASAN_POSTGRES__DBNAME": dbname,
                "ULASAN_MLFLOW__TRACKING_URI": settings.mlflow.uri,
                "ULASAN_MLFLOW__REGISTERED_MODEL": model,
                "ULASAN_STATE_DIR": str(workdir / "state"),
                "PYTHONUNBUFFERED": "1",
            }
        )
        if pg.password:
            env["ULASAN_POSTGRES__PASSWORD"] = pg.password
        worker_env = env | {
            "ULASAN_WORKER__APP_ID": f"scenario-{tag}",
            "ULASAN_WORKER__TOPIC_PREFIX": prefix,
            "ULASAN_WORKER__MODEL": f"models:/{model}@champion",
            "ULASAN_WORKER__INTRA_OP_THREADS": "1",
            "ULASAN_DRIFT__WINDOW_S": str(cfg.window_s),
            "ULASAN_DRIFT__GRACE_S": "2",
            "ULASAN_DRIFT__MIN_EVENTS": str(cfg.min_events),
            "ULASAN_DRIFT__FEEDBACK_RECONCILE_S": "2",
            "ULASAN_TRIGGERS__FEEDBACK_MIN": str(min(100, cfg.min_events)),
            "ULASAN_TRIGGERS__COOLDOWN_S": str(max(600.0, cfg.timeout_s)),
        }
        trainer_env = env | {
            **{
                f"ULASAN_RETRAIN__{key.upper()}": value
                if isinstance(value, str)
                else json.dumps(value)
                for key, value in cfg.retrain_settings.items()
            },
            "ULASAN_RETRAIN__TOPIC_PREFIX": prefix,
            "ULASAN_RETRAIN__GROUP_ID": f"scenario-trainer-{tag}",
            "ULASAN_RETRAIN__CONFIG": str(cfg.train_config),
            "ULASAN_RETRAIN__HOLDOUT_SHARE": str(cfg.holdout_share),
            "ULASAN_RETRAIN__LOGS_DIR": str(workdir / "retraining"),
            "ULASAN_RETRAIN__OVERRIDES": json.dumps(
                {
                    **cfg.train_overrides,
                    "gate.tolerance": cfg.gate_tolerance,
                    **cfg.retrain_overrides,
                }
            ),
        }
        # topics first: a consumer subscribed to a missing topic only sees it after its next
        # metadata refresh (minutes); the worker's own outputs are created by the worker
        ensure_topics(
            settings.kafka.bootstrap_servers,
            [prefix + t for t in (topics.RETRAIN_REQUESTS, topics.MODEL_UPDATES)],
            1,
            settings.kafka.replication_factor,
        )

        def start(name: str, cmd: list[str], penv: dict[str, str]) -> None:
            log = workdir / f"{name}.log"
            with log.open("wb") as fh:
                proc = subprocess.Popen(  # noqa: S603 - our own entry point
                    cmd, env=penv, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True
                )
            procs.append((name, proc, log))

        # the trainer only waits for requests: it starts (and imports) while the champion trains
        start("trainer", [str(ULASAN), "trainer", "serve"], trainer_env)

        base = champion_config(cfg)
        if cfg.champion_run:
            console.rule(f"champion: the SmSA model of run {cfg.champion_run}")
            v1 = register_champion_run(scoped, cfg.champion_run, base, workdir / "champion")
            champion_run = cfg.champion_run
        else:
            console.rule("champion: trained on SmSA only")
            champion = run_training(base, scoped, console=console, progress=False)
            if not (champion.gate or {}).get("promoted"):
                raise RuntimeError(f"the SmSA champion was not promoted: {champion.gate}")
            v1 = str(champion.model_version)
            champion_run = str(champion.run_id)
        console.print(f"champion: version {v1} of run {champion_run} (reuse: --champion-run)")
        start("worker", [str(ULASAN), "worker", "--metrics-port", "0"], worker_env)

        def query(sql: str, *args: Any) -> Any:
            with psycopg.connect(dsn, connect_timeout=5) as conn:
                return conn.execute(sql, args).fetchone()

        producer = Producer({"bootstrap.servers": settings.kafka.bootstrap_servers, "acks": "all"})

        def stream(batch: list[Any]) -> None:
            for i, e in enumerate(batch):
                rid = str(e.id)
                review = ReviewReceived(
                    review_id=rid, source="prdect", text=e.text, rating=e.rating
                )
                producer.produce(
                    prefix + topics.REVIEWS_RAW, key=rid.encode(), value=encode(review)
                )
                fb = LabelFeedback(
                    feedback_id=f"rating:{rid}", review_id=rid, label=e.label, source="rating"
                )
                producer.produce(prefix + topics.FEEDBACK, key=rid.encode(), value=encode(fb))
                if i % 100 == 99:
                    producer.flush(30)
                    time.sleep(100 / cfg.rate)
            if producer.flush(60) != 0:
                raise RuntimeError("reviews were not delivered to Kafka")

        # the worker must serve before reviews come (it creates the topics)
        _wait(
            lambda: "Ready" in _tail(workdir / "worker.log", 1_000_000),
            300,
            "the worker to start",
            procs,
        )
        cut = int(len(rows) * cfg.first_share)
        # drift windows are aligned to multiples of window_s (epoch seconds): start just after
        # a boundary, so the first window holds the whole pre-retrain stream; from a random
        # phase the trigger fired part-way through it (the retrain saw 1,844 to 3,779 reviews)
        time.sleep(-time.time() % cfg.window_s + 0.2)
        console.rule(f"streaming {cut} PRDECT-ID reviews with rating feedback")
        started = time.time()
        stream(rows[:cut])
        run_row = _wait(
            lambda: query(
                "SELECT run_id, status, promoted_version, decision, scores, data_sizes, reasons "
                "FROM retrain_runs "
                "WHERE status <> 'running' ORDER BY finished_at LIMIT 1"
            ),
            cfg.timeout_s,
            "a retraining run to finish",
            procs,
        )
        if run_row[2] is None:
            raise RuntimeError(f"the retraining run was not promoted: {run_row}")
        v2 = str(run_row[2])
        console.rule(f"version {v2} promoted; streaming the other {len(rows) - cut} reviews")
        stream(rows[cut:])
        _wait(
            lambda: query(
                "SELECT count(*) FROM prediction_logs WHERE model_version = %s AND NOT shadow "
                "HAVING count(*) > 0",
                v2,
            ),
            cfg.timeout_s,
            f"reviews scored by version {v2}",
            procs,
        )
        first_drift = query("SELECT min(created_at) FROM drift_reports WHERE drifted")[0]
        any_report = query("SELECT min(created_at), count(*) FROM drift_reports")
        first_served = query(
            'SELECT min("timestamp") FROM prediction_logs WHERE model_version = %s AND NOT shadow',
            v2,
        )[0]
        reference = first_drift or any_report[0]
        loop_seconds = (
            (first_served - reference).total_seconds() if reference and first_served else None
        )
        before = evaluate_model(f"models:/{model}/{v1}", held, scoped)
        after = evaluate_model(f"models:/{model}/{v2}", held, scoped)
        served = query(
            "SELECT count(*) FROM prediction_logs WHERE model_version = %s AND NOT shadow", v2
        )[0]
        return {
            "macro_f1_before": before["macro_f1"],
            "macro_f1_after": after["macro_f1"],
            "loop_seconds": loop_seconds,
            "promoted_version": v2,
            "per_class_before": before["per_class"],
            "per_class_after": after["per_class"],
            "champion_version": v1,
            "champion_run": champion_run,
            "holdout_reviews": len(held),
            "streamed_reviews": len(rows),
            "drift_reports": int(any_report[1]),
            "first_drift_report_at": str(first_drift) if first_drift else None,
            "served_by_promoted": int(served),
            "retrain_run": {
                "run_id": run_row[0],
                "status": run_row[1],
                "decision": run_row[3],
                "scores": run_row[4],
                "data_sizes": run_row[5],
                "reasons": list(run_row[6]),
            },
            "wall_seconds": time.time() - started,
            "finished_at": datetime.now(UTC).isoformat(),
            "workdir": str(workdir),
        }
    finally:
        for _, proc, _ in procs:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    proc.kill()
        if not cfg.keep:
            _cleanup(settings, admin, dbname, prefix, model)


def champion_config(cfg: ScenarioConfig) -> Any:
    """The SmSA champion's training config: ``train_config`` + ``train_overrides`` on SmSA,
    pre-trained without PRDECT-ID's texts when ``champion_unseen_domain``."""
    from trainer.config import load_config

    config = load_config(cfg.train_config).with_overrides({**cfg.train_overrides, "data": "smsa"})
    if cfg.champion_unseen_domain and config.pretrain_corpus == "train":
        config = config.with_overrides({"pretrain_corpus": "no-prdect"})
    return config


def register_champion_run(settings: Settings, run_id: str, config: Any, dest: Path) -> str:
    """Register an earlier run's ``serving/`` artifact as the scenario model's champion (no
    training): its scores on the fixed set come from the run's ``reports/``, its training-data
    hash is recomputed from ``config`` (the SmSA data it was trained on). The version."""
    from trainer.pipeline import EVAL_SET_NAME, load_training_data
    from trainer.registry import (
        EvalScores,
        dataset_hash,
        register_candidate,
        set_alias,
    )
    from ulasan.core.registry import CHAMPION, SERVING_ARTIFACT, client

    mc = client(settings)
    dest.mkdir(parents=True, exist_ok=True)
    try:
        serving = Path(mc.download_artifacts(run_id, SERVING_ARTIFACT, str(dest)))
        report_path = Path(
            mc.download_artifacts(run_id, f"reports/{EVAL_SET_NAME}.json", str(dest))
        )
    except Exception as exc:
        raise RuntimeError(
            f"run {run_id} has no {SERVING_ARTIFACT}/ or reports/{EVAL_SET_NAME}.json artifact "
            f"at {settings.mlflow.uri}: {exc} (give the run id of an `ulasan train` run)"
        ) from exc
    data = load_training_data(config, settings)
    eval_hash = dataset_hash([(e.text, str(e.label)) for e in data.valid])
    report = json.loads(report_path.read_text(encoding="utf-8"))
    version = register_candidate(
        settings,
        run_id,
        serving,
        train_dataset_hash=dataset_hash(data.train),
        scores=EvalScores.from_report(report, dataset_hash=eval_hash, name=EVAL_SET_NAME),
        extra_tags={"ulasan.scenario.reused_run": run_id},
    )
    set_alias(settings, CHAMPION, version.version)
    return version.version


def _cleanup(settings: Settings, admin: str, dbname: str, prefix: str, model: str) -> None:
    import psycopg
    from confluent_kafka.admin import AdminClient

    try:
        with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
        ka = AdminClient({"bootstrap.servers": settings.kafka.bootstrap_servers})
        doomed = [t for t in ka.list_topics(timeout=10).topics if t.startswith(prefix)]
        doomed += [
            t for t in ka.list_topics(timeout=10).topics if t.startswith(f"scenario-{prefix[3:-1]}")
        ]
        if doomed:
            for fut in ka.delete_topics(doomed, operation_timeout=30).values():
                fut.result()
        from mlflow import MlflowClient

        MlflowClient(settings.mlflow.uri, settings.mlflow.uri).delete_registered_model(model)
    except Exception as exc:  # noqa: BLE001 - cleanup must not hide the result
        print(f"scenario cleanup incomplete: {exc}", file=sys.stderr)


@app.command("domain-shift")
def domain_shift(
    config: Path = typer.Option(
        PROJECT_ROOT / "configs" / "ulasan-mini.yaml", "--config", help="training config"
    ),
    reviews: int | None = typer.Option(None, "--reviews", min=50, help="PRDECT-ID rows (all)"),
    window_s: float = typer.Option(
        20.0, "--window", help="drift window seconds (the first covers the pre-retrain stream)"
    ),
    min_events: int = typer.Option(100, "--min-events"),
    gate_tolerance: float = typer.Option(
        0.0, "--gate-tolerance", help="macro-F1 the retrain may lose on SmSA valid + hold-out"
    ),
    timeout_s: float = typer.Option(1800.0, "--timeout"),
    train_overrides: str = typer.Option(
        "{}", "--train-overrides", help="JSON of config keys for both trainings"
    ),
    overrides: str = typer.Option(
        "{}", "--retrain-overrides", help="JSON of config keys for the retrain only"
    ),
    retrain_settings: str = typer.Option(
        "{}",
        "--retrain-settings",
        help='JSON of the trainer consumer\'s knobs (RetrainConfig), e.g. {"labelled_weight": 3}',
    ),
    keep: bool = typer.Option(False, "--keep", help="keep the database, topics and model"),
    champion_run: str | None = typer.Option(
        None,
        "--champion-run",
        help="MLflow run id of an earlier SmSA champion (`champion_run` of a previous result) "
        "to reuse instead of training one",
    ),
    champion_sees_prdect: bool = typer.Option(
        False,
        "--champion-sees-prdect",
        help="pre-train the champion on PRDECT-ID's unlabelled texts too (as `ulasan train` "
        "does); by default it has not seen the product domain at all",
    ),
    as_json: bool = typer.Option(False, "--json", help="print the result as JSON"),
) -> None:
    """SmSA champion -> PRDECT-ID stream -> drift -> retrain -> promote -> hot reload."""
    from trainer.retrain.config import RetrainConfig

    knobs = _json_object(retrain_settings, "--retrain-settings")
    unknown = sorted(set(knobs) - set(RetrainConfig.model_fields))
    if unknown:
        raise typer.BadParameter(
            f"not RetrainConfig fields: {', '.join(unknown)} "
            f"(known: {', '.join(sorted(RetrainConfig.model_fields))})",
            param_hint="--retrain-settings",
        )
    cfg = ScenarioConfig(
        train_config=config,
        train_overrides=_json_object(train_overrides, "--train-overrides"),
        retrain_overrides=_json_object(overrides, "--retrain-overrides"),
        retrain_settings=knobs,
        reviews=reviews,
        window_s=window_s,
        min_events=min_events,
        gate_tolerance=gate_tolerance,
        timeout_s=timeout_s,
        keep=keep,
        champion_run=champion_run,
        champion_unseen_domain=not champion_sees_prdect,
    )
    result = run(Settings(), cfg)
    if as_json:
        keys = ("macro_f1_before", "macro_f1_after", "loop_seconds", "promoted_version")
        print(json.dumps({k: result[k] for k in keys}))
    else:
        Console().print_json(json.dumps(result, default=str))
