"""``ulasan chaos soak``: a steady review stream under random faults, on a stack of its own.

It starts a private Kafka and PostgreSQL (free ports, a temp state dir: never the shared stack),
serves a small random-weight model (built once through the trainer's exporter, cached under the
state dir), runs a consumer group of two ``ulasan worker`` processes and publishes a steady
``--rate`` reviews/s (SmSA and PRDECT-ID texts, unique review ids) for ``--minutes``. Meanwhile
it injects faults one at a time at seeded random times: a worker SIGKILLed (and restarted), the
broker SIGKILLed and restarted, PostgreSQL stopped and started. Each fault's recovery is the
time from the injection until rows are stored again and the consumer lag has fallen back (the
group committed, on every partition, past the log end of the moment the failed part was back:
the backlog the fault built is worked off). At the end it drains and reports published, stored,
lost (a published id missing a row in reviews, text_features or prediction_logs), the copies
beyond one on sentiment.v1, the faults, and whether the group committed to the log end; it exits
1 when anything was lost, a fault was not recovered from or the offsets stopped short.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import typer
from confluent_kafka import KafkaException
from rich.console import Console

from deploy.local import process
from deploy.local.errors import StackError
from deploy.local.kafka import KafkaService
from deploy.local.postgres import PostgresService
from producers.errors import ProducerError, PublishError
from producers.publish import Publisher
from schemas import topics
from schemas.events import ReviewReceived
from stream_processors.settings import configured_review_topics
from trainer.data import load_prdect, load_smsa
from ulasan.chaos_checks import (
    committed_and_end,
    committed_behind,
    rows_per_id,
    sentiment_copies,
)
from ulasan.core.errors import CoreError
from ulasan.core.settings import Settings
from ulasan.errors import UlasanError
from ulasan.json_output import json_stdout
from ulasan.pipeline_tools import WorkerGroup, worker_group
from ulasan.procs import free_port, interrupt_on_stop_signals, stop_signals_deferred

FAULT_KINDS = ("worker", "broker", "postgres")
APP_ID = "ulasan-chaos"
WORKERS = 2
RECOVERY_TIMEOUT_S = 300.0
DRAIN_STALL_S = 180.0

app = typer.Typer(help="Fault injection on a private stack: `ulasan chaos soak`.")


class ChaosError(UlasanError):
    """The soak could not run: a stack that did not start, a worker that died."""


Say = Callable[[str], None]


@dataclass
class Fault:
    """One injected fault: what, when (seconds after the stream started), how long until the
    stream was healthy again (None: not within the recovery timeout)."""

    kind: str
    at_s: float
    recovery_s: float | None
    detail: str = ""


# -- the private stack ---------------------------------------------------------------------------
class PrivateStack:
    """Kafka and PostgreSQL of the soak's own, under ``root`` on free ports."""

    def __init__(self, base: Settings, root: Path, say: Say) -> None:
        settings = base.model_copy(update={"state_dir": root})
        self.settings = settings.model_copy(
            update={
                "kafka": settings.kafka.model_copy(
                    update={"bootstrap_servers": f"127.0.0.1:{free_port()}"}
                ),
                "stack": settings.stack.model_copy(
                    update={"kafka_controller_port": free_port(), "kafka_heap": "512m"}
                ),
                "postgres": settings.postgres.model_copy(
                    update={"host": "127.0.0.1", "port": free_port()}
                ),
            }
        )
        self.kafka = KafkaService(self.settings, say)
        self.postgres = PostgresService(self.settings, say)
        self.say = say

    @property
    def bootstrap(self) -> str:
        return self.settings.kafka.bootstrap_servers

    @property
    def dsn(self) -> str:
        return self.settings.postgres.dsn

    def up(self) -> None:
        timeout = self.settings.stack.startup_timeout_s
        self.say(f"private PostgreSQL on :{self.settings.postgres.port}")
        self.postgres.start()
        self.postgres.wait_healthy(timeout)
        self.postgres.setup()
        self.say(f"private Kafka on {self.bootstrap}")
        self.kafka.start()
        self.kafka.wait_healthy(timeout)
        self.kafka.setup()

    def down(self) -> None:
        for service in (self.kafka, self.postgres):
            try:
                service.stop()
            except StackError as exc:
                self.say(f"stopping {service.name} failed: {exc}")

    def kill_broker(self) -> None:
        pid = self.kafka.pid()
        if pid is None:
            raise ChaosError("the private broker is not running")
        os.killpg(pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while process.group_members(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        self.kafka.pid_path.unlink(missing_ok=True)

    def start_broker(self) -> None:
        self.kafka.start()
        self.kafka.wait_healthy(self.settings.stack.startup_timeout_s)

    def restart_postgres(self, down_s: float) -> None:
        self.postgres.stop()
        time.sleep(down_s)
        self.postgres.start()
        self.postgres.wait_healthy(self.settings.stack.startup_timeout_s)


def worker_overrides(stack: PrivateStack, root: Path) -> dict[str, str]:
    """``ULASAN_*`` settings that point a worker at the private stack, one ONNX Runtime thread
    each (two workers share the machine); other ``ULASAN_WORKER__*`` settings come from the
    environment (production defaults unless set)."""
    pg = stack.settings.postgres
    return {
        "ULASAN_STATE_DIR": str(root / "workers"),
        "ULASAN_KAFKA__BOOTSTRAP_SERVERS": stack.bootstrap,
        "ULASAN_KAFKA__PARTITIONS": str(stack.settings.kafka.partitions),
        "ULASAN_POSTGRES__HOST": pg.host,
        "ULASAN_POSTGRES__PORT": str(pg.port),
        "ULASAN_POSTGRES__USER": pg.user,
        "ULASAN_POSTGRES__PASSWORD": pg.password,
        "ULASAN_POSTGRES__DBNAME": pg.dbname,
        # nobody listens there: the soak never touches the shared MLflow
        "ULASAN_MLFLOW__PORT": str(free_port()),
        "ULASAN_WORKER__TOPIC_PREFIX": "",
        "ULASAN_WORKER__INTRA_OP_THREADS": "1",
    }


def serving_model(settings: Settings, say: Say) -> Path:
    """A small random-weight BERT exported as a serving folder (the project's exporter), built
    once and cached under ``<state_dir>/bench/tiny``."""
    from trainer.bench_engine import shape_model  # noqa: PLC0415 - heavy, torch on first build

    say(f"model: random tiny BERT (cached under {settings.state_dir}/bench/tiny)")
    return shape_model("tiny", settings)[1]


def review_texts() -> list[str]:
    """SmSA (train) and PRDECT-ID texts, interleaved."""
    smsa = [e.text for e in load_smsa("train")]
    prdect = [e.text for e in load_prdect()]
    texts = [t for pair in zip(smsa, prdect, strict=False) for t in pair]
    return texts + smsa[len(prdect) :] + prdect[len(smsa) :]


# -- the stream ----------------------------------------------------------------------------------
class Feeder(threading.Thread):
    """Publishes ``rate`` reviews/s with unique ids until stopped; ``delivered`` holds the ids
    Kafka acknowledged (the published ones), ``failed`` those it refused."""

    def __init__(self, settings: Settings, rate: float, texts: Sequence[str], run: str) -> None:
        super().__init__(name="chaos-feeder", daemon=True)
        self.rate, self.texts, self.run_id = rate, texts, run
        self.delivered: set[str] = set()
        self.failed: list[str] = []
        self.sent = 0
        self.error: BaseException | None = None
        self._halt = threading.Event()
        # delivery.timeout.ms: a message waits through a broker restart instead of failing
        self.publisher = Publisher(
            settings,
            config={"delivery.timeout.ms": 600_000, "log_level": 2},
            on_delivery=lambda key, *_: self.delivered.add(key or ""),
        )

    def run(self) -> None:
        try:
            start = time.monotonic()
            while not self._halt.is_set():
                due = int((time.monotonic() - start) * self.rate)
                while self.sent < due:
                    text = self.texts[self.sent % len(self.texts)]
                    rid = f"chaos-{self.run_id}-{self.sent:08d}"
                    self.publisher.publish_review(
                        ReviewReceived(review_id=rid, source="chaos", text=text)
                    )
                    self.sent += 1
                self.publisher.poll(0.02)
            self.publisher.flush(600.0)
        except PublishError as exc:
            self.failed = [k or "" for k, _ in exc.failures]
            self.error = exc
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            self.error = exc

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=660)


class Probe:
    """Rows stored (prediction_logs), and the group's committed offsets against the log ends of
    the topics it reads."""

    def __init__(self, stack: PrivateStack) -> None:
        self.dsn = stack.dsn
        self.bootstrap = stack.bootstrap
        self.topics = list(configured_review_topics())

    def stored(self) -> int | None:
        try:
            with psycopg.connect(self.dsn, connect_timeout=2) as conn:
                row = conn.execute("SELECT count(*) FROM prediction_logs").fetchone()
        except psycopg.Error:
            return None
        return int(row[0]) if row else 0

    def offsets(self) -> dict[tuple[str, int], tuple[int, int]] | None:
        """``(topic, partition) -> (committed, log end)``; None while Kafka does not answer."""
        try:
            return committed_and_end(self.bootstrap, APP_ID, self.topics)
        except (KafkaException, KeyError):
            return None


# -- faults --------------------------------------------------------------------------------------
@dataclass
class Soak:
    """One soak run: its parts, its random source and what it measured."""

    stack: PrivateStack
    group: WorkerGroup
    feeder: Feeder
    probe: Probe
    rng: random.Random
    rate: float
    say: Say
    started: float = field(default_factory=time.monotonic)
    faults: list[Fault] = field(default_factory=list)

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def check(self) -> None:
        if self.feeder.error is not None:
            raise ChaosError(f"publishing failed: {self.feeder.error}")
        try:
            self.group.check_alive()
        except UlasanError as exc:
            raise ChaosError(f"a worker died outside a fault: {exc}") from exc

    def wait(self, seconds: float) -> None:
        """Sleep ``seconds``, watching the workers and the feeder."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.check()
            time.sleep(min(1.0, max(deadline - time.monotonic(), 0.0)))

    def inject(self, kind: str) -> str:
        """Do the fault (and the restart it calls for); what was done, in words."""
        if kind == "worker":
            n = self.rng.randrange(len(self.group.workers))
            worker = self.group.workers[n]
            if worker.child is not None:
                worker.child.kill()
            worker.start()
            return f"worker-{n} SIGKILLed and restarted"
        if kind == "broker":
            down_s = self.rng.uniform(2.0, 8.0)
            self.stack.kill_broker()
            time.sleep(down_s)
            self.stack.start_broker()
            return f"broker SIGKILLed, restarted after {down_s:.1f}s"
        down_s = self.rng.uniform(2.0, 8.0)
        self.stack.restart_postgres(down_s)
        return f"PostgreSQL stopped (fast), started after {down_s:.1f}s"

    def fault(self, kind: str) -> Fault:
        """Inject ``kind`` and wait for the recovery: rows stored again after the restart, and
        the group's committed offset on every partition it reads at least the log end of the
        moment the failed part was back (the backlog the fault built is worked off)."""
        at = self.elapsed()
        t0 = time.monotonic()
        self.say(f"[{at:6.1f}s] fault: {kind}")
        detail = self.inject(kind)
        stored_then = self.probe.stored() or 0
        target = None
        while time.monotonic() - t0 < RECOVERY_TIMEOUT_S:
            self.check()
            state = self.probe.offsets()
            if target is None and state is not None:
                target = {tp: end for tp, (_, end) in state.items()}
            stored = self.probe.stored()
            storing = stored is not None and stored > stored_then
            if storing and target and state and caught_up(state, target):
                recovery = round(time.monotonic() - t0, 1)
                self.say(f"          {detail}; recovered in {recovery}s")
                return Fault(kind, round(at, 1), recovery, detail)
            time.sleep(0.5)
        self.say(f"          {detail}; NOT recovered within {RECOVERY_TIMEOUT_S:.0f}s")
        return Fault(kind, round(at, 1), None, detail)


def caught_up(
    state: dict[tuple[str, int], tuple[int, int]], target: dict[tuple[str, int], int]
) -> bool:
    """Every partition's committed offset reached its ``target`` (an empty one counts)."""
    return all(state.get(tp, (-1, 0))[0] >= end or end == 0 for tp, end in target.items())


def fault_plan(
    rng: random.Random, duration_s: float, forced: Sequence[str] | None
) -> list[tuple[float, str]]:
    """``(gap before it in seconds, kind)`` per fault. Forced kinds come in their order, spread
    over the run; otherwise random kinds after random gaps (15-30 s first, then 20-60 s after
    each recovery) while the run has time left for one more."""
    if forced:
        spread = max(3.0, min(45.0, duration_s / (len(forced) + 1)))
        return [(rng.uniform(0.5, 1.0) * spread, kind) for kind in forced]
    plan: list[tuple[float, str]] = []
    t = rng.uniform(15.0, 30.0)
    budget = duration_s - 45.0  # a fault takes some seconds to recover; leave it room
    while t < budget:
        plan.append((rng.uniform(20.0, 60.0) if plan else t, rng.choice(FAULT_KINDS)))
        t += plan[-1][0] + 30.0
    return plan


def run_faults(
    soak: Soak, duration_s: float, plan: Sequence[tuple[float, str]], *, forced: bool
) -> None:
    """Inject the planned faults one at a time; the stream runs until ``duration_s`` has passed
    and every planned fault was injected (forced ones always, random ones while time is left)
    and recovered from."""
    for gap, kind in plan:
        soak.wait(gap)
        if not forced and soak.elapsed() > duration_s - 30.0:
            break
        soak.faults.append(soak.fault(kind))
    soak.wait(max(0.0, duration_s - soak.elapsed()))


# -- the drain and the report --------------------------------------------------------------------
def missing_ids(dsn: str, published: set[str]) -> set[str]:
    """Published ids without a row in reviews, text_features or prediction_logs."""
    missing: set[str] = set()
    for per_id in rows_per_id(dsn).values():
        missing |= published - set(per_id)
    return missing


def drain(stack: PrivateStack, published: set[str], say: Say) -> set[str]:
    """Wait until every published review has its rows, or nothing moved for DRAIN_STALL_S; the
    ids still missing."""
    last, moved = len(published) + 1, time.monotonic()
    while True:
        try:
            missing = missing_ids(stack.dsn, published)
        except psycopg.Error:
            missing = published  # the database is still coming back
        if not missing:
            return missing
        if len(missing) < last:
            last, moved = len(missing), time.monotonic()
        elif time.monotonic() - moved > DRAIN_STALL_S:
            say(f"drain: {len(missing)} reviews still without rows after {DRAIN_STALL_S:.0f}s")
            return missing
        time.sleep(1.0)


def report(soak: Soak, published: set[str], missing: set[str]) -> dict[str, Any]:
    stack = soak.stack
    behind = committed_behind(
        stack.bootstrap, APP_ID, list(configured_review_topics()), timeout_s=60.0
    )
    copies = sentiment_copies(stack.bootstrap, topics.SENTIMENT, published, timeout_s=300.0)
    recoveries = [f.recovery_s for f in soak.faults]
    return {
        "published": len(published),
        "stored": len(published) - len(missing),
        "lost": len(missing),
        "lost_examples": sorted(missing)[:10],
        "publish_failed": len(soak.feeder.failed),
        "duplicates_sentiment": copies.duplicates,
        "max_sentiment_copies": copies.max_copies,
        "faults": [asdict(f) for f in soak.faults],
        "max_recovery_s": max((r for r in recoveries if r is not None), default=None),
        "unrecovered": sum(r is None for r in recoveries),
        "committed_at_log_end": not behind,
        "rate": soak.rate,
        "stream_s": round(soak.elapsed(), 1),
        "workers": len(soak.group.workers),
    }


# -- the run -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SoakOptions:
    minutes: float
    rate: float
    seed: int
    forced: tuple[str, ...] = ()


def parse_faults(value: str | None) -> tuple[str, ...]:
    """``worker,broker,postgres`` -> the kinds, in order; a clear error for anything else."""
    if not value:
        return ()
    kinds = tuple(k.strip() for k in value.split(",") if k.strip())
    unknown = [k for k in kinds if k not in FAULT_KINDS]
    if unknown or not kinds:
        raise ChaosError(
            f"--faults takes a comma-separated list of {', '.join(FAULT_KINDS)}; got {value!r}"
        )
    return kinds


def _stream(soak: Soak, options: SoakOptions) -> tuple[set[str], set[str]]:
    """Stream with the faults, stop publishing, drain; (published ids, ids missing rows)."""
    duration_s = options.minutes * 60.0
    plan = fault_plan(soak.rng, duration_s, options.forced or None)
    soak.say(f"streaming {options.rate:g} reviews/s for {duration_s:.0f}s, {len(plan)} fault(s)")
    soak.feeder.start()
    run_faults(soak, duration_s, plan, forced=bool(options.forced))
    soak.say(f"[{soak.elapsed():6.1f}s] publishing stops; draining")
    soak.feeder.stop()
    if soak.feeder.error is not None and not isinstance(soak.feeder.error, PublishError):
        raise ChaosError(f"publishing failed: {soak.feeder.error}")
    published = set(soak.feeder.delivered) - set(soak.feeder.failed)
    return published, drain(soak.stack, published, soak.say)


def run_soak(options: SoakOptions, base: Settings, say: Say) -> dict[str, Any]:
    """The whole soak; everything it started is stopped and removed, whichever way it ends."""
    if options.minutes <= 0 or options.rate <= 0:
        raise ChaosError("--minutes and --rate must be above 0")
    model = serving_model(base, say)
    texts = review_texts()
    root = Path(tempfile.mkdtemp(prefix="ulasan-chaos-", dir="/tmp"))
    root.chmod(0o755)  # the postgres system user must reach its data dir
    stack = PrivateStack(base, root / "stack", say)
    group = worker_group(
        model=str(model),
        app_id=APP_ID,
        overrides=worker_overrides(stack, root),
        log_dir=root / "logs",
        stem="chaos",
        ports=[0] * WORKERS,
    )
    soak: Soak | None = None
    try:
        stack.up()
        say(f"starting {WORKERS} workers (logs in {root / 'logs'})")
        group.start()
        group.wait_ready()
        feeder = Feeder(stack.settings, options.rate, texts, f"{options.seed}")
        rng = random.Random(options.seed)  # noqa: S311 - fault times, not secrets
        soak = Soak(stack, group, feeder, Probe(stack), rng, options.rate, say)
        published, missing = _stream(soak, options)
        return report(soak, published, missing)
    finally:
        with stop_signals_deferred():
            _cleanup(stack, group, soak, root, say)


def _cleanup(
    stack: PrivateStack, group: WorkerGroup, soak: Soak | None, root: Path, say: Say
) -> None:
    say("cleaning up: workers, broker, database, state dir")
    if soak is not None and soak.feeder.is_alive():
        soak.feeder._halt.set()
    with contextlib.suppress(Exception):
        group.stop(timeout_s=20.0)
    stack.down()
    shutil.rmtree(root, ignore_errors=True)


def _print_summary(result: dict[str, Any], console: Console) -> None:
    for fault in result["faults"]:
        console.print(
            f"  {fault['at_s']:7.1f}s  {fault['kind']:8}  recovery {fault['recovery_s']}s  "
            f"({fault['detail']})",
            highlight=False,
        )
    console.print(
        f"published {result['published']}, stored {result['stored']}, lost {result['lost']}, "
        f"sentiment duplicates {result['duplicates_sentiment']}, max recovery "
        f"{result['max_recovery_s']}s, committed at log end: {result['committed_at_log_end']}",
        highlight=False,
    )


def failed(result: dict[str, Any]) -> bool:
    """A soak fails when a review was lost, a fault was not recovered from, or the group did
    not commit to the log end after the drain."""
    return bool(result["lost"] or result["unrecovered"] or not result["committed_at_log_end"])


@app.command("soak")
def soak_command(
    minutes: float = typer.Option(..., "--minutes", help="how long to stream (fractions too)"),
    rate: float = typer.Option(100.0, "--rate", help="reviews per second"),
    seed: int = typer.Option(0, "--seed", help="seeds the fault kinds, times and targets"),
    faults: str | None = typer.Option(
        None, "--faults", help="inject exactly these, in order (e.g. worker,broker,postgres)"
    ),
    as_json: bool = typer.Option(False, "--json", help="print one JSON document"),
) -> None:
    """Stream a steady rate of reviews through two workers on a private Kafka and PostgreSQL
    while faults are injected (worker SIGKILL, broker SIGKILL, PostgreSQL restart); report
    published, stored, lost, sentiment duplicates and each fault's recovery. Exits 1 when a
    review was lost, a fault was not recovered from or the offsets did not reach the log end."""
    interrupt_on_stop_signals()  # SIGTERM cleans up as Ctrl-C does
    console = Console(stderr=True)

    def say(message: str) -> None:
        console.print(message, highlight=False, markup=False)

    try:
        options = SoakOptions(minutes, rate, seed, parse_faults(faults))
        if as_json:
            with json_stdout() as emit:
                result = run_soak(options, Settings(), say)
                emit(result)
        else:
            result = run_soak(options, Settings(), say)
            _print_summary(result, Console())
    except (UlasanError, ProducerError, CoreError, StackError) as exc:
        console.print(f"[red]error:[/red] {exc}", highlight=False)
        raise typer.Exit(1) from exc
    if failed(result):
        raise typer.Exit(1)
