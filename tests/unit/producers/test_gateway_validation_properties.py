"""Property tests of the gateway's request validators (hypothesis; schemathesis covers the live
API in tests/integration): the HTTP models and the shared rules (gRPC) accept exactly the same
texts, whatever they accept can be stored (no NUL, valid UTF-8), and no body makes a 500."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from producers.gateway.errors import InvalidInput
from producers.gateway.http import FeedbackIn, PredictBatchIn, PredictIn
from producers.gateway.server import Gateway
from producers.gateway.settings import GatewayConfig, GatewaySettings
from producers.gateway.validation import check_subject, check_text, check_texts
from schemas.events import MAX_TEXT_CHARS

ANY_CHAR = st.characters(codec=None)  # surrogates and NUL included
TEXTS = st.one_of(
    st.text(ANY_CHAR, max_size=60),
    st.text(st.sampled_from(" \t\n\x00a\ud800"), max_size=8),
    st.integers(MAX_TEXT_CHARS - 2, MAX_TEXT_CHARS + 2).map(lambda n: "a" * n),
)


def accepted(fn: Any, *args: Any) -> bool:
    try:
        fn(*args)
    except (InvalidInput, ValidationError):
        return False
    return True


@given(text=TEXTS)
def test_http_and_grpc_accept_the_same_texts(text: str) -> None:
    shared = accepted(check_text, text)
    assert accepted(lambda t: PredictIn(text=t), text) == shared
    assert accepted(lambda t: PredictBatchIn(texts=["ok", t]), text) == shared
    assert accepted(check_texts, ["ok", text]) == shared


@given(text=TEXTS)
def test_an_accepted_text_can_be_stored(text: str) -> None:
    if accepted(check_text, text):
        assert "\x00" not in text and text.strip()
        assert len(text) <= MAX_TEXT_CHARS
        text.encode("utf-8")  # no lone surrogate
    else:
        with pytest.raises(InvalidInput) as info:
            check_text(text)
        assert info.value.field == "text" and info.value.detail


@given(review_id=TEXTS, label=st.sampled_from(["negative", "neutral", "positive"]))
def test_an_accepted_review_id_can_be_stored(review_id: str, label: str) -> None:
    http = accepted(lambda r: FeedbackIn(review_id=r, label=label), review_id)  # type: ignore[arg-type]
    shared = accepted(check_subject, review_id, None)
    assert http == shared
    if shared:
        assert "\x00" not in review_id and 1 <= len(review_id) <= 256
        review_id.encode("utf-8")


JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(ANY_CHAR.filter(lambda c: not "\ud800" <= c <= "\udfff"), max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
BODIES = st.one_of(
    JSON.map(lambda v: json.dumps(v).encode()),
    st.fixed_dictionaries({"text": JSON}).map(lambda v: json.dumps(v).encode()),
    st.fixed_dictionaries({"texts": JSON}).map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=80),
    # number literals, some past Python's 4300-digit int limit
    st.integers(1, 6000).map(lambda n: b'{"text": ' + b"7" * n + b"}"),
)


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Gateway:
    tmp = tmp_path_factory.mktemp("gw")
    return Gateway.build(
        GatewaySettings(state_dir=tmp, gateway=GatewayConfig(audit_log=tmp / "a.jsonl"))
    )


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(route=st.sampled_from(["/predict", "/predict/batch", "/feedback"]), body=BODIES)
def test_no_body_makes_a_server_error(gw: Gateway, route: str, body: bytes) -> None:
    async def post() -> httpx.Response:
        transport = httpx.ASGITransport(app=gw.http_app, client=("10.0.0.1", 1))
        async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
            return await client.post(
                route, content=body, headers={"content-type": "application/json"}
            )

    resp = asyncio.run(post())
    # 503: valid, and Kafka is not connected in this test; 422 names what is wrong
    assert resp.status_code in (422, 503), (route, body, resp.text)
    if resp.status_code == 422:
        error = resp.json()
        assert error["error"]["code"] == "invalid_input" and error["detail"]
        assert all(item["field"] and item["msg"] for item in error["detail"])
