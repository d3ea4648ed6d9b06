"""The gRPC face of the gateway (grpc.aio): Predict, PredictBatch, PredictStream, Feedback,
ModelInfo, plus standard health checking and (by setting) server reflection.

Limits: messages up to ``grpc_max_message_bytes`` each way, at most
``grpc_max_concurrent_rpcs`` RPCs at once (more get RESOURCE_EXHAUSTED), one rate-limit token
per PredictStream message (a stream is no way around the limit) and at most
``stream_max_in_flight`` messages of one stream being scored at once (the stream is not read
further until one is answered). The health service says SERVING only while the gateway is
ready (:func:`watch_readiness`).

Requests that protobuf cannot parse (a ``string`` that is not UTF-8) are answered with
INVALID_ARGUMENT instead of grpc's generic INTERNAL: the deserialisers wrap parse errors in
:class:`Unparsable`, which the handlers turn into a clear status.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from producers.gateway.core import GatewayCore
from producers.gateway.errors import GatewayError, InvalidInput, RateLimited
from producers.gateway.security import AuditLog, AuthFailed, Guard, Principal, peer_host
from producers.gateway.validation import check_text, check_texts
from schemas.events import SentimentScored
from ulasan.core.grpc_gen import ulasan_pb2 as pb

log = logging.getLogger(__name__)

PROTOCOL = "grpc"
SERVICE = "ulasan.v1.Gateway"


#: What a stream's scoring tasks hand to the answering loop (None: all answered).
_Answers = asyncio.Queue[pb.PredictResponse | GatewayError | None]


class Unparsable:
    """A request message protobuf refused; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        self.reason = reason


def _parser(message: Any) -> Callable[[bytes], Any]:
    def parse(data: bytes) -> Any:
        try:
            return message.FromString(data)
        except Exception as exc:  # protobuf's DecodeError and friends; their text stays here
            if "utf-8" in str(exc).lower():
                return Unparsable(f"a string field of the {message.__name__} is not valid UTF-8")
            return Unparsable(f"the request is not a valid {message.__name__} (truncated?)")

    return parse


def prediction(event: SentimentScored) -> pb.Prediction:
    return pb.Prediction(
        index=event.index,
        label=event.label,
        confidence=event.confidence,
        probabilities={str(k): v for k, v in event.probabilities.items()},
        model_name=event.model_name,
        model_version=event.model_version,
        inference_ms=event.timings.inference_ms,
        queue_ms=event.timings.queue_ms,
    )


class GatewayService:
    """Handlers of ``ulasan.v1.Gateway``; each checks auth and rate limits, then calls the core."""

    def __init__(self, core: GatewayCore, guard: Guard, audit: AuditLog) -> None:
        self.core = core
        self.guard = guard
        self.audit = audit
        self.stream_max_in_flight = core.cfg.stream_max_in_flight

    # -- plumbing ------------------------------------------------------------------------------
    async def _authenticate(self, context: grpc.aio.ServicerContext) -> Principal:
        metadata = dict(context.invocation_metadata() or ())
        secret = metadata.get("x-api-key")
        auth = str(metadata.get("authorization", ""))
        if not secret and auth.lower().startswith("bearer "):
            secret = auth[7:].strip()
        client = peer_host(context.peer() or "")
        try:
            return self.guard.authenticate(str(secret) if secret else None, client)
        except AuthFailed as exc:
            await self.audit.auth_failed(exc, PROTOCOL)
            raise

    async def _caller(self, context: grpc.aio.ServicerContext) -> Principal:
        who = await self._authenticate(context)
        self.guard.limit(who)
        return who

    async def _run(
        self,
        method: str,
        request: Any,
        context: grpc.aio.ServicerContext,
        body: Callable[[Any, Principal], Awaitable[Any]],
    ) -> Any:
        metrics = self.core.metrics
        route = f"/{SERVICE}/{method}"
        gauge = metrics.in_flight.labels(PROTOCOL)
        gauge.inc()
        started = time.perf_counter()
        code = "OK"
        try:
            who = await self._caller(context)
            if isinstance(request, Unparsable):
                raise InvalidInput("request", request.reason)
            return await body(request, who)
        except GatewayError as exc:
            code = exc.grpc_code
            metrics.errors.labels(route, exc.reason, PROTOCOL).inc()
            await _abort(context, exc)
        except Exception as exc:  # noqa: BLE001 - answered and logged without its text
            code = "INTERNAL"
            metrics.errors.labels(route, "internal", PROTOCOL).inc()
            await _abort_internal(context, route, exc)
        finally:
            gauge.dec()
            metrics.observe(route, PROTOCOL, code, time.perf_counter() - started)

    async def _stream_pump(
        self,
        who: Principal,
        requests: AsyncIterator[Any],
        out: _Answers,
        tasks: set[asyncio.Task[None]],
    ) -> None:
        """Send each streamed text as soon as it arrives (one rate-limit token each, at most
        ``stream_max_in_flight`` at once); ``None`` once every answer is in, or the error that
        ends the stream once the messages before it are answered."""
        slots = asyncio.Semaphore(self.stream_max_in_flight)
        end: GatewayError | None = None
        n = 0
        try:
            async for req in requests:
                try:
                    self.guard.limit(who)
                except RateLimited as exc:
                    end = RateLimited(f"message {n}: {exc}", exc.retry_after_s)
                    break
                await slots.acquire()
                task = asyncio.create_task(self._stream_one(n, req, out))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                task.add_done_callback(lambda _: slots.release())
                n += 1
        except Exception as exc:  # noqa: BLE001 - reading the stream failed: end it, say so
            log.warning("reading a PredictStream failed (%s)", type(exc).__name__)
            end = GatewayError(f"reading the stream failed after message {n}; open a new one")
        while tasks:
            await asyncio.gather(*list(tasks))
        await out.put(end)

    async def _stream_one(self, n: int, req: Any, out: _Answers) -> None:
        """Score message ``n`` of a stream; its answer or its error goes to ``out``."""
        try:
            if isinstance(req, Unparsable):
                raise InvalidInput(f"message {n}", req.reason)
            text = check_text(req.text, f"message {n}: text")
            result = await self.core.predict([text])
            await out.put(
                pb.PredictResponse(
                    request_id=result.request_id,
                    prediction=prediction(result.results[0]),
                    latency_ms=result.latency_ms,
                    id=req.id,
                )
            )
        except GatewayError as exc:
            await out.put(exc)

    # -- operations ----------------------------------------------------------------------------
    async def Predict(self, request: Any, context: grpc.aio.ServicerContext) -> pb.PredictResponse:  # noqa: N802
        t_in = time.time()

        async def body(req: pb.PredictRequest, who: Principal) -> pb.PredictResponse:
            result = await self.core.predict([check_text(req.text, "text")])
            response = pb.PredictResponse(
                request_id=result.request_id,
                prediction=prediction(result.results[0]),
                latency_ms=result.latency_ms,
                id=req.id,
            )
            self.core.hops.record(PROTOCOL, t_in, result.trace, time.time())
            return response

        return await self._run("Predict", request, context, body)  # type: ignore[no-any-return]

    async def PredictBatch(  # noqa: N802
        self, request: Any, context: grpc.aio.ServicerContext
    ) -> pb.PredictBatchResponse:
        t_in = time.time()

        async def body(req: pb.PredictBatchRequest, who: Principal) -> pb.PredictBatchResponse:
            result = await self.core.predict(check_texts(list(req.texts), "texts"))
            response = pb.PredictBatchResponse(
                request_id=result.request_id,
                predictions=[prediction(r) for r in result.results],
                latency_ms=result.latency_ms,
            )
            self.core.hops.record(PROTOCOL, t_in, result.trace, time.time())
            return response

        return await self._run("PredictBatch", request, context, body)  # type: ignore[no-any-return]

    async def PredictStream(  # noqa: N802
        self, requests: AsyncIterator[Any], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.PredictResponse]:
        """Each text is sent as its own request at once; answers are yielded as they come.
        A bad text or a missed deadline ends the stream with its status (naming the item)."""
        route = f"/{SERVICE}/PredictStream"
        metrics = self.core.metrics
        try:
            who = await self._authenticate(context)  # the messages take the tokens
        except GatewayError as exc:
            metrics.observe(route, PROTOCOL, exc.grpc_code, 0.0)
            await _abort(context, exc)
        await context.send_initial_metadata(())  # the stream is accepted
        out: _Answers = asyncio.Queue()
        tasks: set[asyncio.Task[None]] = set()
        started = time.perf_counter()
        feeder = asyncio.create_task(self._stream_pump(who, requests, out, tasks))
        code = "OK"
        try:
            while True:
                item = await out.get()
                if item is None:
                    break
                if isinstance(item, GatewayError):
                    code = item.grpc_code
                    metrics.errors.labels(route, item.reason, PROTOCOL).inc()
                    await _abort(context, item)
                else:
                    yield item
        finally:
            feeder.cancel()
            for task in list(tasks):
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await feeder
            metrics.observe(route, PROTOCOL, code, time.perf_counter() - started)

    async def Feedback(  # noqa: N802
        self, request: Any, context: grpc.aio.ServicerContext
    ) -> pb.FeedbackResponse:
        async def body(req: pb.FeedbackRequest, who: Principal) -> pb.FeedbackResponse:
            which = req.WhichOneof("subject")
            event = await self.core.feedback(
                label=req.label,
                review_id=req.review_id if which == "review_id" else None,
                request_id=req.request_id if which == "request_id" else None,
            )
            return pb.FeedbackResponse(
                feedback_id=event.feedback_id, review_id=event.review_id, label=event.label
            )

        return await self._run("Feedback", request, context, body)  # type: ignore[no-any-return]

    async def ModelInfo(  # noqa: N802
        self, request: Any, context: grpc.aio.ServicerContext
    ) -> pb.ModelInfoResponse:
        async def body(req: pb.ModelInfoRequest, who: Principal) -> pb.ModelInfoResponse:
            info = await self.core.model_info()
            serving = info["serving"] or {}
            registry = info["registry"]
            return pb.ModelInfoResponse(
                model_name=serving.get("model_name", ""),
                model_version=serving.get("model_version", ""),
                seen_at=serving.get("seen_at", ""),
                registry_name=registry.get("name", ""),
                registry_alias=registry.get("alias", ""),
                registry_version=registry.get("version", ""),
                registry_error=registry.get("error", ""),
            )

        return await self._run("ModelInfo", request, context, body)  # type: ignore[no-any-return]


async def _abort(context: grpc.aio.ServicerContext, exc: GatewayError) -> None:
    retry = getattr(exc, "retry_after_s", None)
    if retry is not None:
        context.set_trailing_metadata((("retry-after", str(max(1, round(retry + 0.5)))),))
    await context.abort(getattr(grpc.StatusCode, exc.grpc_code), str(exc))


async def _abort_internal(context: grpc.aio.ServicerContext, route: str, exc: Exception) -> None:
    error_id = uuid.uuid4().hex[:12]
    log.error("unexpected %s answering %s (error id %s)", type(exc).__name__, route, error_id)
    log.debug("error id %s", error_id, exc_info=True)
    message = f"internal error (id {error_id}); the gateway logged it, try again"
    await context.abort(grpc.StatusCode.INTERNAL, message)


def _handlers(service: GatewayService) -> grpc.GenericRpcHandler:
    def unary(fn: Any, req: Any, resp: Any) -> grpc.RpcMethodHandler:
        return grpc.unary_unary_rpc_method_handler(
            fn, request_deserializer=_parser(req), response_serializer=resp.SerializeToString
        )

    return grpc.method_handlers_generic_handler(
        SERVICE,
        {
            "Predict": unary(service.Predict, pb.PredictRequest, pb.PredictResponse),
            "PredictBatch": unary(
                service.PredictBatch, pb.PredictBatchRequest, pb.PredictBatchResponse
            ),
            "PredictStream": grpc.stream_stream_rpc_method_handler(
                service.PredictStream,
                request_deserializer=_parser(pb.PredictRequest),
                response_serializer=pb.PredictResponse.SerializeToString,
            ),
            "Feedback": unary(service.Feedback, pb.FeedbackRequest, pb.FeedbackResponse),
            "ModelInfo": unary(service.ModelInfo, pb.ModelInfoRequest, pb.ModelInfoResponse),
        },
    )


def build_grpc_server(
    core: GatewayCore,
    guard: Guard,
    audit: AuditLog,
    *,
    address: str,
    credentials: grpc.ServerCredentials | None = None,
) -> tuple[grpc.aio.Server, health.aio.HealthServicer, int]:
    """A grpc.aio server with the gateway and health services (and reflection, when the
    settings turn it on) bound to ``address`` with the limits of ``core.cfg`` (not started);
    returns it, its health servicer and the bound port."""
    cfg = core.cfg
    server = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", cfg.grpc_max_message_bytes),
            ("grpc.max_send_message_length", cfg.grpc_max_message_bytes),
        ],
        maximum_concurrent_rpcs=cfg.grpc_max_concurrent_rpcs,
    )
    server.add_generic_rpc_handlers((_handlers(GatewayService(core, guard, audit)),))
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    if cfg.reflection_on:
        names = (
            SERVICE,
            health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
            reflection.SERVICE_NAME,
        )
        reflection.enable_server_reflection(names, server)
    if credentials is not None:
        port = server.add_secure_port(address, credentials)
    else:
        port = server.add_insecure_port(address)
    return server, health_servicer, port


async def watch_readiness(core: GatewayCore, health_servicer: Any) -> None:
    """Keep the health service's status equal to the gateway's readiness, re-checked every
    ``health_interval_s`` (NOT_SERVING until the first check passes); runs until cancelled."""
    await set_serving(health_servicer, False)
    while True:
        try:
            ready = bool((await core.readiness())["ready"])
        except Exception as exc:  # noqa: BLE001 - a failed check means "not ready", keep watching
            log.warning("readiness check failed (%s)", type(exc).__name__)
            ready = False
        await set_serving(health_servicer, ready)
        await asyncio.sleep(core.cfg.health_interval_s)


async def set_serving(health_servicer: Any, serving: bool) -> None:
    status = (
        health_pb2.HealthCheckResponse.SERVING
        if serving
        else health_pb2.HealthCheckResponse.NOT_SERVING
    )
    for name in ("", SERVICE):
        await health_servicer.set(name, status)
