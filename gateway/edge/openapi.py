"""The OpenAPI 3.1 document of the REST API, served at ``GET /openapi.json``.

Written by hand next to the routes it describes: ``tests/gateway/edge/test_openapi.py`` checks
that every HTTP route of the app is in it, every path in it is a route, and that each operation
answers with a status and body the document lists; ``test_openapi_schemathesis.py`` runs
schemathesis's generated requests against a live ``quotegate run`` and checks every answer
against the document. The streams' messages are described in
docs/protocol.md; here ``/v1/sse`` and ``/v1/poll`` appear as HTTP operations and the
WebSocket ``/v1/ws`` is named in the description only (OpenAPI has no WebSocket operations).
"""

from __future__ import annotations

from functools import cache
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

PATH = "/openapi.json"
RESOLUTIONS = ["1s", "1m", "5m", "15m", "1h", "1d"]


def routes() -> list[BaseRoute]:
    return [Route(PATH, openapi_json, methods=["GET"])]


async def openapi_json(request: Request) -> Response:
    return Response(document_bytes(), media_type="application/json")


# -- building blocks ----------------------------------------------------------------------------


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _query(
    name: str, schema: dict[str, Any], text: str, *, required: bool = False
) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": required,
        "schema": schema,
        "description": text,
    }


def _int(lo: int, hi: int | None = None, default: int | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "integer", "minimum": lo}
    if hi is not None:
        out["maximum"] = hi
    if default is not None:
        out["default"] = default
    return out


HISTORY_PARAMS = [
    _query("startTime", _int(0), "from this ts, microseconds (history)"),
    _query("endTime", _int(0), "up to this ts, microseconds (history)"),
    _query("cursor", {"type": "string"}, "the nextCursor of the previous page (history)"),
]
NEXT_CURSOR = {
    "type": ["string", "null"],
    "description": "history answers: the cursor of the next page, null on the last",
}


def _json(schema: dict[str, Any], text: str, **headers: str) -> dict[str, Any]:
    out: dict[str, Any] = {"description": text, "content": {"application/json": {"schema": schema}}}
    if headers:
        out["headers"] = {
            k: {"schema": {"type": "string"}, "description": v} for k, v in headers.items()
        }
    return out


def _errors(*statuses: int) -> dict[str, Any]:
    return {str(s): {"$ref": f"#/components/responses/E{s}"} for s in statuses}


SYMBOL = _query(
    "symbol",
    {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,32}$"},
    "a symbol of GET /v1/symbols",
    required=True,
)
ETAG_TEXT = "the answer's tag: send it back as If-None-Match to get 304 while nothing changed"
NOT_MODIFIED = {"304": {"description": "Not Modified: the If-None-Match tag is current"}}
AUTH: list[dict[str, list[str]]] = [{"bearer": []}]


def _snapshot_op(
    summary: str, params: list[dict[str, Any]], body: dict[str, Any]
) -> dict[str, Any]:
    return {
        "get": {
            "summary": summary,
            "parameters": params,
            "responses": {
                "200": _json(body, "the snapshot", ETag=ETAG_TEXT),
                **NOT_MODIFIED,
                **_errors(400, 404),
            },
        }
    }


def _stream_params() -> list[dict[str, Any]]:
    return [
        _query("ch", {"type": "string"}, "comma-separated channels (optional with a cursor)"),
        _query("cursor", {"type": "string"}, "the cursor of the previous answer or event"),
        _query("token", {"type": "string"}, "an API key, needed for the orders channel"),
    ]


def _order_schemas() -> dict[str, Any]:
    text = {"type": "string"}
    return {
        "Order": {
            "type": "object",
            "required": [
                "orderId",
                "account",
                "clientOrderId",
                "symbol",
                "side",
                "type",
                "tif",
                "price",
                "qty",
                "openQty",
                "filled",
                "status",
                "ts",
            ],
            "properties": {
                "orderId": {"type": "integer"},
                "account": text,
                "clientOrderId": text,
                "symbol": text,
                "side": {"enum": ["buy", "sell"]},
                "type": {"enum": ["limit", "market"]},
                "tif": {"enum": ["GTC", "IOC", "FOK"]},
                "price": {"type": ["string", "null"]},
                "qty": {"type": "integer"},
                "openQty": {"type": "integer"},
                "filled": {"type": "integer"},
                "status": {"enum": ["new", "partially_filled", "filled", "cancelled"]},
                "ts": {"type": "integer"},
            },
        },
        "OrderRequest": {
            "type": "object",
            "properties": {
                "op": {"enum": ["new", "replace", "cancel"], "default": "new"},
                "symbol": text,
                "side": {"enum": ["buy", "sell"]},
                "type": {"enum": ["limit", "market"]},
                "price": {"type": "string", "description": "decimal string on the tick"},
                "qty": {"type": "integer", "minimum": 1},
                "tif": {"enum": ["GTC", "IOC", "FOK"], "default": "GTC"},
                "clientOrderId": {"type": "string", "minLength": 1, "maxLength": 128},
                "account": {"type": "string", "description": "if given, the key's own account"},
            },
        },
        "OrderAnswer": {
            "type": "object",
            "required": ["order", "events"],
            "properties": {
                "order": {"oneOf": [_ref("Order"), {"type": "null"}]},
                "events": {"type": "array", "items": {"type": "object"}},
            },
        },
    }


@cache
def document() -> dict[str, Any]:
    """The OpenAPI document (built once)."""
    level = {"type": "array", "prefixItems": [{"type": "string"}, {"type": "integer"}]}
    header: dict[str, Any] = {
        "symbol": {"type": "string"},
        "epoch": {"type": "string"},
        "seq": {"type": "integer"},
        "ts": {"type": "integer"},
    }
    error = {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {
                    "code": {"type": "string"},
                    "message": {"type": "string"},
                    "reason": {"type": "string", "description": "the engine's rejection reason"},
                },
            }
        },
    }
    error_texts = {
        400: "bad_request or unknown_channel: a bad parameter or body, a rejected order",
        401: "unauthorized: no or an unknown API key",
        403: "forbidden: a body naming another account",
        404: "not_found: no such symbol, data, order or endpoint",
        405: "method_not_allowed",
        409: "conflict: the order is not open; duplicate_order, unknown_order, insufficient_funds",
        413: "too_large: a body over 16 KiB",
        414: "too_large: a URL past the server's limit (any path)",
        431: "too_large: request headers past the server's limits (any path)",
        429: "rate_limited or too_many_subscriptions",
        500: "internal: a server error (never a traceback)",
        503: "unavailable: no order entry, store or free connection",
    }
    ticker: dict[str, Any] = {
        "type": "object",
        "properties": {
            k: {"type": ["string", "null"]}
            for k in (
                "last",
                "open",
                "high",
                "low",
                "turnover",
                "change",
                "changePct",
                "bid",
                "ask",
            )
        }
        | {"volume": {"type": "integer"}},
    }
    paths: dict[str, Any] = {
        "/v1/symbols": {
            "get": {
                "summary": "the symbols and their instruments",
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "required": ["symbols"],
                            "properties": {
                                "symbols": {"type": "array", "items": {"type": "object"}}
                            },
                        },
                        "the symbols",
                        ETag=ETAG_TEXT,
                    ),
                    **NOT_MODIFIED,
                },
            }
        },
        "/v1/marketdata/orderBook/L2": _snapshot_op(
            "the order book's top levels",
            [
                SYMBOL,
                _query(
                    "depth",
                    _int(1, 1000),
                    "levels per side (the channel holds the server's book depth, 50 by default)",
                ),
            ],
            {
                "type": "object",
                "properties": header
                | {
                    "bids": {"type": "array", "items": level},
                    "asks": {"type": "array", "items": level},
                    "checksum": {"type": "integer"},
                },
            },
        ),
        "/v1/marketdata/ticker": {
            "get": {
                "summary": "one symbol's ticker, or every symbol's without symbol",
                "parameters": [
                    _query("symbol", {"type": "string"}, "one symbol; leave out for all")
                ],
                "responses": {
                    "200": _json(
                        {
                            "oneOf": [
                                {
                                    "type": "object",
                                    "required": ["symbol", "epoch", "seq", "ts"],
                                    "properties": header | ticker["properties"],
                                },
                                {
                                    "type": "object",
                                    "required": ["tickers"],
                                    "properties": {
                                        "tickers": {"type": "array", "items": {"type": "object"}}
                                    },
                                },
                            ]
                        },
                        "the ticker(s)",
                        ETag=ETAG_TEXT,
                    ),
                    **NOT_MODIFIED,
                    **_errors(400, 404),
                },
            }
        },
        "/v1/marketdata/trades": _snapshot_op(
            "the newest trades, oldest first",
            [SYMBOL, _query("limit", _int(1, 50, 50), "how many")],
            {
                "type": "object",
                "properties": header | {"trades": {"type": "array", "items": {"type": "object"}}},
            },
        ),
        "/v1/marketdata/candles": _snapshot_op(
            "candles, oldest first (older ones from the candle archive)",
            [
                SYMBOL,
                _query("resolution", {"enum": RESOLUTIONS}, "bucket width", required=True),
                _query("startTime", _int(0), "first bucket start, ms"),
                _query("endTime", _int(0), "last bucket start, ms"),
                _query("limit", _int(1, 1000, 300), "the newest this many"),
            ],
            {
                "type": "object",
                "properties": header
                | {
                    "resolution": {"enum": RESOLUTIONS},
                    "candles": {"type": "array", "items": {"type": "object"}},
                },
            },
        ),
        "/v1/poll": {
            "get": {
                "summary": "HTTP polling: snapshots, then everything after the cursor",
                "parameters": [
                    *_stream_params(),
                    _query(
                        "wait",
                        {"type": "number", "minimum": 0},
                        "long-poll up to this many seconds (at most 30; a heartbeat within 10 s)",
                    ),
                ],
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "required": ["cursor", "messages"],
                            "properties": {
                                "cursor": {"type": "string"},
                                "messages": {"type": "array", "items": {"type": "object"}},
                            },
                        },
                        "the messages and the cursor to continue with",
                    ),
                    **_errors(400, 401, 429, 503),
                },
            }
        },
        "/v1/sse": {
            "get": {
                "summary": "Server-Sent Events: one envelope per event, its id the cursor",
                "parameters": [
                    *_stream_params(),
                    {
                        "name": "Last-Event-ID",
                        "in": "header",
                        "required": False,
                        "schema": {"type": "string"},
                        "description": "the cursor to resume from",
                    },
                ],
                "responses": {
                    "200": {
                        "description": "an event stream",
                        "content": {"text/event-stream": {"schema": {"type": "string"}}},
                    },
                    **_errors(400, 401, 429, 503),
                },
            }
        },
        "/v1/order": {
            "post": {
                "summary": "a new order, or op replace / cancel by clientOrderId",
                "security": AUTH,
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _ref("OrderRequest")}},
                },
                "responses": {
                    "200": _json(_ref("OrderAnswer"), "the order and your events"),
                    **_errors(400, 401, 403, 404, 409, 413, 429, 503),
                },
            }
        },
        "/v1/order/{orderId}": {
            "parameters": [{"name": "orderId", "in": "path", "required": True, "schema": _int(1)}],
            "get": {
                "summary": "one of your orders",
                "security": AUTH,
                "responses": {
                    "200": _json(_ref("Order"), "the order"),
                    **_errors(400, 401, 404, 503),
                },
            },
            "delete": {
                "summary": "cancel the open rest of an order",
                "security": AUTH,
                "responses": {
                    "200": _json(_ref("OrderAnswer"), "the order and the cancel"),
                    **_errors(400, 401, 404, 409, 429, 503),
                },
            },
        },
        "/v1/orders": {
            "get": {
                "summary": "your orders, the newest limit, oldest first; with startTime, "
                "endTime or cursor, one page of the reporting database's history",
                "security": AUTH,
                "parameters": [
                    _query(
                        "status",
                        {"enum": ["open", "all"], "default": "open"},
                        "open, or every retained order",
                    ),
                    _query("limit", _int(1, 10_000, 1000), "how many"),
                    *HISTORY_PARAMS,
                ],
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "required": ["orders"],
                            "properties": {
                                "orders": {"type": "array", "items": _ref("Order")},
                                "nextCursor": NEXT_CURSOR,
                            },
                        },
                        "the orders",
                    ),
                    **_errors(400, 401, 503),
                },
            }
        },
        "/v1/execution": {
            "get": {
                "summary": "your fills, the newest limit, oldest first; with startTime, endTime "
                "or cursor, one page of the reporting database's history",
                "security": AUTH,
                "parameters": [
                    _query("symbol", {"type": "string"}, "only this symbol"),
                    _query("orderId", _int(0), "only this order"),
                    *HISTORY_PARAMS,
                    _query("limit", _int(1, 10_000, 1000), "how many"),
                ],
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "required": ["executions"],
                            "properties": {
                                "executions": {"type": "array", "items": {"type": "object"}},
                                "nextCursor": NEXT_CURSOR,
                            },
                        },
                        "the fills",
                    ),
                    **_errors(400, 401, 503),
                },
            }
        },
        "/v1/account": {
            "get": {
                "summary": "your balances: cash as decimal strings, shares as integers",
                "security": AUTH,
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "required": ["account", "balances"],
                            "properties": {
                                "account": {"type": "string"},
                                "balances": {"type": "object"},
                            },
                        },
                        "the balances",
                    ),
                    **_errors(401, 503),
                },
            }
        },
        "/v1/account/statement": {
            "get": {
                "summary": "one UTC day of your account from the reporting database: opening "
                "and closing balances per asset, every fill, turnover",
                "security": AUTH,
                "parameters": [
                    _query("date", {"type": "string"}, "the day, YYYY-MM-DD", required=True)
                ],
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "required": ["account", "date", "balances", "fills", "turnover"],
                            "properties": {
                                "account": {"type": "string"},
                                "date": {"type": "string"},
                                "startTime": {"type": "integer"},
                                "endTime": {"type": "integer"},
                                "balances": {"type": "object"},
                                "fills": {"type": "array", "items": {"type": "object"}},
                                "turnover": {"type": "object"},
                                "volume": {"type": "object"},
                            },
                        },
                        "the statement",
                    ),
                    **_errors(400, 401, 503),
                },
            }
        },
        "/healthz": {
            "get": {
                "summary": "health: whether the snapshot store answers",
                "responses": {
                    "200": _json({"type": "object"}, "healthy"),
                    "503": _json({"type": "object"}, "the store does not answer"),
                },
            }
        },
        "/metrics": {
            "get": {
                "summary": "Prometheus metrics (text exposition)",
                "responses": {
                    "200": {
                        "description": "metrics",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    }
                },
            }
        },
        PATH: {
            "get": {
                "summary": "this document",
                "responses": {"200": _json({"type": "object"}, "the OpenAPI document")},
            }
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "quotegate REST API",
            "version": "1",
            "description": (
                "Snapshots, order entry and the HTTP streams of quotegate. Prices and cash are "
                "decimal strings, quantities integers, every ts integer microseconds (candle t: "
                "milliseconds). The WebSocket /v1/ws and every stream message are described in "
                'docs/protocol.md. Every error is {"error":{"code","message"}}; any request '
                "may also get 414 or 431 (components.responses) from the HTTP server's "
                "request-head limits."
            ),
        },
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "Authorization: Bearer <api key>",
                }
            },
            "schemas": {"Error": error, **_order_schemas()},
            "responses": {f"E{s}": _json(_ref("Error"), t) for s, t in error_texts.items()},
        },
    }


@cache
def document_bytes() -> bytes:
    return orjson.dumps(document())
