"""The HTTP face of the gateway (FastAPI): routes, input models, auth, metrics, error mapping.

``build_http_app(core, guard, audit)`` returns the ASGI app; the runner (``server.py``) starts
the core and serves it with uvicorn. Every error has the same body: ``{"error": {"code",
"message"}}`` plus ``detail`` (the items, each naming the field) for 422.

A request passes the gate (:class:`_Gate`) before any route sees it: the caller is
authenticated and rate-limited from the headers alone, then the body is streamed in up to
``max_body_bytes`` (413 as soon as it would pass the limit, or at once when Content-Length
says so) within ``body_timeout_s`` (408), and checked to be UTF-8. An unauthenticated caller
never gets a byte of its body read. Messages say what failed in the caller's terms: no
exception texts, broker addresses or registry URLs.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictStr,
    ValidationInfo,
    field_validator,
    model_validator,
)
from starlette.exceptions import HTTPException as StarletteHTTPException

from producers.gateway.core import GatewayCore, Prediction
from producers.gateway.errors import (
    GatewayError,
    InvalidInput,
    PayloadTooLarge,
    RequestTimeout,
    Unauthenticated,
)
from producers.gateway.security import AuditLog, AuthFailed, Guard, Principal
from producers.gateway.validation import check_identifier, check_text
from schemas.events import MAX_BATCH_TEXTS, MAX_TEXT_CHARS, SentimentScored

log = logging.getLogger(__name__)

PROTOCOL = "http"
DOCS_ROUTES = frozenset({"/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"})
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
Label = Literal["negative", "neutral", "positive"]
TextField = Annotated[StrictStr, Field(min_length=1, max_length=MAX_TEXT_CHARS)]


class PredictIn(BaseModel):
    """One text to score."""

    model_config = ConfigDict(extra="forbid")
    text: TextField = Field(description=f"1 to {MAX_TEXT_CHARS} characters, not only whitespace")

    @field_validator("text")
    @classmethod
    def _text(cls, value: str) -> str:
        return _rule(value)


class PredictBatchIn(BaseModel):
    """Up to 100 texts scored in one request."""

    model_config = ConfigDict(extra="forbid")
    texts: list[TextField] = Field(min_length=1, max_length=MAX_BATCH_TEXTS)

    @field_validator("texts")
    @classmethod
    def _texts(cls, values: list[str]) -> list[str]:
        for i, value in enumerate(values):
            try:
                check_text(value, f"texts[{i}]")
            except InvalidInput as exc:
                raise ValueError(str(exc)) from None
        return values


class FeedbackIn(BaseModel):
    """A human label for a review (``review_id``) or for a gateway request (``request_id``)."""

    model_config = ConfigDict(extra="forbid")
    review_id: Annotated[StrictStr, Field(min_length=1, max_length=256)] | None = None
    request_id: Annotated[StrictStr, Field(min_length=1, max_length=256)] | None = None
    label: Label

    @field_validator("review_id", "request_id")
    @classmethod
    def _storable(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        try:
            return check_identifier(value, str(info.field_name))
        except InvalidInput as exc:
            raise ValueError(exc.detail) from None

    @model_validator(mode="after")
    def _one(self) -> FeedbackIn:
        if (self.review_id is None) == (self.request_id is None):
            raise ValueError("give exactly one of review_id and request_id")
        return self


class Scored(BaseModel):
    index: int
    label: Label
    confidence: float
    probabilities: dict[str, float]
    model_name: str
    model_version: str
    inference_ms: float
    queue_ms: float


class PredictOut(BaseModel):
    request_id: str
    latency_ms: float
    prediction: Scored


class PredictBatchOut(BaseModel):
    request_id: str
    latency_ms: float
    predictions: list[Scored]


class FeedbackOut(BaseModel):
    feedback_id: str
    review_id: str
    label: Label
    source: str


def _rule(value: str) -> str:
    try:
        return check_text(value)
    except InvalidInput as exc:
        raise ValueError(exc.detail) from None


def scored_json(event: SentimentScored) -> dict[str, Any]:
    """The ``Scored`` body of one reply as plain JSON values (no model instance)."""
    return {
        "index": event.index,
        "label": event.label,
        "confidence": event.confidence,
        "probabilities": dict(event.probabilities),
        "model_name": event.model_name,
        "model_version": event.model_version,
        "inference_ms": event.timings.inference_ms,
        "queue_ms": event.timings.queue_ms,
    }


def _json(body: dict[str, Any]) -> Response:
    return Response(
        json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8"),
        media_type="application/json",
    )


def _error(status: int, code: str, message: str, **extra: Any) -> JSONResponse:
    headers = extra.pop("headers", None)
    return JSONResponse(
        {"error": {"code": code, "message": message}, **extra}, status_code=status, headers=headers
    )


def error_response(exc: GatewayError) -> JSONResponse:
    """The JSON answer of a gateway error (Retry-After on 429, the field on 422)."""
    headers = None
    retry = getattr(exc, "retry_after_s", None)
    if retry is not None:
        headers = {"Retry-After": str(max(1, math.ceil(retry)))}
    extra: dict[str, Any] = {}
    if isinstance(exc, InvalidInput):
        extra["detail"] = [{"field": exc.field, "msg": exc.detail}]
    if isinstance(exc, Unauthenticated):
        headers = {"WWW-Authenticate": 'Bearer realm="ulasan"'}
    return _error(exc.http_status, exc.reason, str(exc), headers=headers, **extra)


def open_routes(core: GatewayCore) -> frozenset[str]:
    """Routes that need no API key: liveness; /metrics unless auth is on or it has its own
    port; the docs when they are served."""
    cfg = core.cfg
    routes = {"/health"}
    if not cfg.auth_required and cfg.metrics_port is None:
        routes.add("/metrics")
    if cfg.docs_on:
        routes |= DOCS_ROUTES
    return frozenset(routes)


def _field(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p != "body"]
    out = ""
    for p in parts:
        out += f"[{p}]" if p.isdigit() else (f".{p}" if out else p)
    return out or "body"


#: ``scope["state"]`` keys: when the request reached the app (epoch s), and a route's answer
T_IN, PREDICTION = "hops_t_in", "hops_prediction"


class _Metrics:
    """Pure ASGI middleware: counts, latency per route template, requests in flight, and the
    hops of an answered prediction (the route leaves it in ``scope["state"]``)."""

    def __init__(self, app: Any, core: GatewayCore) -> None:
        self.app = app
        self.metrics = core.metrics
        self.hops = core.hops

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = {"code": 500}

        async def capture(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                status["started"] = 1
            await send(message)

        gauge = self.metrics.in_flight.labels(PROTOCOL)
        gauge.inc()
        started = time.perf_counter()
        state = scope.setdefault("state", {})
        state[T_IN] = time.time()
        try:
            await self.app(scope, receive, capture)
        except Exception as exc:  # noqa: BLE001 - answered and logged without its text
            error_id = uuid.uuid4().hex[:12]
            log.error(
                "unexpected %s answering %s (error id %s)",
                type(exc).__name__,
                scope.get("path"),
                error_id,
            )
            log.debug("error id %s", error_id, exc_info=True)
            if not status.get("started"):
                message = f"internal error (id {error_id}); the gateway logged it, try again"
                await _error(500, "internal", message)(scope, receive, capture)
        finally:
            answered = state.get(PREDICTION)
            if isinstance(answered, Prediction):
                self.hops.record(PROTOCOL, state[T_IN], answered.trace, time.time())
            gauge.dec()
            route = scope.get("route")
            path = getattr(route, "path", None) or "unmatched"
            code = status["code"]
            self.metrics.observe(path, PROTOCOL, str(code), time.perf_counter() - started)
            if code >= 400:
                self.metrics.errors.labels(path, str(code), PROTOCOL).inc()


class _Gate:
    """Pure ASGI middleware: authentication and rate limit from the headers, then the body,
    bounded in size and time, checked to be UTF-8 and handed on (see the module docstring)."""

    def __init__(self, app: Any, core: GatewayCore, guard: Guard, audit: AuditLog) -> None:
        self.app = app
        self.guard = guard
        self.audit = audit
        self.open = open_routes(core)
        self.max_body = core.cfg.max_body_bytes
        self.body_timeout_s = core.cfg.body_timeout_s

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            if scope["path"] not in self.open:
                who = await self._admit(scope)
                scope.setdefault("state", {})["principal"] = who
            if scope.get("method") in BODY_METHODS:
                receive = _replay(await self._body(scope, receive))
        except GatewayError as exc:
            await error_response(exc)(scope, receive, send)
            return
        await self.app(scope, receive, send)

    async def _admit(self, scope: dict[str, Any]) -> Principal:
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        secret = headers.get("x-api-key")
        auth = headers.get("authorization", "")
        if not secret and auth.lower().startswith("bearer "):
            secret = auth[7:].strip()
        client = scope.get("client")
        address = str(client[0]) if client else ""
        try:
            who = self.guard.authenticate(secret, address)
        except AuthFailed as exc:
            await self.audit.auth_failed(exc, PROTOCOL)
            raise
        self.guard.limit(who)
        return who

    async def _body(self, scope: dict[str, Any], receive: Any) -> bytes:
        """The whole body: 413 before more than ``max_body`` bytes are read, 408 when it takes
        longer than ``body_timeout_s``, 422 when it is not UTF-8."""
        for name, value in scope["headers"]:
            declared = name.lower() == b"content-length" and value.isdigit()
            if declared and int(value) > self.max_body:
                raise PayloadTooLarge(self._too_large(int(value)))
        try:
            async with asyncio.timeout(self.body_timeout_s):
                body = await _read_limited(receive, self.max_body)
        except TimeoutError:
            raise RequestTimeout(
                f"the body did not arrive within {self.body_timeout_s:g} s; send it at once"
            ) from None
        if body is None:
            raise PayloadTooLarge(self._too_large(None))
        try:
            body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidInput(
                "body", f"the body is not valid UTF-8 (byte {exc.start}); send UTF-8 encoded JSON"
            ) from None
        return body

    def _too_large(self, size: int | None) -> str:
        got = f"{size} bytes" if size is not None else "more"
        return (
            f"the body has {got}, more than the limit of {self.max_body} bytes: send at most "
            f"{MAX_BATCH_TEXTS} texts of at most {MAX_TEXT_CHARS} characters"
        )


async def _read_limited(receive: Any, limit: int) -> bytes | None:
    """The request body from ``receive``, or None once it passes ``limit`` bytes (the rest is
    never read)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes) -> Any:
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return {"type": "http.disconnect"}

    return receive


def build_http_app(core: GatewayCore, guard: Guard, audit: AuditLog) -> FastAPI:
    """The FastAPI app of one gateway (the core is started and stopped by the caller)."""
    docs = core.cfg.docs_on
    app = FastAPI(
        title="ulasan gateway",
        version="1",
        description="Indonesian review sentiment, scored through the ulasan stream.",
        docs_url="/docs" if docs else None,
        redoc_url="/redoc" if docs else None,
        openapi_url="/openapi.json" if docs else None,
    )
    caller = _caller()
    _add_error_handlers(app)
    _add_service_routes(app, core, guard, caller)
    _add_prediction_routes(app, core, caller)
    _add_model_routes(app, core, guard, audit, caller)
    app.add_middleware(_Gate, core=core, guard=guard, audit=audit)
    cors = core.cfg.cors_origins
    if cors:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=cors,
            allow_methods=["GET", "POST"],
            allow_headers=["content-type", "x-api-key", "authorization"],
        )
    app.add_middleware(_Metrics, core=core)
    return app


Caller = Callable[[Request], Awaitable[Principal]]


def _caller() -> Caller:
    """The dependency that hands a guarded route the caller the gate admitted."""

    async def caller(request: Request) -> Principal:
        who = request.scope.get("state", {}).get("principal")
        if not isinstance(who, Principal):  # a route the gate treats as open: a bug
            raise Unauthenticated("this route needs an API key")
        return who

    return caller


def _add_error_handlers(app: FastAPI) -> None:
    """Every error answers ``{"error": {"code", "message"}}`` (plus ``detail`` for 422)."""

    @app.exception_handler(GatewayError)
    async def _gateway_error(request: Request, exc: GatewayError) -> JSONResponse:
        return error_response(exc)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400:  # FastAPI could not parse the body (e.g. a 5000-digit number)
            msg = "the body is not valid JSON that can be read (a number too long?)"
            return _error(
                422, "invalid_input", f"body: {msg}", detail=[{"field": "body", "msg": msg}]
            )
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return _error(exc.status_code, code, str(exc.detail), headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        items = []
        for err in exc.errors():
            msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
            field = _field(tuple(err.get("loc", ())))
            if err.get("type") == "json_invalid":
                ctx = err.get("ctx") or {}
                msg, field = f"the body is not valid JSON: {ctx.get('error', msg)}", "body"
            items.append({"field": field, "msg": msg})
        message = "; ".join(f"{i['field']}: {i['msg']}" for i in items[:5])
        return _error(422, "invalid_input", message, detail=items)


def _add_service_routes(app: FastAPI, core: GatewayCore, guard: Guard, caller: Caller) -> None:
    """Service information, liveness, readiness, metrics and statistics."""

    @app.get("/", summary="Service information")
    async def root(who: Principal = Depends(caller)) -> dict[str, Any]:
        return {
            **core.info(),
            "auth_required": guard.auth_required,
            "docs": "/docs" if core.cfg.docs_on else None,
            "limits": {
                "max_text_chars": MAX_TEXT_CHARS,
                "max_batch_texts": MAX_BATCH_TEXTS,
                "max_body_bytes": core.cfg.max_body_bytes,
            },
        }

    @app.get("/health", summary="Liveness: the process answers")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/ready", summary="Readiness: Kafka, workers and a served model")
    async def ready(who: Principal = Depends(caller)) -> JSONResponse:
        state = await core.readiness()
        return JSONResponse(state, status_code=200 if state["ready"] else 503)

    if core.cfg.metrics_port is None:  # else served on its own port (server.py)

        @app.get("/metrics", summary="Prometheus metrics", response_class=Response)
        async def metrics() -> Response:
            body = generate_latest(core.metrics.registry)
            return Response(body, media_type=CONTENT_TYPE_LATEST)

    @app.get("/stats", summary="Counts, latency percentiles and label distribution")
    async def stats(who: Principal = Depends(caller)) -> dict[str, Any]:
        return core.stats.snapshot()

    @app.get("/debug/hops", summary="Per-hop timings of the last answered predictions (ms)")
    async def debug_hops(after: int = 0, who: Principal = Depends(caller)) -> dict[str, Any]:
        """The hop ring (producers/gateway/hops.py) from sequence number ``after`` on."""
        return core.hops.since(max(0, after))


def _add_prediction_routes(app: FastAPI, core: GatewayCore, caller: Caller) -> None:
    """Scoring one text or a batch, and human feedback."""

    # The prediction routes answer with JSON bytes built straight from the replies: the
    # response models document the body (OpenAPI) without a validation pass per request.
    @app.post("/predict", summary="Score one text", responses=_ERRORS, response_model=PredictOut)
    async def predict(
        body: PredictIn, request: Request, who: Principal = Depends(caller)
    ) -> Response:
        result: Prediction = await core.predict([body.text])
        request.scope.setdefault("state", {})[PREDICTION] = result
        return _json(
            {
                "request_id": result.request_id,
                "latency_ms": result.latency_ms,
                "prediction": scored_json(result.results[0]),
            }
        )

    @app.post(
        "/predict/batch",
        summary="Score up to 100 texts",
        responses=_ERRORS,
        response_model=PredictBatchOut,
    )
    async def predict_batch(
        body: PredictBatchIn, request: Request, who: Principal = Depends(caller)
    ) -> Response:
        result = await core.predict(list(body.texts))
        request.scope.setdefault("state", {})[PREDICTION] = result
        return _json(
            {
                "request_id": result.request_id,
                "latency_ms": result.latency_ms,
                "predictions": [scored_json(r) for r in result.results],
            }
        )

    @app.post("/feedback", summary="A human label (publishes LabelFeedback, source=human)")
    async def feedback(body: FeedbackIn, who: Principal = Depends(caller)) -> FeedbackOut:
        event = await core.feedback(
            label=body.label, review_id=body.review_id, request_id=body.request_id
        )
        return FeedbackOut(
            feedback_id=event.feedback_id,
            review_id=event.review_id,
            label=event.label,
            source=event.source,
        )


def _add_model_routes(
    app: FastAPI, core: GatewayCore, guard: Guard, audit: AuditLog, caller: Caller
) -> None:
    """The served model, and the admin's forced reload (audited)."""

    @app.get("/model/info", summary="The model workers serve and the registry's champion")
    async def model_info(who: Principal = Depends(caller)) -> dict[str, Any]:
        return await core.model_info()

    @app.post("/model/reload", summary="Force workers to reload the champion (admin)")
    async def model_reload(who: Principal = Depends(caller)) -> dict[str, Any]:
        try:
            guard.require_admin(who)
            event = await core.announce_reload()
        except GatewayError as exc:
            await audit.record(who, "model.reload", "refused", error=str(exc))
            raise
        await audit.record(
            who, "model.reload", "announced", model=event.model_name, version=event.version
        )
        return {
            "announced": True,
            "topic": core.updates_topic,
            "model_name": event.model_name,
            "version": event.version,
            "alias": event.alias,
            "previous_serving_version": event.previous_version,
        }


_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "API key missing or not valid (when auth is on)"},
    408: {"description": "the body did not arrive in time"},
    413: {"description": "the body is over the size limit"},
    422: {"description": "bad input: the field and the limit are named"},
    429: {"description": "rate limit exceeded; see Retry-After"},
    503: {"description": "Kafka unavailable"},
    504: {"description": "no reply before the deadline"},
}
