"""Worker lanes (``ulasan worker --lane``): which agents each lane registers, its consumer group
and where a new group starts, what the requests lane loads and reloads, and the lane a request
takes through the app (scored by the requests lane alone)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from pydantic import ValidationError
from typer.testing import CliRunner

from schemas import topics
from schemas.codec import decode, encode
from schemas.events import PredictionRequested, SentimentScored
from stream_processors.app import _reloader, build
from stream_processors.inference.batching import PredictorHolder
from stream_processors.inference.reload import ModelReloader
from stream_processors.metrics import WorkerMetrics
from stream_processors.settings import LANES, WorkerConfig, WorkerSettings, requests_group
from stream_processors.wiring import Deps
from tests.helpers.tiny_serving import tiny_serving_folder
from tests.unit.stream_processors.test_agents import RecordingSink, make_app, run, take
from tests.unit.stream_processors.test_reload import NAME, Registry, Version, promoted
from ulasan.cli import app as cli
from ulasan.core.inference import OnnxPredictor

#: the review agents by default (``clean_and_score``: the clean agent scores its batches)
REVIEW_AGENTS = {"clean", "request_logs"}


@pytest.fixture(scope="module")
def predictor() -> OnnxPredictor:
    return OnnxPredictor.from_folder(
        tiny_serving_folder(), model_version="7", model_file="model_fp32.onnx"
    )


def lane_settings(lane: str, **worker: Any) -> WorkerSettings:
    return WorkerSettings(worker=WorkerConfig(lane=lane, app_id="grp", **worker))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("lane", "agents", "group", "reset"),
    [
        ("all", REVIEW_AGENTS | {"requests"}, "grp", "earliest"),
        ("reviews", REVIEW_AGENTS, "grp", "earliest"),
        ("requests", {"requests"}, "grp-requests", "latest"),
    ],
)
def test_each_lane_registers_its_agents_in_its_consumer_group(
    predictor: OnnxPredictor, lane: str, agents: set[str], group: str, reset: str
) -> None:
    settings = lane_settings(lane)
    deps = Deps(settings, WorkerMetrics(), PredictorHolder(predictor), RecordingSink())
    built = build(settings, deps, memory_outputs=True)
    assert set(built.agents) == agents
    assert built.app.conf.id == group == settings.worker.group
    if lane != "requests":
        two_hops = lane_settings(lane, clean_and_score=False)
        deps = Deps(two_hops, WorkerMetrics(), PredictorHolder(predictor), RecordingSink())
        assert set(build(two_hops, deps, memory_outputs=True).agents) == agents | {"infer"}
    # a new requests group starts at the log end: requests are ephemeral, deadline-bound
    assert built.app.conf.consumer_auto_offset_reset == reset
    assert str(built.app.conf.datadir).endswith(group)
    # replies wait for nobody; review batches gather into fewer produce requests
    assert built.app.conf.producer_linger == (0.0 if lane == "requests" else 0.005)


def test_the_lane_is_a_setting_and_a_bad_one_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    assert WorkerConfig().lane == "all" and LANES == ("all", "reviews", "requests")
    monkeypatch.setenv("ULASAN_WORKER__LANE", "requests")
    monkeypatch.setenv("ULASAN_WORKER__APP_ID", "g1")
    cfg = WorkerSettings().worker
    assert (cfg.lane, cfg.group, cfg.runs_reviews, cfg.runs_requests) == (
        "requests",
        "g1-requests",
        False,
        True,
    )
    assert requests_group("g1") == cfg.group
    monkeypatch.setenv("ULASAN_WORKER__LANE", "fast")
    with pytest.raises(ValidationError, match="lane"):
        WorkerSettings()
    with pytest.raises(ValidationError):
        WorkerConfig(nice=20)


def test_the_command_refuses_an_unknown_lane_before_loading_anything() -> None:
    result = CliRunner().invoke(cli, ["worker", "--lane", "fast"], env={"NO_COLOR": "1"})
    assert result.exit_code == 2
    assert "--lane must be one of all, reviews, requests" in result.output


def test_the_requests_lane_answers_requests(predictor: OnnxPredictor) -> None:
    app = make_app(predictor, lane="requests")
    request = PredictionRequested(
        request_id="r1",
        texts=["bagus sekali", "jelek"],
        reply_to="gw",
        deadline=datetime.now(UTC) + timedelta(seconds=5),
    )

    async def scenario(agent: Any, subs: dict[str, Any]) -> None:
        await agent.put(encode(request), key=b"r1")
        replies = [
            decode(r.value, SentimentScored) for r in await take(subs[topics.PREDICT_REPLIES], 2)
        ]
        assert [(e.request_id, e.index) for e in replies] == [("r1", 0), ("r1", 1)]
        direct = predictor.predict(list(request.texts))
        assert [e.label for e in replies] == [p.label for p in direct]

    run(app, "requests", scenario)


def test_the_requests_lane_loads_no_challenger_nor_closed_loop(tmp_path: Path) -> None:
    settings = lane_settings("requests", model=str(tiny_serving_folder()))
    settings = settings.model_copy(update={"state_dir": tmp_path})
    deps = Deps.for_worker(settings)
    assert deps.shadow is None and deps.loop is None
    reloader = _reloader(deps)
    assert reloader is not None and reloader.challenger is False
    # a reviews lane keeps shadow scoring and the champion/challenger reloader
    reviews_cfg = settings.worker.model_copy(update={"lane": "reviews"})
    reviews = Deps.for_worker(settings.model_copy(update={"worker": reviews_cfg}))
    assert reviews.shadow is not None
    reviews_reloader = _reloader(reviews)
    assert reviews_reloader is not None and reviews_reloader.challenger is True


def test_a_reloader_without_a_challenger_never_loads_one() -> None:
    registry = Registry(champion="1", challenger="2")
    settings = WorkerSettings(worker=WorkerConfig(model=f"models:/{NAME}@champion"))
    holder = PredictorHolder(Version("ulasan-mini", "1"))  # type: ignore[arg-type]
    r = ModelReloader(
        settings,
        holder,
        challenger=False,
        registry=CollectorRegistry(),
        loader=registry.load,
        resolver=registry.resolve,
    )
    result = r.handle(promoted("2", alias="challenger"))
    assert result is not None and not result.swapped
    assert r.shadow.current is None and registry.loads == []
    registry.aliases["champion"] = "3"
    swapped = r.handle(promoted("3"))  # the champion still follows promotions
    assert swapped is not None and swapped.swapped and holder.current.model_version == "3"
    assert registry.loads == [f"models:/{NAME}@champion"]
