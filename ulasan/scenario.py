"""``ulasan scenario domain-shift``: the closed loop, end to end, with no human action.

A champion trained on SmSA only serves a stream of PRDECT-ID product reviews (a domain it has
not seen) with rating-derived feedback. The worker reports drift, a trigger fires, the trainer
consumer retrains on the new labelled reviews, the gate promotes, the worker hot-reloads, and
later reviews are scored by the new version. Everything runs in an isolated corner of the
local stack: its own topic prefix, database, registered model name and state folder.
"""

from __future__ import annotations

import json
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import typer
from confluent_kafka import Producer
from rich.console import Console

from schemas import topics
from schemas.codec import encode
from schemas.events import LabelFeedback, ReviewReceived
from trainer.config import DEFAULT_CONFIG, load_config
from trainer.data import load_prdect, load_smsa
from trainer.pipeline import EVAL_SET_NAME, load_training_data, run_training
from trainer.retrain.config import RetrainConfig
from trainer.retrain.split import holdout
from ulasan.core.kafka_admin import ensure_topics
from ulasan.core.settings import Settings
from ulasan.json_output import json_stdout
from ulasan.procs import Child, child_env, interrupt_on_stop_signals, read_tail, spawn
from ulasan.profiles import DEMO_MIN_EVENTS, DEMO_WINDOW_S, PROFILES, loop_env
from ulasan.sandbox import create_database, delete_topics, drop_database

DEMO = PROFILES["demo"]
#: the streamed reviews' source (a retrain tags it: ulasan.core.inference.domain)
SOURCE = "prdect"
app = typer.Typer(help="End-to-end scenarios of the closed loop.", no_args_is_help=True)


@dataclass
class ScenarioConfig:
    """Knobs of one run (the CI test uses the tiny model and a few hundred reviews)."""

    train_config: Path = DEFAULT_CONFIG
    #: dotted config keys for both trainings (the SmSA champion and the retrain)
    train_overrides: dict[str, Any] = field(default_factory=dict)
    #: dotted config keys for the retrain only (on top of ``train_overrides``)
    retrain_overrides: dict[str, Any] = field(default_factory=dict)
    #: the trainer consumer's own knobs (``RetrainConfig`` fields, e.g. ``labelled_weight``)
    retrain_settings: dict[str, Any] = field(default_factory=dict)
    reviews: int | None = None  # PRDECT-ID rows streamed (None = all)
    first_share: float = 0.7  # streamed before the retrain; the rest after the promotion
    window_s: float = DEMO_WINDOW_S
    min_events: int = DEMO_MIN_EVENTS
    holdout_share: float = 0.2
    #: the retrain gate compares on SmSA valid + the stream hold-out: no loss allowed there
    gate_tolerance: float = 0.0
    #: ... and guards SmSA valid on its own: macro-F1 the retrain may lose there (forgetting)
    base_tolerance: float = 0.01
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


@dataclass
class _Scenario:
    """One run: its knobs, its private corner of the stack (topic prefix, database, registered
    model name, work folder) and the processes it started."""

    settings: Settings
    cfg: ScenarioConfig
    console: Console
    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:10])
    children: list[Child] = field(default_factory=list)

    @property
    def prefix(self) -> str:
        return f"scn{self.tag}."

    @property
    def dbname(self) -> str:
        return f"scenario_{self.tag}"

    @property
    def model(self) -> str:
        return f"ulasan-scenario-{self.tag}"

    @property
    def workdir(self) -> Path:
        return self.settings.state_dir / "scenario" / self.tag

    @property
    def dsn(self) -> str:
        return self.settings.postgres.model_copy(update={"dbname": self.dbname}).dsn

    @property
    def scoped(self) -> Settings:
        """The settings of this process pointed at the scenario's database, model and state."""
        return self.settings.model_copy(
            update={
                "postgres": self.settings.postgres.model_copy(update={"dbname": self.dbname}),
                "mlflow": self.settings.mlflow.model_copy(update={"registered_model": self.model}),
                "state_dir": self.workdir / "state",
            }
        )

    def launch(self, name: str, args: list[str], env: dict[str, str]) -> None:
        log_path = self.workdir / f"{name}.log"
        self.children.append(Child(name, spawn(args, env=env, log_path=log_path), log_path))

    def wait(self, check: Callable[[], Any], timeout_s: float, what: str) -> Any:
        """Poll ``check`` every second until it returns something truthy; raise when a child
        exits or after ``timeout_s``, with the children's logs."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for child in self.children:
                if not child.alive():
                    raise RuntimeError(
                        f"{child.name} exited ({child.exit_code}):\n{child.log(4000)}"
                    )
            value = check()
            if value:
                return value
            time.sleep(1.0)
        logs = "\n".join(f"--- {c.name}\n{c.log(4000)}" for c in self.children)
        raise TimeoutError(f"timed out after {timeout_s:.0f}s waiting for {what}\n{logs}")

    def query(self, sql: str, *args: Any) -> Any:
        with psycopg.connect(self.dsn, connect_timeout=5) as conn:
            return conn.execute(sql, args).fetchone()

    def stop_children(self) -> None:
        for child in self.children:
            child.stop(60)


def _base_env(scn: _Scenario) -> dict[str, str]:
    """The child processes' environment: this one's without its ``ULASAN_*`` settings, pointed
    at the scenario's database, registered model and state folder."""
    settings, pg = scn.settings, scn.settings.postgres
    overrides = {
        "ULASAN_KAFKA__BOOTSTRAP_SERVERS": settings.kafka.bootstrap_servers,
        "ULASAN_POSTGRES__HOST": pg.host,
        "ULASAN_POSTGRES__PORT": str(pg.port),
        "ULASAN_POSTGRES__USER": pg.user,
        "ULASAN_POSTGRES__DBNAME": scn.dbname,
        "ULASAN_MLFLOW__TRACKING_URI": settings.mlflow.uri,
        "ULASAN_MLFLOW__REGISTERED_MODEL": scn.model,
        "ULASAN_STATE_DIR": str(scn.workdir / "state"),
    }
    if pg.password:
        overrides["ULASAN_POSTGRES__PASSWORD"] = pg.password
    return child_env(overrides, inherit_settings=False)


def _worker_env(scn: _Scenario) -> dict[str, str]:
    cfg = scn.cfg
    return (
        _base_env(scn)
        | {
            "ULASAN_WORKER__APP_ID": f"scenario-{scn.tag}",
            "ULASAN_WORKER__TOPIC_PREFIX": scn.prefix,
            "ULASAN_WORKER__MODEL": f"models:/{scn.model}@champion",
            "ULASAN_WORKER__INTRA_OP_THREADS": "1",
        }
        | loop_env(
            window_s=cfg.window_s,
            grace_s=DEMO.grace_s,
            min_events=cfg.min_events,
            feedback_reconcile_s=DEMO.feedback_reconcile_s,
            feedback_min=min(DEMO_MIN_EVENTS, cfg.min_events),
            cooldown_s=max(600.0, cfg.timeout_s),
        )
    )


def _trainer_env(scn: _Scenario) -> dict[str, str]:
    cfg = scn.cfg
    knobs = {
        f"ULASAN_RETRAIN__{key.upper()}": value if isinstance(value, str) else json.dumps(value)
        for key, value in cfg.retrain_settings.items()
    }
    overrides = {
        **cfg.train_overrides,
        "gate.tolerance": cfg.gate_tolerance,
        "gate.base_tolerance": cfg.base_tolerance,
    }
    return (
        _base_env(scn)
        | knobs
        | {
            "ULASAN_RETRAIN__TOPIC_PREFIX": scn.prefix,
            "ULASAN_RETRAIN__GROUP_ID": f"scenario-trainer-{scn.tag}",
            "ULASAN_RETRAIN__CONFIG": str(cfg.train_config),
            "ULASAN_RETRAIN__HOLDOUT_SHARE": str(cfg.holdout_share),
            "ULASAN_RETRAIN__LOGS_DIR": str(scn.workdir / "retraining"),
            "ULASAN_RETRAIN__OVERRIDES": json.dumps({**overrides, **cfg.retrain_overrides}),
        }
    )


def _stream_rows(cfg: ScenarioConfig) -> tuple[list[Any], list[tuple[str, str]]]:
    """The labelled PRDECT-ID rows to stream, and the hold-out among them (text, label)."""
    rows = [e for e in load_prdect() if e.label is not None and e.text.strip()]
    if cfg.reviews is not None:
        rows = rows[: cfg.reviews]
    held = [(e.text, str(e.label)) for e in rows if holdout(str(e.id), cfg.holdout_share)]
    return rows, held


def _champion(scn: _Scenario) -> tuple[str, str]:
    """The SmSA champion, reused (``champion_run``) or trained now: (version, run id)."""
    cfg, console = scn.cfg, scn.console
    base = champion_config(cfg)
    if cfg.champion_run:
        console.rule(f"champion: the SmSA model of run {cfg.champion_run}")
        v1 = register_champion_run(scn.scoped, cfg.champion_run, base, scn.workdir / "champion")
        champion_run = cfg.champion_run
    else:
        console.rule("champion: trained on SmSA only")
        champion = run_training(base, scn.scoped, console=console, progress=False)
        if not (champion.gate or {}).get("promoted"):
            raise RuntimeError(f"the SmSA champion was not promoted: {champion.gate}")
        v1 = str(champion.model_version)
        champion_run = str(champion.run_id)
    console.print(f"champion: version {v1} of run {champion_run} (reuse: --champion-run)")
    return v1, champion_run


def _stream(scn: _Scenario, producer: Producer, batch: Sequence[Any]) -> None:
    """Each row as a review and its rating feedback, at about ``cfg.rate`` reviews/s."""
    raw, feedback = scn.prefix + topics.REVIEWS_RAW, scn.prefix + topics.FEEDBACK
    for i, e in enumerate(batch):
        rid = str(e.id)
        review = ReviewReceived(review_id=rid, source=SOURCE, text=e.text, rating=e.rating)
        producer.produce(raw, key=rid.encode(), value=encode(review))
        fb = LabelFeedback(
            feedback_id=f"rating:{rid}", review_id=rid, label=e.label, source="rating"
        )
        producer.produce(feedback, key=rid.encode(), value=encode(fb))
        if i % 100 == 99:
            producer.flush(30)
            time.sleep(100 / scn.cfg.rate)
    if producer.flush(60) != 0:
        raise RuntimeError("reviews were not delivered to Kafka")


def _await_retrain(scn: _Scenario) -> Any:
    """The first finished retraining run's row (promoted or refused by the gate); raises when
    the run failed."""
    run_row = scn.wait(
        lambda: scn.query(
            "SELECT run_id, status, promoted_version, decision, scores, data_sizes, reasons "
            "FROM retrain_runs "
            "WHERE status <> 'running' ORDER BY finished_at LIMIT 1"
        ),
        scn.cfg.timeout_s,
        "a retraining run to finish",
    )
    if run_row[1] == "failed":
        raise RuntimeError(f"the retraining run failed: {run_row}")
    return run_row


def _served_by(scn: _Scenario, version: str) -> int:
    return int(
        scn.query(
            "SELECT count(*) FROM prediction_logs WHERE model_version = %s AND NOT shadow",
            version,
        )[0]
    )


def _loop(scn: _Scenario, rows: list[Any]) -> tuple[Any, float]:
    """Stream the first share, wait for the retrain's promotion, stream the rest, wait for the
    promoted version to serve: (the retraining run's row, the time streaming started). A
    retrain the gate refused ends the loop there (nothing new to serve)."""
    cfg, console = scn.cfg, scn.console
    producer = Producer({"bootstrap.servers": scn.settings.kafka.bootstrap_servers, "acks": "all"})
    cut = int(len(rows) * cfg.first_share)
    # drift windows are aligned to multiples of window_s (epoch seconds): start just after
    # a boundary, so the first window holds the whole pre-retrain stream; from a random
    # phase the trigger fired part-way through it (the retrain saw 1,844 to 3,779 reviews)
    time.sleep(-time.time() % cfg.window_s + 0.2)
    console.rule(f"streaming {cut} PRDECT-ID reviews with rating feedback")
    started = time.time()
    _stream(scn, producer, rows[:cut])
    run_row = _await_retrain(scn)
    if run_row[2] is None:
        console.rule(f"the retrain was not promoted: {run_row[3]}")
        return run_row, started
    v2 = str(run_row[2])
    console.rule(f"version {v2} promoted; streaming the other {len(rows) - cut} reviews")
    _stream(scn, producer, rows[cut:])
    scn.wait(lambda: _served_by(scn, v2) > 0, cfg.timeout_s, f"reviews scored by version {v2}")
    return run_row, started


def _result(
    scn: _Scenario,
    champion: tuple[str, str],
    run_row: Any,
    rows: list[Any],
    held: list[tuple[str, str]],
    started: float,
) -> dict[str, Any]:
    """The scenario's figures: macro-F1 on the hold-out and on SmSA test before and after, the
    loop's time. When the gate refused the retrain, the ``*_after`` figures, ``loop_seconds``
    and ``promoted_version`` are None and ``gate_reason`` says why."""
    from trainer.evaluate import evaluate_model  # noqa: PLC0415 - heavy, numpy

    (v1, champion_run), v2 = champion, (None if run_row[2] is None else str(run_row[2]))
    first_drift = scn.query("SELECT min(created_at) FROM drift_reports WHERE drifted")[0]
    any_report = scn.query("SELECT min(created_at), count(*) FROM drift_reports")
    reference = first_drift or any_report[0]
    first_served = _first_served(scn, v2) if v2 else None
    loop_seconds = (
        (first_served - reference).total_seconds() if reference and first_served else None
    )
    # the hold-out as the worker receives it: each version reads the source as it was trained
    sources = [SOURCE] * len(held)
    before = evaluate_model(f"models:/{scn.model}/{v1}", held, scn.scoped, sources=sources)
    after = (
        evaluate_model(f"models:/{scn.model}/{v2}", held, scn.scoped, sources=sources)
        if v2
        else None
    )
    return {
        "macro_f1_before": before["macro_f1"],
        "macro_f1_after": after["macro_f1"] if after else None,
        "loop_seconds": loop_seconds,
        "promoted_version": v2,
        **_base_figures(scn, v1, v2),
        "gate_reason": run_row[3],
        "per_class_before": before["per_class"],
        "per_class_after": after["per_class"] if after else None,
        "domain_tags": (run_row[4] or {}).get("domain_tags"),
        "champion_version": v1,
        "champion_run": champion_run,
        "holdout_reviews": len(held),
        "streamed_reviews": len(rows),
        "drift_reports": int(any_report[1]),
        "first_drift_report_at": str(first_drift) if first_drift else None,
        "served_by_promoted": _served_by(scn, v2) if v2 else 0,
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
        "workdir": str(scn.workdir),
    }


def _first_served(scn: _Scenario, version: str) -> Any:
    return scn.query(
        'SELECT min("timestamp") FROM prediction_logs WHERE model_version = %s AND NOT shadow',
        version,
    )[0]


def _base_figures(scn: _Scenario, v1: str, v2: str | None) -> dict[str, float | None]:
    """What the retrain cost on the base domain: macro-F1 on SmSA test (never used to train,
    choose or gate) of the champion and the promoted version, and the drop (before - after,
    positive = forgotten). ``*_after`` and the drop are None when nothing was promoted."""
    from trainer.evaluate import evaluate_model  # noqa: PLC0415 - heavy, numpy

    test = [(e.text, str(e.label)) for e in load_smsa("test")]
    before = float(evaluate_model(f"models:/{scn.model}/{v1}", test, scn.scoped)["macro_f1"])
    if v2 is None:
        return {"base_macro_f1_before": before, "base_macro_f1_after": None, "base_drop": None}
    after = float(evaluate_model(f"models:/{scn.model}/{v2}", test, scn.scoped)["macro_f1"])
    return {
        "base_macro_f1_before": before,
        "base_macro_f1_after": after,
        "base_drop": before - after,
    }


def run(settings: Settings, cfg: ScenarioConfig, console: Console | None = None) -> dict[str, Any]:
    """Run the scenario; the result dict (``macro_f1_before``, ``macro_f1_after``,
    ``loop_seconds``, ``promoted_version``, ``base_macro_f1_before``/``_after`` on SmSA test and
    details; the ``*_after`` ones None when the gate refused the retrain). Raises on a timeout,
    a dead process or a failed retraining run."""
    scn = _Scenario(settings, cfg, console or Console(stderr=True))
    scn.workdir.mkdir(parents=True, exist_ok=True)
    create_database(settings.postgres.dsn, scn.dbname, scn.dsn)
    try:
        rows, held = _stream_rows(cfg)
        # topics first: a consumer subscribed to a missing topic only sees it after its next
        # metadata refresh (minutes); the worker's own outputs are created by the worker
        ensure_topics(
            settings.kafka.bootstrap_servers,
            [scn.prefix + t for t in (topics.RETRAIN_REQUESTS, topics.MODEL_UPDATES)],
            1,
            settings.kafka.replication_factor,
        )
        # the trainer only waits for requests: it starts (and imports) while the champion trains
        # no /metrics for either (0): two scenarios, or a scenario beside a running stack, must
        # not fight over the default ports
        scn.launch("trainer", ["trainer", "serve", "--metrics-port", "0"], _trainer_env(scn))
        champion = _champion(scn)
        scn.launch("worker", ["worker", "--metrics-port", "0"], _worker_env(scn))
        # the worker must serve before reviews come (it creates the topics)
        worker_log = scn.workdir / "worker.log"
        scn.wait(lambda: "Ready" in read_tail(worker_log, 1_000_000), 300, "the worker to start")
        run_row, started = _loop(scn, rows)
        return _result(scn, champion, run_row, rows, held, started)
    finally:
        scn.stop_children()
        if not cfg.keep:
            _cleanup(scn)


def champion_config(cfg: ScenarioConfig) -> Any:
    """The SmSA champion's training config: ``train_config`` + ``train_overrides`` on SmSA,
    pre-trained without PRDECT-ID's texts when ``champion_unseen_domain``."""
    config = load_config(cfg.train_config).with_overrides({**cfg.train_overrides, "data": "smsa"})
    if cfg.champion_unseen_domain and config.pretrain_corpus == "train":
        config = config.with_overrides({"pretrain_corpus": "no-prdect"})
    return config


def register_champion_run(settings: Settings, run_id: str, config: Any, dest: Path) -> str:
    """Register an earlier run's ``serving/`` artifact as the scenario model's champion (no
    training): its scores on the fixed set come from the run's ``reports/``, its training-data
    hash is recomputed from ``config`` (the SmSA data it was trained on). The version."""
    # both registries import onnxruntime (and MLflow when they run)
    from trainer.registry import (  # noqa: PLC0415 - heavy
        EvalScores,
        dataset_hash,
        register_candidate,
        set_alias,
    )
    from ulasan.core.registry import CHAMPION, SERVING_ARTIFACT, client  # noqa: PLC0415 - heavy

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


def _cleanup(scn: _Scenario) -> None:
    """Drop the scenario's database, delete its topics and its registered model."""
    from ulasan.core.registry import client  # noqa: PLC0415 - heavy, onnxruntime, MLflow

    try:
        drop_database(scn.settings.postgres.dsn, scn.dbname)
        delete_topics(scn.settings.kafka.bootstrap_servers, (scn.prefix, f"scenario-{scn.tag}"))
        client(scn.settings).delete_registered_model(scn.model)
    except Exception as exc:  # noqa: BLE001 - cleanup must not hide the result
        print(f"scenario cleanup incomplete: {exc}", file=sys.stderr)


def _retrain_knobs(value: str) -> dict[str, Any]:
    """``--retrain-settings``: a JSON object of :class:`RetrainConfig` fields."""
    knobs = _json_object(value, "--retrain-settings")
    unknown = sorted(set(knobs) - set(RetrainConfig.model_fields))
    if unknown:
        raise typer.BadParameter(
            f"not RetrainConfig fields: {', '.join(unknown)} "
            f"(known: {', '.join(sorted(RetrainConfig.model_fields))})",
            param_hint="--retrain-settings",
        )
    return knobs


BASE_TOLERANCE_OPTION = typer.Option(
    0.01,
    "--base-tolerance",
    min=0.0,
    max=1.0,
    help="macro-F1 the retrain may lose on SmSA valid alone, guarded besides the pooled set "
    "(the limit on forgetting the base domain)",
)


@app.command("domain-shift")
def domain_shift(
    config: Path = typer.Option(DEFAULT_CONFIG, "--config", help="training config"),
    reviews: int | None = typer.Option(None, "--reviews", min=50, help="PRDECT-ID rows (all)"),
    window_s: float = typer.Option(
        DEMO_WINDOW_S,
        "--window",
        help="drift window seconds (the first covers the pre-retrain stream)",
    ),
    min_events: int = typer.Option(DEMO_MIN_EVENTS, "--min-events"),
    gate_tolerance: float = typer.Option(
        0.0, "--gate-tolerance", help="macro-F1 the retrain may lose on SmSA valid + hold-out"
    ),
    base_tolerance: float = BASE_TOLERANCE_OPTION,
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
    cfg = ScenarioConfig(
        retrain_settings=_retrain_knobs(retrain_settings),  # checked first, as it always was
        train_config=config,
        train_overrides=_json_object(train_overrides, "--train-overrides"),
        retrain_overrides=_json_object(overrides, "--retrain-overrides"),
        reviews=reviews,
        window_s=window_s,
        min_events=min_events,
        gate_tolerance=gate_tolerance,
        base_tolerance=base_tolerance,
        timeout_s=timeout_s,
        keep=keep,
        champion_run=champion_run,
        champion_unseen_domain=not champion_sees_prdect,
    )
    interrupt_on_stop_signals()  # SIGTERM stops the worker and the trainer as Ctrl-C does
    _run_and_print(cfg, as_json=as_json)


def _run_and_print(cfg: ScenarioConfig, *, as_json: bool) -> None:
    """Run the scenario; print the headline figures as one JSON document (``--json``: what
    else reaches stdout meanwhile, MLflow's "View run ..." lines, goes to stderr) or the
    whole result."""
    if not as_json:
        Console().print_json(json.dumps(run(Settings(), cfg), default=str))
        return
    with json_stdout() as emit:
        result = run(Settings(), cfg)
        keys = (
            "macro_f1_before",
            "macro_f1_after",
            "loop_seconds",
            "promoted_version",
            "base_macro_f1_before",
            "base_macro_f1_after",
            "base_drop",
        )
        emit({k: result[k] for k in keys})
