"""``ulasan worker`` (run one stream worker) and ``ulasan consume sentiment`` (tail the scores)."""

from __future__ import annotations

import logging.config
import os
import time
import uuid
from collections.abc import Callable
from typing import Any

import faust
import typer
from confluent_kafka import Consumer, KafkaError
from rich.console import Console, JustifyMethod
from rich.table import Table

from schemas.codec import CodecError, decode
from schemas.events import SentimentScored
from stream_processors.app import create_app
from stream_processors.errors import WorkerConfigError
from stream_processors.model_wait import Backoff, wait_for_model
from stream_processors.settings import LANES, WorkerSettings
from stream_processors.wiring import Deps, TopicNames, ensure_topics
from ulasan.core.inference import InferenceError
from ulasan.core.logs import logging_config
from ulasan.core.registry import parse_models_uri
from ulasan.core.serving import MetricsEndpoint, MetricsServeError

console = Console()
consume_app = typer.Typer(help="Read ulasan's topics readably.", no_args_is_help=True)


def worker(
    model: str | None = typer.Option(
        None, "--model", help="models:/NAME@ALIAS, models:/NAME/VERSION or a serving folder"
    ),
    metrics_port: int | None = typer.Option(
        None, "--metrics-port", help="port of /metrics (0 = none; default ULASAN_METRICS_PORT)"
    ),
    metrics_host: str | None = typer.Option(
        None, "--metrics-host", help="address Prometheus reaches /metrics at (default 127.0.0.1)"
    ),
    app_id: str | None = typer.Option(
        None, "--app-id", help="consumer group; workers with one id share the partitions"
    ),
    loglevel: str | None = typer.Option(None, "--loglevel", help="debug, info, warning, error"),
    lane: str | None = typer.Option(
        None,
        "--lane",
        help="all (every agent), reviews (all but the gateway's requests) or requests (only "
        "predict.requests.v1, consumer group <app-id>-requests) [default: all, or "
        "ULASAN_WORKER__LANE]",
    ),
) -> None:
    """Run one stream worker (clean, infer and sink agents) until SIGTERM or Ctrl-C."""
    if lane is not None and lane not in LANES:
        console.print(f"[red]--lane must be one of {', '.join(LANES)}, not {lane!r}[/red]")
        raise typer.Exit(2)
    overrides = {
        "model": model,
        "metrics_port": metrics_port,
        "metrics_host": metrics_host,
        "app_id": app_id,
        "loglevel": loglevel,
        "lane": lane,
    }
    settings = _worker_settings({k: v for k, v in overrides.items() if v is not None})
    cfg = settings.worker
    log_config = logging_config(cfg.loglevel, settings.log_format)
    logging.config.dictConfig(log_config)
    if cfg.nice:
        # before the model loads: ONNX Runtime's threads inherit the value of the thread that
        # creates them (Linux sets it per thread)
        os.nice(cfg.nice)
    deps = _load_deps(settings)
    _ensure_worker_topics(settings)
    app = create_app(settings, deps)
    app.conf.datadir.mkdir(parents=True, exist_ok=True)  # faust makes only the last level
    with MetricsEndpoint(settings, host=cfg.metrics_host, role="worker") as endpoint:
        _serve_metrics(endpoint, settings, deps.metrics.serve)
        # faust's Worker installs SIGTERM/SIGINT handlers that stop the agents, commit what
        # was acked and close the consumer, so a stop is a clean leave of the consumer group.
        # text keeps faust's own (coloured) format; json goes through faust's dictConfig too
        json_config = log_config if settings.log_format == "json" else None
        faust.Worker(
            app, loglevel=cfg.loglevel, logging_config=json_config
        ).execute_from_commandline()


def _worker_settings(overrides: dict[str, Any]) -> WorkerSettings:
    """The worker's settings from the environment, with the command line's options on top."""
    settings = WorkerSettings()
    if not overrides:
        return settings
    return settings.model_copy(update={"worker": settings.worker.model_copy(update=overrides)})


def _load_deps(settings: WorkerSettings) -> Deps:
    """The worker's dependencies (the model loaded), waiting up to ``model_wait_s`` for a model
    that is not in the registry yet; exit 2 with advice when there is none after that."""
    cfg = settings.worker
    # only a registry reference can appear later; a wrong folder path is an error at once
    wait_s = cfg.model_wait_s if parse_models_uri(cfg.model) is not None else 0.0
    backoff = Backoff(wait_s, cfg.model_retry_initial_s, cfg.model_retry_max_s)
    try:
        deps = wait_for_model(lambda: Deps.for_worker(settings), cfg.model, backoff)
    except InferenceError as exc:
        console.print(f"[red]cannot load the model {cfg.model!r}:[/red] {exc}")
        console.print(
            "train and promote one (`ulasan train`, `ulasan promote`) or pass --model FOLDER"
        )
        raise typer.Exit(2) from exc
    predictor = deps.predictor.current
    console.print(
        f"worker [bold]{cfg.group}[/bold] (lane {cfg.lane}): model {predictor.model_name} "
        f"version [bold]{predictor.model_version}[/bold] ({cfg.model}), "
        f"Kafka {settings.kafka.bootstrap_servers}, PostgreSQL {settings.postgres.host}:"
        f"{settings.postgres.port}/{settings.postgres.dbname}"
    )
    return deps


def _ensure_worker_topics(settings: WorkerSettings) -> None:
    """Create the worker's missing topics before it subscribes; exit 2 when Kafka refuses."""
    try:
        created = ensure_topics(settings)
    except WorkerConfigError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from exc
    if created:
        console.print(f"created topics: {', '.join(created)}")


def _serve_metrics(
    endpoint: MetricsEndpoint, settings: Any, serve: Callable[[int], object]
) -> None:
    """Serve /metrics and register it with Prometheus (nothing when the port is 0)."""
    port = settings.effective_metrics_port
    if not port:
        return
    cfg = settings.worker
    try:
        endpoint.announce(f"worker-{cfg.group}-{port}", port, serve=serve)
    except MetricsServeError as exc:
        console.print(f"[red]{exc}[/red]; pass --metrics-port with a free port (or 0 for none)")
        raise typer.Exit(2) from exc
    console.print(f"metrics on http://{cfg.metrics_host}:{port}/metrics")


@consume_app.command("sentiment")
def consume_sentiment(
    from_beginning: bool = typer.Option(
        False, "--from-beginning", help="start at the oldest event instead of new ones"
    ),
    max_events: int | None = typer.Option(None, "--max", min=1, help="stop after N events"),
    timeout_s: float | None = typer.Option(
        None, "--timeout", help="stop after this many seconds without a new event"
    ),
) -> None:
    """Tail sentiment.v1 as table rows, decoding with schemas.codec only."""
    settings = WorkerSettings()
    topic = TopicNames(settings.worker.topic_prefix).sentiment
    consumer = Consumer(
        {
            "bootstrap.servers": settings.kafka.bootstrap_servers,
            "group.id": f"ulasan-consume-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest" if from_beginning else "latest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    seen = 0
    last = time.monotonic()
    console.print(f"reading {topic} on {settings.kafka.bootstrap_servers} (Ctrl-C stops)")
    try:
        while max_events is None or seen < max_events:
            msgs = consumer.consume(num_messages=100, timeout=0.5)
            if not msgs:
                if timeout_s is not None and time.monotonic() - last > timeout_s:
                    break
                continue
            last = time.monotonic()
            seen = _print_batch(msgs, seen, max_events)
    except KeyboardInterrupt:
        pass
    finally:
        consumer.close()
    console.print(f"{seen} events")


def _print_batch(msgs: list[Any], seen: int, max_events: int | None) -> int:
    """Print one consumed batch as table rows (a header before the first); the new count."""
    table = _sentiment_table(show_header=seen == 0, width=console.width)
    for msg in msgs:
        if max_events is not None and seen >= max_events:
            break
        err = msg.error()
        if err is not None:
            if err.code() != KafkaError._PARTITION_EOF:
                console.print(f"[red]Kafka error:[/red] {err}")
            continue
        seen += 1
        try:
            ev = decode(msg.value(), SentimentScored)
        except CodecError as exc:
            cells = {"#": str(seen), "text": f"[red]undecodable ({exc.reason})[/red]"}
            table.add_row(*_cells(table, cells))
            continue
        table.add_row(*_cells(table, _row(seen, ev, msg.partition() or 0, msg.offset() or 0)))
    console.print(table)
    return seen


#: From this console width on, every column is shown at full width; below it the partition
#: and offset go and the review id and model are cut short, so label and confidence always
#: keep their place and the text takes what is left (shortened with an ellipsis).
WIDE_CONSOLE = 120


def _sentiment_table(*, show_header: bool, width: int) -> Table:
    """The columns for a console ``width`` columns wide (see :data:`WIDE_CONSOLE`): fixed
    widths for all but the text, which gets the rest, so rich never squeezes label or conf."""
    wide = width >= WIDE_CONSOLE
    columns: list[tuple[str, int, JustifyMethod]] = [("#", 6, "right")]
    if wide:
        columns.append(("p@offset", 10, "left"))
    columns += [
        ("review", 20 if wide else 12, "left"),
        ("label", 8, "left"),
        ("conf", 5, "right"),
        ("model", 22 if wide else 10, "left"),
    ]
    # one space of padding on each side of a cell, none at the table's outer edges
    used = sum(w for _, w, _ in columns) + 2 * len(columns)
    table = Table(show_header=show_header, box=None, pad_edge=False)
    for name, col_width, justify in columns:
        table.add_column(
            name,
            width=col_width,
            justify=justify,
            no_wrap=True,
            overflow="ellipsis",
        )
    table.add_column("text", width=max(10, width - used), no_wrap=True, overflow="ellipsis")
    return table


def _cells(table: Table, values: dict[str, str]) -> list[str]:
    """``values`` in the order of the table's columns ("" for a column without a value)."""
    return [values.get(str(column.header), "") for column in table.columns]


_COLOURS = {"positive": "green", "neutral": "yellow", "negative": "red"}


def _row(n: int, ev: Any, partition: int, offset: int) -> dict[str, str]:
    """One event's cells by column name."""
    colour = _COLOURS.get(ev.label, "white")
    subject = ev.review_id or f"{ev.request_id}[{ev.index}]"
    text = (ev.text or "").replace("\n", " ")
    return {
        "#": str(n),
        "p@offset": f"{partition}@{offset}",
        "review": subject,
        "label": f"[{colour}]{ev.label}[/{colour}]",
        "conf": f"{ev.confidence:.2f}",
        "model": f"{ev.model_name}:{ev.model_version}",
        "text": text[:500],
    }
