"""The closed-loop agents (drift observe, feedback, drift windows + triggers) via test_context()."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import pytest

from schemas import topics
from schemas.codec import decode, encode
from schemas.events import DeadLetter, DriftReport, LabelFeedback, RetrainRequested, SentimentScored
from stream_processors.app import WorkerApp, build
from stream_processors.drift.config import DriftConfig
from stream_processors.drift.reference import BOOLEAN_FEATURES, NUMERIC_FEATURES, Reference
from stream_processors.feedback.logic import Outcome
from stream_processors.inference.batching import PredictorHolder
from stream_processors.metrics import LoopMetrics, WorkerMetrics
from stream_processors.settings import WorkerConfig, WorkerSettings
from stream_processors.triggers.logic import TriggerConfig
from stream_processors.wiring import Deps, LoopDeps
from tests.helpers.tiny_model import smsa_rows
from tests.helpers.tiny_serving import tiny_serving_folder
from tests.unit.stream_processors.test_agents import RecordingSink, cleaned_bytes, take
from ulasan.core.inference import OnnxPredictor
from ulasan.core.text import features

VERSION = "7"
WINDOW_S = 60.0
T0 = 1_800_000_000.0  # a window start (a multiple of WINDOW_S)


class MemoryLoopStore:
    """The loop store's contract in memory: feedback joins predictions by review id (the real
    store does this in PostgreSQL and is tested there); reports are kept."""

    def __init__(self, predictions: dict[str, str]) -> None:
        self.predictions = predictions
        self.feedback: list[LabelFeedback] = []
        self.reports: list[DriftReport] = []

    async def record_feedback(self, events: Sequence[LabelFeedback]) -> list[Outcome]:
        self.feedback.extend(events)
        return [
            Outcome(e.review_id, self.predictions[e.review_id], e.label, VERSION, False)
            for e in events
            if e.review_id in self.predictions
        ]

    async def reconcile(self, lookback_s: float = 3600.0) -> list[Outcome]:
        return []

    async def write_report(self, report: DriftReport) -> None:
        self.reports.append(report)


@pytest.fixture(scope="module")
def predictor() -> OnnxPredictor:
    return OnnxPredictor.from_folder(tiny_serving_folder(), model_version=VERSION)


def reference_texts() -> list[tuple[str, str]]:
    return smsa_rows("train", 400)


def make_reference(rows: list[tuple[str, str]]) -> Reference:
    feats = [features(t) for t, _ in rows]
    labels = [y for _, y in rows]
    return Reference(
        model_version=VERSION,
        numeric={n: [float(getattr(f, n)) for f in feats] for n in NUMERIC_FEATURES},
        categorical={
            n: {
                "true": sum(bool(getattr(f, n)) for f in feats),
                "false": sum(not getattr(f, n) for f in feats),
            }
            for n in BOOLEAN_FEATURES
        },
        predicted={lab: labels.count(lab) for lab in ("positive", "neutral", "negative")},
        confidence=[0.6 + 0.3 * random.Random(i).random() for i in range(len(rows))],
        unknown_token_rate=0.0,
        created_at=T0 - 86400.0,
        baseline_accuracy=0.8,
    )


def make_app(predictor: Any, store: Any, **drift: Any) -> WorkerApp:
    settings = WorkerSettings(
        worker=WorkerConfig(max_batch=8, max_wait_ms=5, clean_and_score=False)
    )
    deps = Deps(settings, WorkerMetrics(), PredictorHolder(predictor), RecordingSink())
    deps.loop = LoopDeps(
        drift=DriftConfig(window_s=WINDOW_S, grace_s=1.0, min_events=50, **drift),
        triggers=TriggerConfig(feedback_min=10, cooldown_s=0.0),
        store=store,
        metrics=LoopMetrics(deps.metrics.registry),
    )
    deps.loop.references[VERSION] = make_reference(reference_texts())
    return build(settings, deps, memory_outputs=True)


def run(
    app: WorkerApp, agent: str, scenario: Callable[[Any, dict[str, Any]], Awaitable[None]]
) -> None:
    async def main() -> None:
        subs = {name: ch.__aiter__() for name, ch in app.outputs.channels.items()}
        async with app.agents[agent].test_context() as running:
            await scenario(running, subs)

    asyncio.run(main())


def test_the_infer_agent_hands_each_stored_batch_to_the_drift_windows_as_one_message(
    predictor: OnnxPredictor,
) -> None:
    app = make_app(predictor, MemoryLoopStore({}))
    text = "Barangnya BAGUS banget!!! cek https://contoh.id 😍"

    async def scenario(agent: Any, subs: dict[str, Any]) -> None:
        await agent.put(cleaned_bytes("r1", text), key=b"r1")
        await agent.put(b"{not json", key=b"bad")  # undecodable: dead-lettered, not observed
        await agent.put(cleaned_bytes("r3", "jelek"), key=b"r3")
        scores = [decode(o.value, SentimentScored) for o in await take(subs[topics.SENTIMENT], 2)]
        # one message per batch of scores: one produce and one consume, not one per review
        (out,) = await take(subs[topics.DRIFT_OBSERVATIONS], 1)
        message = json.loads(out.value)
        assert message["kind"] == "batch"
        obs = message["items"]
        assert [o["label"] for o in obs] == [s.label for s in scores]
        f = features(text)  # the clean agent's features, carried by the cleaned review
        assert obs[0]["kind"] == "score" and obs[0]["t"] == scores[0].scored_at.timestamp()
        assert obs[0]["numeric"] == {n: float(getattr(f, n)) for n in NUMERIC_FEATURES}
        assert obs[0]["flags"] == {"has_url": True, "has_emoji": True}
        assert obs[0]["confidence"] == scores[0].confidence
        assert obs[0]["model_version"] == VERSION
        assert obs[0]["tokens"] > 0 and 0 <= obs[0]["unknown_tokens"] <= obs[0]["tokens"]
        assert subs[topics.DRIFT_OBSERVATIONS].empty()

    run(app, "infer", scenario)


def test_feedback_is_stored_joined_and_forwarded_and_bad_feedback_is_dead_lettered(
    predictor: OnnxPredictor,
) -> None:
    store = MemoryLoopStore({"r1": "positive", "r2": "negative"})
    app = make_app(predictor, store)

    def fb(rid: str, label: str) -> bytes:
        return encode(
            LabelFeedback(feedback_id=f"f-{rid}", review_id=rid, label=label, source="rating")
        )

    async def scenario(agent: Any, subs: dict[str, Any]) -> None:
        await agent.put(fb("r1", "positive"), key=b"r1")
        await agent.put(fb("r2", "positive"), key=b"r2")
        await agent.put(fb("r9", "neutral"), key=b"r9")  # no prediction yet: stored only
        await agent.put(b'{"review_id": "x"}', key=b"x")
        (message,) = [json.loads(o.value) for o in await take(subs[topics.DRIFT_OBSERVATIONS], 1)]
        out = message["items"]
        assert [(o["kind"], o["correct"]) for o in out] == [("feedback", True), ("feedback", False)]
        (letter,) = await take(subs[topics.dlq(topics.FEEDBACK)], 1)
        assert decode(letter.value, DeadLetter).reason.startswith("missing_field")

    run(app, "feedback", scenario)
    assert [e.review_id for e in store.feedback] == ["r1", "r2", "r9"]


def _window_observations(texts: Sequence[str], label: str = "positive") -> list[bytes]:
    out = []
    for i, text in enumerate(texts):
        f = features(text)
        obs = {
            "kind": "score",
            "numeric": {n: float(getattr(f, n)) for n in NUMERIC_FEATURES},
            "flags": {n: bool(getattr(f, n)) for n in BOOLEAN_FEATURES},
            "label": label if i % 4 else "negative",
            "confidence": 0.6 + 0.3 * random.Random(1000 + i).random(),
            "tokens": 10,
            "unknown_tokens": 0,
            "model_version": VERSION,
            "t": T0 + 1.0 + i * 0.01,
        }
        out.append(json.dumps(obs).encode())
    return out


def _tick(t: float) -> bytes:
    return json.dumps({"kind": "tick", "t": t}).encode()


SHIFTED = [
    "PRODUK INI SANGAT MENGECEWAKAN!!! pengiriman lama sekali, barang rusak, "
    f"kemasan penyok, penjual tidak responsif, nomor pesanan {i} https://toko.id/{i} 😡😡"
    for i in range(120)
]


def _labels(n: int) -> list[bytes]:
    """``n`` feedback outcomes (right) for the serving version, in the window of T0."""
    return [
        json.dumps(
            {"kind": "feedback", "correct": True, "model_version": VERSION, "t": T0 + 2.0}
        ).encode()
        for _ in range(n)
    ]


def test_a_shifted_window_is_reported_as_drift_and_fires_a_retrain_request(
    predictor: OnnxPredictor,
) -> None:
    store = MemoryLoopStore({})
    app = make_app(predictor, store)
    shifted = SHIFTED

    async def scenario(agent: Any, subs: dict[str, Any]) -> None:
        # new labels for the champion: the drift is worth a retrain
        for value in _window_observations(shifted, "negative") + _labels(100):
            await agent.put(value, key=b"drift")
        await agent.put(_tick(T0 + WINDOW_S - 1.0), key=b"drift")  # not due: nothing yet
        await agent.put(_tick(T0 + WINDOW_S + 2.0), key=b"drift")  # end + grace passed
        (out,) = await take(subs[topics.DRIFT_REPORTS], 1)
        report = decode(out.value, DriftReport)
        assert report.n_events == len(shifted) and report.drifted
        assert report.window_start == datetime.fromtimestamp(T0, UTC)
        assert report.drift_score > 0.3
        assert {"feature.char_count", "feature.has_url"} <= {
            s.name for s in report.signals if s.drifted
        }
        (req,) = await take(subs[topics.RETRAIN_REQUESTS], 1)
        request = decode(req.value, RetrainRequested)
        assert "drift" in request.reasons and request.model_version == VERSION
        assert request.dedupe_key == f"{VERSION}:{int(T0 + WINDOW_S)}"
        assert subs[topics.DRIFT_REPORTS].empty()

    run(app, "drift_windows", scenario)
    assert [r.report_id for r in store.reports] and store.reports[0].drifted


def test_an_unshifted_window_gives_a_report_without_drift_and_no_request(
    predictor: OnnxPredictor,
) -> None:
    store = MemoryLoopStore({})
    app = make_app(predictor, store)
    texts = [t for t, _ in reference_texts()][:200]
    random.Random(3).shuffle(texts)

    async def scenario(agent: Any, subs: dict[str, Any]) -> None:
        for value in _window_observations(texts):
            await agent.put(value, key=b"drift")
        await agent.put(_tick(T0 + WINDOW_S + 2.0), key=b"drift")
        (out,) = await take(subs[topics.DRIFT_REPORTS], 1)
        report = decode(out.value, DriftReport)
        assert report.n_events == len(texts)
        assert not [s.name for s in report.signals if s.drifted and s.name.startswith("feature")]
        await asyncio.sleep(0.2)
        assert subs[topics.RETRAIN_REQUESTS].empty()

    run(app, "drift_windows", scenario)


def test_a_window_under_min_events_gives_no_verdict(predictor: OnnxPredictor) -> None:
    store = MemoryLoopStore({})
    app = make_app(predictor, store)

    async def scenario(agent: Any, subs: dict[str, Any]) -> None:
        for value in _window_observations(["bagus"] * 10):
            await agent.put(value, key=b"drift")
        await agent.put(_tick(T0 + WINDOW_S + 2.0), key=b"drift")
        await asyncio.sleep(0.3)
        assert subs[topics.DRIFT_REPORTS].empty()

    run(app, "drift_windows", scenario)
    assert store.reports == []
    registry = app.deps.metrics.registry
    assert registry.get_sample_value("ulasan_drift_windows_total", {"outcome": "too_few"}) == 1.0


def test_batched_observations_fill_the_window_like_single_ones_and_bad_ones_are_counted(
    predictor: OnnxPredictor,
) -> None:
    store = MemoryLoopStore({})
    app = make_app(predictor, store)
    texts = [t for t, _ in reference_texts()][:150]
    items = [json.loads(v) for v in _window_observations(texts)]

    async def scenario(agent: Any, subs: dict[str, Any]) -> None:
        await agent.put(json.dumps({"kind": "batch", "items": items[:100]}).encode(), key=b"drift")
        await agent.put(b"{not json", key=b"drift")  # undecodable: counted, the stream goes on
        await agent.put(
            json.dumps({"kind": "batch", "items": [{"kind": "?"}]}).encode(), key=b"drift"
        )
        for item in items[100:]:
            await agent.put(json.dumps(item).encode(), key=b"drift")
        await agent.put(_tick(T0 + WINDOW_S + 2.0), key=b"drift")
        (out,) = await take(subs[topics.DRIFT_REPORTS], 1)
        assert decode(out.value, DriftReport).n_events == len(texts)

    run(app, "drift_windows", scenario)
    registry = app.deps.metrics.registry
    assert (
        registry.get_sample_value(
            "ulasan_stream_errors_total", {"stage": "drift", "reason": "bad_observation"}
        )
        == 2.0
    )


def test_a_shifted_window_without_new_labels_is_an_alert_only(predictor: OnnxPredictor) -> None:
    store = MemoryLoopStore({})
    app = make_app(predictor, store)

    async def scenario(agent: Any, subs: dict[str, Any]) -> None:
        for value in _window_observations(SHIFTED, "negative") + _labels(99):
            await agent.put(value, key=b"drift")
        await agent.put(_tick(T0 + WINDOW_S + 2.0), key=b"drift")
        (out,) = await take(subs[topics.DRIFT_REPORTS], 1)
        assert decode(out.value, DriftReport).drifted
        await asyncio.sleep(0.2)
        assert subs[topics.RETRAIN_REQUESTS].empty()

    run(app, "drift_windows", scenario)
    registry = app.deps.metrics.registry
    assert registry.get_sample_value("ulasan_drift_alerts_total", {"kind": "unlabelled"}) == 1.0
    assert registry.get_sample_value("ulasan_retrain_requests_total", {"reason": "drift"}) is None


def test_a_quiet_stream_retrains_its_30_day_old_champion_on_the_timer(
    predictor: OnnxPredictor,
) -> None:
    app = make_app(predictor, MemoryLoopStore({}))
    trained = T0 - 86400.0  # make_reference's created_at

    async def scenario(agent: Any, subs: dict[str, Any]) -> None:
        # no observation at all: only the timer's ticks reach the windows agent
        await agent.put(_tick(trained + 29 * 86400.0), key=b"drift")
        await asyncio.sleep(0.2)
        assert subs[topics.RETRAIN_REQUESTS].empty()
        await agent.put(_tick(trained + 30 * 86400.0), key=b"drift")  # a check is due
        (req,) = await take(subs[topics.RETRAIN_REQUESTS], 1)
        request = decode(req.value, RetrainRequested)
        assert request.reasons == ["time"] and request.model_version == VERSION
        await agent.put(_tick(trained + 30 * 86400.0 + 1.0), key=b"drift")  # not due yet
        await asyncio.sleep(0.2)
        assert subs[topics.RETRAIN_REQUESTS].empty()

    run(app, "drift_windows", scenario)
    assert subs_empty(app)


def subs_empty(app: WorkerApp) -> bool:
    """No drift report was made (no window ever closed)."""
    registry = app.deps.metrics.registry
    return registry.get_sample_value("ulasan_drift_windows_total", {"outcome": "reported"}) is None
