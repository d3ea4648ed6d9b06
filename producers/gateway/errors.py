"""Errors of the gateway: one root, :class:`GatewayError`; each leaf knows its HTTP/gRPC status."""

from __future__ import annotations


class GatewayError(Exception):
    """Root of every gateway error; ``http_status`` and ``grpc_code`` (a grpc.StatusCode name)
    say how each protocol reports it, the message says what to do next."""

    http_status = 500
    grpc_code = "INTERNAL"
    reason = "internal"


class InvalidInput(GatewayError):
    """A request field breaks a rule; ``field`` names it (``text``, ``texts[3]``, ``label``)."""

    http_status = 422
    grpc_code = "INVALID_ARGUMENT"
    reason = "invalid_input"

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.detail = message


class DeadlineExceeded(GatewayError):
    """No complete reply arrived before the request's deadline."""

    http_status = 504
    grpc_code = "DEADLINE_EXCEEDED"
    reason = "deadline_exceeded"


class Unavailable(GatewayError):
    """Kafka (or the model registry, for model calls) cannot be reached or refused the request."""

    http_status = 503
    grpc_code = "UNAVAILABLE"
    reason = "unavailable"


class Unauthenticated(GatewayError):
    """No API key, or one that matches no configured key."""

    http_status = 401
    grpc_code = "UNAUTHENTICATED"
    reason = "unauthenticated"


class Forbidden(GatewayError):
    """A valid key that may not make this call (admin calls need an admin key)."""

    http_status = 403
    grpc_code = "PERMISSION_DENIED"
    reason = "forbidden"


class RateLimited(GatewayError):
    """The key's token bucket is empty; ``retry_after_s`` says when one token is back."""

    http_status = 429
    grpc_code = "RESOURCE_EXHAUSTED"
    reason = "rate_limited"

    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class GatewayConfigError(GatewayError):
    """The gateway's settings are inconsistent (TLS half configured, auth on with no keys...)."""


class PayloadTooLarge(GatewayError):
    """A request body (or gRPC message) over the configured limit; refused before it is read."""

    http_status = 413
    grpc_code = "RESOURCE_EXHAUSTED"
    reason = "payload_too_large"


class RequestTimeout(GatewayError):
    """The client did not send its whole body in time."""

    http_status = 408
    grpc_code = "DEADLINE_EXCEEDED"
    reason = "request_timeout"
