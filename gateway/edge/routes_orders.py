"""REST order entry and private queries (``Authorization: Bearer <api key>``).

Routes: ``POST /v1/order`` · ``DELETE /v1/order/{orderId}`` · ``GET /v1/order/{orderId}`` ·
``GET /v1/orders?status=open|all&limit=`` ·
``GET /v1/execution?symbol=&orderId=&startTime=&endTime=&limit=`` (times in microseconds, like
every ``ts``; lists are the newest ``limit``, 1000 by default, at most 10,000, oldest first) ·
``GET /v1/account`` · ``GET /v1/account/statement?date=YYYY-MM-DD``.

History: when the node has a reporting database (``services.history``), ``GET /v1/orders`` and
``GET /v1/execution`` with ``startTime``, ``endTime`` or ``cursor`` are answered from it: every
order or execution of the account in the range (not only what the engine retains), oldest
first, ``limit`` per page, and ``nextCursor`` to pass back as ``cursor`` for the next page
(``null`` on the last; orders of every status, ``status=open`` still asks the engine). Without
those parameters (or without a database) they answer from the engine as before. The statement
needs the database (503 without it).

``POST /v1/order`` takes the spec's order fields (``symbol side type price qty tif
clientOrderId``); ``op`` (default ``new``) may also be ``replace`` (``clientOrderId`` and a new
``price`` and/or ``qty``) or ``cancel`` (``clientOrderId``). The account is the API key's; a body
naming another account is refused (403). A successful call answers
``{"order": {...}, "events": [...]}`` with the engine events of the caller's side.

Errors are ``{"error":{"code":..,"message":..}}``: 401 without a valid key, 400 for a bad body
or parameter, 404 for an order that does not exist *or belongs to someone else* (existence is
not revealed), 409 when the order is no longer open, 413 for a body over the limit, 429 over the
per-account order rate, 503 when order entry is not available. An order the engine rejects gets
400 (or 409 for ``duplicate_order``, ``unknown_order``, ``insufficient_funds``) and the reason
as ``error.reason``. A cancel or replace (``DELETE`` or ``op``) that cannot be done always says
``reason: "unknown_order"``: with 404 when there is no such order for the account, with 409
when the order is no longer open.
"""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from gateway.seams.history import History
from gateway.seams.services import LIST_LIMIT_DEFAULT, LIST_LIMIT_MAX, OrderService, Services
from gateway.wire.errors import (
    BAD_REQUEST,
    CONFLICT,
    FORBIDDEN,
    HTTP_STATUS,
    NOT_FOUND,
    RATE_LIMITED,
    TOO_LARGE,
    UNAUTHORIZED,
    UNAVAILABLE,
    GatewayError,
    error_response,
)

JSON = "application/json"
UNKNOWN_ORDER = "unknown_order"
CONFLICT_REASONS = frozenset({"duplicate_order", UNKNOWN_ORDER, "insufficient_funds"})
_INT_MAX = 2**63 - 1
HISTORY_PATHS = ("/v1/orders", "/v1/execution")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


@dataclass(kw_only=True)
class OrderRoutesConfig:
    """Limits of the order endpoints (``services.extra["order_routes"]`` overrides them)."""

    body_max_bytes: int = 16 * 1024
    rate_orders_per_s: float = 50.0  # per account, POST and DELETE
    rate_burst_orders: int = 100


class RateLimiter:
    """A token bucket per account."""

    def __init__(
        self, rate_per_s: float, burst: int, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._rate = rate_per_s
        self._burst = float(burst)
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}

    def allow(self, key: str) -> bool:
        if self._rate <= 0:
            return True
        now = self._clock()
        tokens, last = self._buckets.get(key, (self._burst, now))
        tokens = min(self._burst, tokens + (now - last) * self._rate)
        if tokens < 1.0:
            self._buckets[key] = (tokens, now)
            return False
        self._buckets[key] = (tokens - 1.0, now)
        return True


def routes() -> list[BaseRoute]:
    return [
        Route("/v1/order", _guard(_post_order), methods=["POST"]),
        Route("/v1/order/{orderId}", _guard(_delete_order), methods=["DELETE"]),
        Route("/v1/order/{orderId}", _guard(_get_order), methods=["GET"]),
        Route("/v1/orders", _guard(_get_orders), methods=["GET"]),
        Route("/v1/execution", _guard(_get_executions), methods=["GET"]),
        Route("/v1/account", _guard(_get_account), methods=["GET"]),
        Route("/v1/account/statement", _guard(_get_statement, orders=False), methods=["GET"]),
    ]


# -- plumbing ---------------------------------------------------------------------------------

Handler = Callable[[Request, Any, str], Awaitable[Response]]


def _config(services: Services) -> OrderRoutesConfig:
    cfg = services.extra.get("order_routes")
    if not isinstance(cfg, OrderRoutesConfig):
        cfg = OrderRoutesConfig()
        services.extra["order_routes"] = cfg
    return cfg


def _limiter(services: Services) -> RateLimiter:
    limiter = services.extra.get("order_rate_limiter")
    if not isinstance(limiter, RateLimiter):
        cfg = _config(services)
        limiter = RateLimiter(cfg.rate_orders_per_s, cfg.rate_burst_orders)
        services.extra["order_rate_limiter"] = limiter
    return limiter


def _guard(handler: Handler, *, orders: bool = True) -> Callable[[Request], Awaitable[Response]]:
    """Authenticate, find the order service (``orders``; else the handler gets the services),
    and turn every failure into an error body."""

    async def endpoint(request: Request) -> Response:
        try:
            services: Services = request.app.state.services
            account = _authenticate(request, services)
            if _from_history(request, services) is not None:
                return await handler(request, services, account)
            if request.method in ("POST", "DELETE") and not _limiter(services).allow(account):
                raise GatewayError(RATE_LIMITED, "too many order requests; slow down")
            if not orders:
                return await handler(request, services, account)
            if services.orders is None:
                raise GatewayError(UNAVAILABLE, "order entry is not available on this node")
            return await handler(request, services.orders, account)
        except GatewayError as exc:
            headers = {"WWW-Authenticate": "Bearer"} if exc.code == UNAUTHORIZED else None
            return error_response(exc.status, exc.code, exc.message, headers=headers)

    return endpoint


def _authenticate(request: Request, services: Services) -> str:
    header = request.headers.get("authorization")
    if not header:
        raise GatewayError(UNAUTHORIZED, "missing Authorization: Bearer <api key>")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise GatewayError(UNAUTHORIZED, "the Authorization header must be 'Bearer <api key>'")
    account = services.authenticate(token.strip())
    if account is None:
        raise GatewayError(UNAUTHORIZED, "unknown API key")
    return account


def _json(obj: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(obj), status_code=status, media_type=JSON)


async def _read_body(request: Request, max_bytes: int) -> bytes:
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > max_bytes:
        raise GatewayError(TOO_LARGE, f"the body is larger than {max_bytes} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise GatewayError(TOO_LARGE, f"the body is larger than {max_bytes} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _order_id(request: Request) -> int:
    text = request.path_params.get("orderId", "")
    if not (isinstance(text, str) and text.isascii() and text.isdigit()) or len(text) > 18:
        raise GatewayError(BAD_REQUEST, "orderId must be a positive integer")
    return int(text)


def _int_param(request: Request, name: str) -> int | None:
    text = request.query_params.get(name)
    if text is None or text == "":
        return None
    if not (text.isascii() and text.isdigit()) or len(text) > 19 or int(text) > _INT_MAX:
        raise GatewayError(BAD_REQUEST, f"{name} must be a non-negative integer")
    return int(text)


def _limit(request: Request) -> int:
    """``limit``: 1 .. LIST_LIMIT_MAX, LIST_LIMIT_DEFAULT without it."""
    limit = _int_param(request, "limit")
    if limit is None:
        return LIST_LIMIT_DEFAULT
    if not 1 <= limit <= LIST_LIMIT_MAX:
        raise GatewayError(BAD_REQUEST, f"limit must be between 1 and {LIST_LIMIT_MAX}")
    return limit


def _reason_error(code: str, message: str, reason: str) -> Response:
    """An error body that also names the engine's rejection ``reason``."""
    body = {"error": {"code": code, "message": message, "reason": reason}}
    return _json(body, HTTP_STATUS[code])


def _rejection(events: list[dict[str, Any]]) -> Response | None:
    for ev in events:
        if ev.get("event") == "rejected":
            reason = str(ev.get("reason"))
            code = CONFLICT if reason in CONFLICT_REASONS else BAD_REQUEST
            return _reason_error(code, str(ev.get("message") or reason), reason)
    return None


# -- endpoints --------------------------------------------------------------------------------


async def _post_order(request: Request, orders: OrderService, account: str) -> Response:
    cfg = _config(request.app.state.services)
    raw = await _read_body(request, cfg.body_max_bytes)
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise GatewayError(BAD_REQUEST, "the body must be a JSON object") from None
    if not isinstance(body, dict):
        raise GatewayError(BAD_REQUEST, "the body must be a JSON object")
    named = body.get("account")
    if named is not None and named != account:
        raise GatewayError(FORBIDDEN, "orders can only be placed for the key's own account")
    op = body.get("op", "new")
    coid = body.get("clientOrderId")
    if op in ("cancel", "replace"):
        if type(coid) is not str or not coid:
            raise GatewayError(BAD_REQUEST, f"{op} needs the order's clientOrderId")
        existing = await _by_client(orders, account, coid)
        if existing is None:
            message = f"no order with clientOrderId {orjson.dumps(coid).decode()}"
            return _reason_error(NOT_FOUND, message, UNKNOWN_ORDER)
    events = await orders.submit(account, body)
    rejected = _rejection(events)
    if rejected is not None:
        return rejected
    order = await _order_of(orders, account, events)
    return _json({"order": order, "events": events})


async def _delete_order(request: Request, orders: OrderService, account: str) -> Response:
    order_id = _order_id(request)
    order = await orders.order(account, order_id)
    if order is None:
        return _reason_error(NOT_FOUND, "no such order for this account", UNKNOWN_ORDER)
    if order.get("status") not in ("new", "partially_filled"):
        message = f"order {order_id} is {order.get('status')}, not open"
        return _reason_error(CONFLICT, message, UNKNOWN_ORDER)
    events = await orders.submit(account, {"op": "cancel", "clientOrderId": order["clientOrderId"]})
    rejected = _rejection(events)
    if rejected is not None:
        return rejected
    return _json({"order": await orders.order(account, order["orderId"]), "events": events})


async def _get_order(request: Request, orders: OrderService, account: str) -> Response:
    order_id = _order_id(request)
    order = await orders.order(account, order_id)
    if order is None:
        raise GatewayError(NOT_FOUND, "no such order for this account")
    return _json(order)


def _from_history(request: Request, services: Services) -> History | None:
    """The history database, when a list query asks for a time range or a page of it."""
    if services.history is None or request.url.path not in HISTORY_PATHS:
        return None
    params = request.query_params
    if params.get("status") == "open":  # open orders are the engine's
        return None
    if any(params.get(name) not in (None, "") for name in ("startTime", "endTime", "cursor")):
        return services.history
    return None


def _time_range(request: Request) -> tuple[int | None, int | None]:
    start = _int_param(request, "startTime")
    end = _int_param(request, "endTime")
    if start is not None and end is not None and start > end:
        raise GatewayError(BAD_REQUEST, "startTime is after endTime")
    return start, end


def _cursor(request: Request) -> str | None:
    cursor = request.query_params.get("cursor") or None
    if cursor is not None and len(cursor) > 64:
        raise GatewayError(BAD_REQUEST, "malformed cursor")
    return cursor


async def _orders_history(request: Request, history: History, account: str) -> Response:
    if request.query_params.get("status", "all") != "all":
        raise GatewayError(BAD_REQUEST, "status must be 'open' or 'all'")
    start, end = _time_range(request)
    try:
        found, cursor = await history.orders(
            account, start_us=start, end_us=end, after=_cursor(request), limit=_limit(request)
        )
    except ValueError as exc:
        raise GatewayError(BAD_REQUEST, str(exc)) from None
    return _json({"orders": found, "nextCursor": cursor})


async def _get_orders(request: Request, orders: Any, account: str) -> Response:
    if isinstance(orders, Services):
        history = _from_history(request, orders)
        assert history is not None
        return await _orders_history(request, history, account)
    status = request.query_params.get("status", "open")
    if status not in ("open", "all"):
        raise GatewayError(BAD_REQUEST, "status must be 'open' or 'all'")
    limit = _limit(request)
    return _json({"orders": await orders.orders(account, open_only=status == "open", limit=limit)})


async def _get_executions(request: Request, orders: Any, account: str) -> Response:
    symbol = request.query_params.get("symbol") or None
    start, end = _time_range(request)
    if isinstance(orders, Services):
        history = _from_history(request, orders)
        assert history is not None
        try:
            page, cursor = await history.executions(
                account,
                symbol=symbol,
                order_id=_int_param(request, "orderId"),
                start_us=start,
                end_us=end,
                after=_cursor(request),
                limit=_limit(request),
            )
        except ValueError as exc:
            raise GatewayError(BAD_REQUEST, str(exc)) from None
        return _json({"executions": page, "nextCursor": cursor})
    found = await orders.executions(
        account,
        symbol=symbol,
        order_id=_int_param(request, "orderId"),
        start_us=start,
        end_us=end,
        limit=_limit(request),
    )
    return _json({"executions": found})


async def _get_account(request: Request, orders: OrderService, account: str) -> Response:
    return _json(await orders.account(account))


async def _get_statement(request: Request, services: Services, account: str) -> Response:
    if services.history is None:
        raise GatewayError(UNAVAILABLE, "statements need the reporting database (--database-url)")
    text = request.query_params.get("date") or ""
    if not _DATE.fullmatch(text):
        raise GatewayError(BAD_REQUEST, "date must be YYYY-MM-DD")
    try:
        day = date.fromisoformat(text)
    except ValueError:
        raise GatewayError(BAD_REQUEST, "date must be a valid YYYY-MM-DD") from None
    return _json(await services.history.statement(account, day))


async def _by_client(orders: OrderService, account: str, coid: str) -> dict[str, Any] | None:
    return await orders.order_by_client(account, coid)


async def _order_of(
    orders: OrderService, account: str, events: list[dict[str, Any]]
) -> dict[str, Any] | None:
    for ev in events:
        order_id = ev.get("orderId")
        if ev.get("account") == account and type(order_id) is int:
            return await orders.order(account, order_id)
        for side in ("buy", "sell"):
            if ev.get(f"{side}Account") == account:
                return await orders.order(account, ev[f"{side}OrderId"])
    return None
