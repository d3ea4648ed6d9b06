"""The typed client and the UI's pages (Streamlit's AppTest, in this process) against a live
worker and gateway: real predictions, real rows in PostgreSQL, real feedback events."""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from tests.helpers.stream_env import wait_until
from tests.helpers.ui_env import Live, feedback_rows, live_stack
from ulasan.core import client as gc

REVIEWS = 40


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    with live_stack(tmp_path_factory.mktemp("ui"), reviews=REVIEWS) as live:
        yield live


@pytest.fixture
def ui_env(live: Live, monkeypatch: pytest.MonkeyPatch) -> Live:
    """This process's ULASAN_* settings pointed at the live stack (AppTest runs in-process)."""
    for key in [k for k in os.environ if k.startswith("ULASAN_")]:
        monkeypatch.delenv(key)
    for key, value in live.ui_env().items():
        if key.startswith("ULASAN_"):
            monkeypatch.setenv(key, value)
    return live


# -- the typed client --------------------------------------------------------------------------
def test_http_client_sync_and_async(live: Live) -> None:
    with gc.GatewayClient(live.gateway.url) as gw:
        one = gw.predict("Aplikasinya bagus sekali")
        assert one.prediction.label in {"negative", "neutral", "positive"}
        assert sum(one.prediction.probabilities.values()) == pytest.approx(1.0, abs=1e-3)
        batch = gw.predict_batch(["mantap", "jelek", "biasa"])
        assert [p.index for p in batch.predictions] == [0, 1, 2]
        assert gw.model_info().serving is not None
        fb = gw.feedback("negative", review_id="rev-000003")
        assert fb.review_id == "rev-000003" and fb.label == "negative"
        with pytest.raises(gc.InvalidRequest) as bad:
            gw.predict("   ")
        assert bad.value.status == 422 and "text" in bad.value.fields
        with pytest.raises(gc.InvalidRequest):
            gw.predict_batch(["x"] * 101)

    async def run() -> gc.BatchResult:
        async with gc.AsyncGatewayClient(live.gateway.url) as agw:
            return await agw.predict_batch(["cepat", "lambat"])

    assert len(asyncio.run(run()).predictions) == 2


def test_grpc_client_sync_and_async(live: Live) -> None:
    with gc.GrpcGatewayClient(live.gateway.grpc_target) as gw:
        one = gw.predict("Pengiriman cepat")
        assert one.prediction.model_version and one.request_id
        assert len(gw.predict_batch(["a b", "c d"]).predictions) == 2
        assert gw.model_info().serving is not None
        assert gw.feedback("positive", review_id="rev-000004").label == "positive"
        with pytest.raises(gc.InvalidRequest):
            gw.predict("")

    async def run() -> gc.PredictResult:
        async with gc.AsyncGrpcGatewayClient(live.gateway.grpc_target) as agw:
            return await agw.predict("Barang sampai rusak")

    assert asyncio.run(run()).prediction.label in {"negative", "neutral", "positive"}


# -- the pages ---------------------------------------------------------------------------------
def _predict_page() -> None:
    from ui.views import predict  # noqa: PLC0415 - AppTest runs the function's source alone

    predict.page()


def test_predict_page_scores_and_explains(ui_env: Live) -> None:
    at = AppTest.from_function(_predict_page, default_timeout=60)
    at.run()
    at.text_area[0].input("Barang bagus tapi pengiriman lambat sekali")
    at.button[0].click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Label"] in {"negative", "neutral", "positive"}
    assert metrics["Model"].startswith("tiny-stream-test v")
    explain = next(b for b in at.button if b.label == "Explain")
    explain.click().run()
    assert not at.exception and not at.error
    table = at.dataframe[0].value
    # one row per word (6 words, at most 12 shown), each with its change in probability
    assert len(table) == 6 and "word" in table.columns


def _history_page() -> None:
    from ui.views import history  # noqa: PLC0415 - AppTest runs the function's source alone

    history.page()


def test_history_page_lists_and_searches(ui_env: Live) -> None:
    at = AppTest.from_function(_history_page, default_timeout=60)
    at.run()
    assert not at.exception and not at.error
    assert at.dataframe and len(at.dataframe[0].value) == 50  # one page of 50
    at.text_input[0].input("nomor 7 bagus").run()
    found = at.dataframe[0].value
    assert list(found["id"]) == ["rev-000007"]


def _analytics_page() -> None:
    from ui.views import analytics  # noqa: PLC0415 - AppTest runs the function's source alone

    analytics.page()


def test_analytics_page_draws_every_section(ui_env: Live) -> None:
    at = AppTest.from_function(_analytics_page, default_timeout=60)
    at.run()
    assert not at.exception and not at.error
    headers = [h.value for h in at.subheader]
    assert headers[:4] == [
        "Sentiment over time",
        "Label shares",
        "Confidence",
        "Rating versus prediction",
    ]
    assert "Emerging complaints" in headers


def _loop_page() -> None:
    from ui.views import loop  # noqa: PLC0415 - AppTest runs the function's source alone

    loop.page()


def test_loop_page_reads_prometheus_postgres_and_mlflow(ui_env: Live) -> None:
    at = AppTest.from_function(_loop_page, default_timeout=60)
    at.run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert [m.label for m in at.metric] == ["Reviews/s (1 min)", "Consumer lag (records)"]
    assert {"Drift reports", "Retrain runs", "Model versions"} <= {h.value for h in at.subheader}


def _label_page() -> None:
    from ui.views import label  # noqa: PLC0415 - AppTest runs the function's source alone

    label.page()


def test_label_page_publishes_human_feedback(ui_env: Live) -> None:
    at = AppTest.from_function(_label_page, default_timeout=60)
    at.run()
    assert not at.exception and not at.error
    counted = re.search(r"\*\*(\d+)\*\* labelled reviews", at.caption[0].value)
    assert counted and int(counted[1]) >= REVIEWS  # every test review has a rating
    first = next(b for b in at.button if b.label == "neutral")
    review_id = first.key.split(":")[0]
    first.click().run()
    assert not at.exception and not at.error
    assert at.success and review_id in at.success[0].value
    # the labelled review leaves this session's queue at once ...
    assert all(not b.key.startswith(review_id + ":") for b in at.button)
    # ... and the worker stores the feedback event the gateway published
    rows = wait_until(lambda: feedback_rows(ui_env.env, review_id), 60, "the feedback row")
    assert rows == [("neutral", "human")]


def _batch_page() -> None:
    from ui.views import batch  # noqa: PLC0415 - AppTest runs the function's source alone

    batch.page()


@pytest.mark.parametrize("n", [3, 120])
def test_batch_page_scores_small_and_replays_large(ui_env: Live, n: int) -> None:
    at = AppTest.from_function(_batch_page, default_timeout=120)
    at.run()
    at.text_area[0].input("\n".join(f"ulasan batch {n} nomor {i} bagus" for i in range(n))).run()
    at.button[0].click().run()
    assert not at.exception and not at.error and not at.warning, [w.value for w in at.warning]
    table = at.dataframe[-1].value
    assert len(table) == n and table["label"].notna().all()


def test_pages_name_the_service_that_is_down(
    ui_env: Live, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("ULASAN_UI__GATEWAY_URL", "http://127.0.0.1:1")
    at = AppTest.from_function(_predict_page, default_timeout=30)
    at.run()
    at.button[0].click().run()
    assert not at.exception
    assert "the gateway" in at.error[0].value and "ulasan gateway serve" in at.info[0].value
    monkeypatch.setenv("ULASAN_POSTGRES__PORT", "1")
    at = AppTest.from_function(_history_page, default_timeout=30)
    at.run()
    assert not at.exception
    assert "PostgreSQL" in at.error[0].value and "ulasan stack up" in at.info[0].value
