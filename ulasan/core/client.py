"""A typed client of the ulasan gateway: HTTP (httpx) and gRPC (the generated stub), sync and async.

```python
from ulasan.core.client import GatewayClient

with GatewayClient("http://127.0.0.1:8080") as gw:
    result = gw.predict("Aplikasinya bagus, sangat membantu!")
    print(result.prediction.label, result.prediction.confidence)
```

:class:`GatewayClient` / :class:`AsyncGatewayClient` speak HTTP, :class:`GrpcGatewayClient` /
:class:`AsyncGrpcGatewayClient` gRPC; all four return the same pydantic results and raise the
same errors, each a :class:`ClientError` whose message says what to do next:
:class:`GatewayUnreachable` (nothing answers at the address), :class:`InvalidRequest` (422 /
INVALID_ARGUMENT, ``fields`` names them), :class:`DeadlineExceeded` (504 / DEADLINE_EXCEEDED:
no worker answered in time), :class:`NotAllowed` (401/403), :class:`RateLimited` (429, with
``retry_after_s``), :class:`GatewayUnavailable` (503: Kafka or the registry is down) and
:class:`GatewayFailed` (anything else, or an answer that is not what the gateway promises).
"""

from __future__ import annotations

import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Generic, Literal, Self, TypeVar

import grpc
import httpx
from pydantic import BaseModel, ConfigDict, ValidationError

from ulasan.core.errors import CoreError
from ulasan.core.grpc_gen import ulasan_pb2 as pb
from ulasan.core.grpc_gen import ulasan_pb2_grpc as pb_grpc

Label = Literal["negative", "neutral", "positive"]
DEFAULT_URL = "http://127.0.0.1:8080"
DEFAULT_GRPC_TARGET = "127.0.0.1:50051"
#: how long a call waits at most (the gateway's own reply deadline is 2 s by default)
DEFAULT_TIMEOUT_S = 10.0
START_HINT = "start one with `ulasan gateway serve` (and at least one `ulasan worker`)"


# -- results ---------------------------------------------------------------------------------------
class _Result(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class Scored(_Result):
    """The score of one text: label, its probability, all three probabilities, the model."""

    index: int
    label: Label
    confidence: float
    probabilities: dict[str, float]
    model_name: str
    model_version: str
    inference_ms: float
    queue_ms: float


class PredictResult(_Result):
    """One text's answer; ``latency_ms`` is the gateway's time from request to reply."""

    request_id: str
    latency_ms: float
    prediction: Scored


class BatchResult(_Result):
    """A batch's answers, in the order of the texts sent."""

    request_id: str
    latency_ms: float
    predictions: list[Scored]


class FeedbackResult(_Result):
    """The ``LabelFeedback`` the gateway published on feedback.v1."""

    feedback_id: str
    review_id: str
    label: Label
    source: str = "human"


class ServingModel(_Result):
    model_name: str
    model_version: str
    seen_at: str


class ModelInfo(_Result):
    """The model the workers answered with (None before any answer) and the registry's
    champion (``registry_error`` when the registry cannot be reached)."""

    serving: ServingModel | None
    registry_name: str | None = None
    registry_alias: str | None = None
    registry_version: str | None = None
    registry_error: str | None = None


R = TypeVar("R", bound=_Result)
T = TypeVar("T")


# -- errors ----------------------------------------------------------------------------------------
class ClientError(CoreError):
    """Root of the client's errors; ``status`` is the HTTP status (or None)."""

    status: int | None = None


class GatewayUnreachable(ClientError):
    """Nothing answers at the gateway's address."""


class InvalidRequest(ClientError):
    """The gateway refused the input; ``fields`` maps each bad field to why."""

    def __init__(self, message: str, fields: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.fields = dict(fields or {})


class DeadlineExceeded(ClientError):
    """No worker answered before the deadline."""


class NotAllowed(ClientError):
    """No or a wrong API key (401), or one that may not make this call (403)."""


class RateLimited(ClientError):
    """The key's rate limit is spent; try again after ``retry_after_s``."""

    def __init__(self, message: str, retry_after_s: float | None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class GatewayUnavailable(ClientError):
    """The gateway runs but cannot reach Kafka or the model registry."""


class GatewayFailed(ClientError):
    """Any other failure, or an answer that does not have the promised shape."""


_BY_STATUS: dict[int, type[ClientError]] = {
    401: NotAllowed,
    403: NotAllowed,
    422: InvalidRequest,
    504: DeadlineExceeded,
    503: GatewayUnavailable,
}
_BY_GRPC: dict[grpc.StatusCode, type[ClientError]] = {
    grpc.StatusCode.UNAUTHENTICATED: NotAllowed,
    grpc.StatusCode.PERMISSION_DENIED: NotAllowed,
    grpc.StatusCode.INVALID_ARGUMENT: InvalidRequest,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceeded,
    grpc.StatusCode.UNAVAILABLE: GatewayUnavailable,
}
_WHAT_NEXT: dict[type[ClientError], str] = {
    DeadlineExceeded: "no worker answered in time: is `ulasan worker` running?",
    GatewayUnavailable: "the gateway cannot reach Kafka or the registry: `ulasan stack status`",
    NotAllowed: "send a valid API key (X-API-Key)",
}


def http_error(resp: httpx.Response) -> ClientError:
    """The :class:`ClientError` for an HTTP error answer of the gateway."""
    try:
        body = resp.json()
        message = str(body["error"]["message"])
        detail = body.get("detail") or []
    except (ValueError, KeyError, TypeError):
        message, detail = resp.text[:300] or resp.reason_phrase, []
    kind = _BY_STATUS.get(resp.status_code, GatewayFailed)
    text = f"gateway answered {resp.status_code}: {message}"
    if kind in _WHAT_NEXT:
        text += f" ({_WHAT_NEXT[kind]})"
    err: ClientError
    if resp.status_code == 429:
        retry = resp.headers.get("retry-after")
        err = RateLimited(text, float(retry) if retry and retry.isdigit() else None)
    elif kind is InvalidRequest:
        fields = {str(d.get("field")): str(d.get("msg")) for d in detail if isinstance(d, dict)}
        err = InvalidRequest(text, fields)
    else:
        err = kind(text)
    err.status = resp.status_code
    return err


def _parse(model: type[R], body: Any) -> R:
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise GatewayFailed(f"the gateway's answer is not a {model.__name__}: {exc}") from exc


def _model_info(body: Mapping[str, Any]) -> ModelInfo:
    registry = body.get("registry") or {}
    return _parse(
        ModelInfo,
        {
            "serving": body.get("serving"),
            "registry_name": registry.get("name"),
            "registry_alias": registry.get("alias"),
            "registry_version": None
            if registry.get("version") is None
            else str(registry["version"]),
            "registry_error": registry.get("error"),
        },
    )


def _feedback_body(label: str, review_id: str | None, request_id: str | None) -> dict[str, str]:
    if (review_id is None) == (request_id is None):
        raise InvalidRequest("give exactly one of review_id and request_id")
    body = {"label": label}
    body["review_id" if review_id is not None else "request_id"] = review_id or request_id or ""
    return body


def _verify(ca_file: str | None) -> ssl.SSLContext | bool:
    """httpx's ``verify``: a context trusting ``ca_file`` when given, else the default (True)."""
    return ssl.create_default_context(cafile=ca_file) if ca_file else True


def _headers(api_key: str | None) -> dict[str, str]:
    return {"x-api-key": api_key} if api_key else {}


# -- HTTP: the calls (pure) ------------------------------------------------------------------------
@dataclass(frozen=True)
class HttpCall(Generic[T]):
    """One call of the gateway's HTTP API, whatever sends it: the request, and how its answer
    becomes the result (:meth:`answer`). :class:`GatewayClient` and
    :class:`AsyncGatewayClient` only send it."""

    method: str
    path: str
    body: Any
    read: Callable[[Any], T]

    def answer(self, resp: httpx.Response) -> T:
        """The result of ``resp``; the :class:`ClientError` of an error answer, or
        :class:`GatewayFailed` for an answer that is not the promised JSON."""
        if resp.status_code >= 400:
            raise http_error(resp)
        try:
            body = resp.json()
        except ValueError as exc:
            raise GatewayFailed(f"{self.path} answered something that is not JSON") from exc
        return self.read(body)


def _reader(model: type[R]) -> Callable[[Any], R]:
    return lambda body: _parse(model, body)


def predict_call(text: str) -> HttpCall[PredictResult]:
    return HttpCall("POST", "/predict", {"text": text}, _reader(PredictResult))


def predict_batch_call(texts: list[str]) -> HttpCall[BatchResult]:
    return HttpCall("POST", "/predict/batch", {"texts": list(texts)}, _reader(BatchResult))


def feedback_call(
    label: str, review_id: str | None, request_id: str | None
) -> HttpCall[FeedbackResult]:
    """Raises :class:`InvalidRequest` (before anything is sent) unless exactly one of
    ``review_id`` and ``request_id`` is given."""
    body = _feedback_body(label, review_id, request_id)
    return HttpCall("POST", "/feedback", body, _reader(FeedbackResult))


def model_info_call() -> HttpCall[ModelInfo]:
    return HttpCall("GET", "/model/info", None, _model_info)


def health_call() -> HttpCall[bool]:
    return HttpCall("GET", "/health", None, lambda body: bool(body.get("status") == "ok"))


def stats_call() -> HttpCall[dict[str, Any]]:
    return HttpCall("GET", "/stats", None, dict)


def unreachable(url: str, exc: Exception) -> GatewayUnreachable:
    """The error of a call that reached no gateway at ``url``."""
    return GatewayUnreachable(
        f"no gateway answers at {url} ({exc.__class__.__name__}: {exc}); {START_HINT}"
    )


def _http_options(
    url: str, api_key: str | None, timeout_s: float, ca_file: str | None
) -> dict[str, Any]:
    """The arguments of httpx's Client and AsyncClient for a gateway client."""
    return {
        "base_url": url,
        "headers": _headers(api_key),
        "timeout": timeout_s,
        "verify": _verify(ca_file),
    }


# -- HTTP: the transports --------------------------------------------------------------------------
class GatewayClient:
    """The gateway's HTTP API, synchronously (one pooled connection per client)."""

    def __init__(
        self,
        url: str = DEFAULT_URL,
        *,
        api_key: str | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        transport: httpx.BaseTransport | None = None,
        ca_file: str | None = None,
    ) -> None:
        """``ca_file``: a PEM bundle to verify the gateway's certificate with (a private CA or a
        self-signed gateway); the system's trust store otherwise."""
        self.url = url.rstrip("/")
        self._http = httpx.Client(
            transport=transport, **_http_options(self.url, api_key, timeout_s, ca_file)
        )

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _send(self, call: HttpCall[T]) -> T:
        try:
            resp = self._http.request(call.method, call.path, json=call.body)
        except httpx.TransportError as exc:
            raise unreachable(self.url, exc) from exc
        return call.answer(resp)

    def predict(self, text: str) -> PredictResult:
        """Score one text (1 to 5,000 characters)."""
        return self._send(predict_call(text))

    def predict_batch(self, texts: list[str]) -> BatchResult:
        """Score up to 100 texts in one request."""
        return self._send(predict_batch_call(texts))

    def feedback(
        self, label: Label, *, review_id: str | None = None, request_id: str | None = None
    ) -> FeedbackResult:
        """Publish a human label for a review or a gateway request (feedback.v1)."""
        return self._send(feedback_call(label, review_id, request_id))

    def model_info(self) -> ModelInfo:
        return self._send(model_info_call())

    def health(self) -> bool:
        """True when the gateway process answers (raises :class:`GatewayUnreachable` if not)."""
        return self._send(health_call())

    def stats(self) -> dict[str, Any]:
        return self._send(stats_call())


class AsyncGatewayClient:
    """The gateway's HTTP API for asyncio code (same results and errors as GatewayClient)."""

    def __init__(
        self,
        url: str = DEFAULT_URL,
        *,
        api_key: str | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        transport: httpx.AsyncBaseTransport | None = None,
        ca_file: str | None = None,
    ) -> None:
        """``ca_file``: a PEM bundle to verify the gateway's certificate with (a private CA or a
        self-signed gateway); the system's trust store otherwise."""
        self.url = url.rstrip("/")
        self._http = httpx.AsyncClient(
            transport=transport, **_http_options(self.url, api_key, timeout_s, ca_file)
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _send(self, call: HttpCall[T]) -> T:
        try:
            resp = await self._http.request(call.method, call.path, json=call.body)
        except httpx.TransportError as exc:
            raise unreachable(self.url, exc) from exc
        return call.answer(resp)

    async def predict(self, text: str) -> PredictResult:
        return await self._send(predict_call(text))

    async def predict_batch(self, texts: list[str]) -> BatchResult:
        return await self._send(predict_batch_call(texts))

    async def feedback(
        self, label: Label, *, review_id: str | None = None, request_id: str | None = None
    ) -> FeedbackResult:
        return await self._send(feedback_call(label, review_id, request_id))

    async def model_info(self) -> ModelInfo:
        return await self._send(model_info_call())


# -- gRPC ------------------------------------------------------------------------------------------
def grpc_error(exc: grpc.RpcError, target: str) -> ClientError:
    """The :class:`ClientError` for a failed gRPC call."""
    # a failed call is also a grpc.Call, which has code() and details(); RpcError itself does not
    code: grpc.StatusCode = getattr(exc, "code", lambda: grpc.StatusCode.UNKNOWN)()
    details = str(getattr(exc, "details", lambda: str(exc))())
    if code is grpc.StatusCode.UNAVAILABLE and "connect" in str(details).lower():
        return GatewayUnreachable(f"no gateway answers at {target} ({details}); {START_HINT}")
    kind = _BY_GRPC.get(code, GatewayFailed)
    text = f"gateway answered {code.name}: {details}"
    if kind in _WHAT_NEXT:
        text += f" ({_WHAT_NEXT[kind]})"
    if code is grpc.StatusCode.RESOURCE_EXHAUSTED:
        return RateLimited(text, None)
    return kind(text)


def _scored(p: Any) -> Scored:
    return _parse(
        Scored,
        {
            "index": p.index,
            "label": p.label,
            "confidence": p.confidence,
            "probabilities": dict(p.probabilities),
            "model_name": p.model_name,
            "model_version": p.model_version,
            "inference_ms": p.inference_ms,
            "queue_ms": p.queue_ms,
        },
    )


def _grpc_model_info(r: Any) -> ModelInfo:
    serving = (
        {"model_name": r.model_name, "model_version": r.model_version, "seen_at": r.seen_at}
        if r.model_name
        else None
    )
    return ModelInfo(
        serving=None if serving is None else ServingModel(**serving),
        registry_name=r.registry_name or None,
        registry_alias=r.registry_alias or None,
        registry_version=r.registry_version or None,
        registry_error=r.registry_error or None,
    )


def _feedback_result(r: Any) -> FeedbackResult:
    return _parse(
        FeedbackResult, {"feedback_id": r.feedback_id, "review_id": r.review_id, "label": r.label}
    )


def _predict_result(r: Any) -> PredictResult:
    return PredictResult(
        request_id=r.request_id, latency_ms=r.latency_ms, prediction=_scored(r.prediction)
    )


def _batch_result(r: Any) -> BatchResult:
    return BatchResult(
        request_id=r.request_id,
        latency_ms=r.latency_ms,
        predictions=[_scored(p) for p in r.predictions],
    )


@dataclass(frozen=True)
class GrpcCall(Generic[T]):
    """One call of the gateway's gRPC service, whatever sends it: the stub's method, its
    request message, and how the reply becomes the result. :class:`GrpcGatewayClient` and
    :class:`AsyncGrpcGatewayClient` only send it."""

    method: str
    request: Any
    read: Callable[[Any], T]


def grpc_predict_call(text: str) -> GrpcCall[PredictResult]:
    return GrpcCall("Predict", pb.PredictRequest(text=text), _predict_result)


def grpc_predict_batch_call(texts: list[str]) -> GrpcCall[BatchResult]:
    return GrpcCall("PredictBatch", pb.PredictBatchRequest(texts=list(texts)), _batch_result)


def grpc_feedback_call(
    label: str, review_id: str | None, request_id: str | None
) -> GrpcCall[FeedbackResult]:
    """Raises :class:`InvalidRequest` (before anything is sent) unless exactly one of
    ``review_id`` and ``request_id`` is given."""
    request = pb.FeedbackRequest(**_feedback_body(label, review_id, request_id))
    return GrpcCall("Feedback", request, _feedback_result)


def grpc_model_info_call() -> GrpcCall[ModelInfo]:
    return GrpcCall("ModelInfo", pb.ModelInfoRequest(), _grpc_model_info)


def _grpc_channel(target: str, credentials: grpc.ChannelCredentials | None, *, aio: bool) -> Any:
    module: Any = grpc.aio if aio else grpc
    if credentials is not None:
        return module.secure_channel(target, credentials)
    return module.insecure_channel(target)


class GrpcGatewayClient:
    """The gateway's gRPC API (``ulasan.v1.Gateway``), synchronously."""

    def __init__(
        self,
        target: str = DEFAULT_GRPC_TARGET,
        *,
        api_key: str | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        credentials: grpc.ChannelCredentials | None = None,
    ) -> None:
        self.target = target
        self.timeout_s = timeout_s
        self._metadata = tuple(_headers(api_key).items())
        self._channel = _grpc_channel(target, credentials, aio=False)
        self._stub = pb_grpc.GatewayStub(self._channel)  # type: ignore[no-untyped-call]

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._channel.close()

    def _send(self, call: GrpcCall[T]) -> T:
        try:
            reply = getattr(self._stub, call.method)(
                call.request, timeout=self.timeout_s, metadata=self._metadata
            )
        except grpc.RpcError as exc:
            raise grpc_error(exc, self.target) from exc
        return call.read(reply)

    def predict(self, text: str) -> PredictResult:
        return self._send(grpc_predict_call(text))

    def predict_batch(self, texts: list[str]) -> BatchResult:
        return self._send(grpc_predict_batch_call(texts))

    def feedback(
        self, label: Label, *, review_id: str | None = None, request_id: str | None = None
    ) -> FeedbackResult:
        return self._send(grpc_feedback_call(label, review_id, request_id))

    def model_info(self) -> ModelInfo:
        return self._send(grpc_model_info_call())


class AsyncGrpcGatewayClient:
    """The gateway's gRPC API for asyncio code (grpc.aio)."""

    def __init__(
        self,
        target: str = DEFAULT_GRPC_TARGET,
        *,
        api_key: str | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        credentials: grpc.ChannelCredentials | None = None,
    ) -> None:
        self.target = target
        self.timeout_s = timeout_s
        self._metadata = tuple(_headers(api_key).items())
        self._channel = _grpc_channel(target, credentials, aio=True)
        self._stub = pb_grpc.GatewayStub(self._channel)  # type: ignore[no-untyped-call]

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._channel.close()

    async def _send(self, call: GrpcCall[T]) -> T:
        try:
            reply = await getattr(self._stub, call.method)(
                call.request, timeout=self.timeout_s, metadata=self._metadata
            )
        except grpc.RpcError as exc:
            raise grpc_error(exc, self.target) from exc
        return call.read(reply)

    async def predict(self, text: str) -> PredictResult:
        return await self._send(grpc_predict_call(text))

    async def predict_batch(self, texts: list[str]) -> BatchResult:
        return await self._send(grpc_predict_batch_call(texts))

    async def feedback(
        self, label: Label, *, review_id: str | None = None, request_id: str | None = None
    ) -> FeedbackResult:
        return await self._send(grpc_feedback_call(label, review_id, request_id))

    async def model_info(self) -> ModelInfo:
        return await self._send(grpc_model_info_call())
