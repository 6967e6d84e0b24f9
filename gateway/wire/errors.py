"""Error codes of the client protocol and their two renderings: a stream message
(WebSocket/SSE/poll ``{"type":"error",...}``) and a REST body ``{"error":{"code","message"}}``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson

from gateway.wire.envelope import dumps

if TYPE_CHECKING:
    from starlette.responses import Response

BAD_REQUEST = "bad_request"
UNKNOWN_CHANNEL = "unknown_channel"
UNAUTHORIZED = "unauthorized"
TOO_MANY_SUBSCRIPTIONS = "too_many_subscriptions"
RATE_LIMITED = "rate_limited"
TOO_LARGE = "too_large"
# REST-only codes
FORBIDDEN = "forbidden"
NOT_FOUND = "not_found"
METHOD_NOT_ALLOWED = "method_not_allowed"
CONFLICT = "conflict"
UNAVAILABLE = "unavailable"
TIMEOUT = "timeout"
"""Distributed mode: the engine did not answer an order-entry request in time."""
INTERNAL = "internal"

STREAM_CODES = (
    BAD_REQUEST,
    UNKNOWN_CHANNEL,
    UNAUTHORIZED,
    TOO_MANY_SUBSCRIPTIONS,
    RATE_LIMITED,
    TOO_LARGE,
)
"""The codes a stream ``error`` message carries (protocol.md)."""

HTTP_STATUS: dict[str, int] = {
    BAD_REQUEST: 400,
    UNKNOWN_CHANNEL: 400,
    UNAUTHORIZED: 401,
    FORBIDDEN: 403,
    NOT_FOUND: 404,
    METHOD_NOT_ALLOWED: 405,
    CONFLICT: 409,
    TOO_LARGE: 413,
    TOO_MANY_SUBSCRIPTIONS: 429,
    RATE_LIMITED: 429,
    INTERNAL: 500,
    UNAVAILABLE: 503,
    TIMEOUT: 504,
}
"""The HTTP status that goes with each code on REST endpoints."""

WS_CLOSE_SLOW = 4008
"""WebSocket close code for a client that does not read what it is sent: its ``orders``
queue, or its replies, passed the connection's byte bound."""
WS_CLOSE_TRY_AGAIN = 1013
"""WebSocket close code when the gateway is at its connection limit."""


class GatewayError(Exception):
    """An error with a protocol code, raised inside the gateway and rendered at the edge."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.headers: dict[str, str] = {}
        """Extra response headers (``Retry-After`` of an ``unavailable`` that will pass)."""

    @property
    def status(self) -> int:
        return HTTP_STATUS.get(self.code, 400)


class TooManyConnections(GatewayError):
    """The hub is at ``HubConfig.max_connections``."""

    def __init__(self) -> None:
        super().__init__(UNAVAILABLE, "too many connections")
        self.headers = {"Retry-After": "1"}


def quoted(value: object, limit: int = 64) -> str:
    """``value`` as the API writes a string, in JSON quotes (``"nope.X"``, not Python's
    ``'nope.X'``), cut to ``limit`` characters first so an error never echoes a huge input."""
    return orjson.dumps(str(value)[:limit]).decode()


def gateway_error_response(exc: GatewayError) -> Response:
    """The JSON error response of a :class:`GatewayError`, with its headers."""
    return error_response(exc.status, exc.code, exc.message, headers=exc.headers or None)


def error_message(code: str, message: str, id: Any = None) -> bytes:
    """A stream error message: ``{"type":"error","code":..,"message":..,"id":..}``; ``id``
    is left out when ``None`` (the request had none)."""
    obj: dict[str, Any] = {"type": "error", "code": code, "message": message}
    if id is not None:
        obj["id"] = id
    return dumps(obj)


def error_body(code: str, message: str) -> bytes:
    """The REST error body ``{"error":{"code":..,"message":..}}``."""
    return orjson.dumps({"error": {"code": code, "message": message}})


def error_response(
    status: int | None, code: str, message: str, *, headers: dict[str, str] | None = None
) -> Response:
    """A JSON error response; ``status`` ``None`` takes the code's usual status."""
    from starlette.responses import Response

    return Response(
        error_body(code, message),
        status_code=status if status is not None else HTTP_STATUS.get(code, 400),
        media_type="application/json",
        headers=headers,
    )
