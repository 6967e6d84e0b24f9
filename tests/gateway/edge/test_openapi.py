"""``/openapi.json`` against the app: every HTTP route documented, every documented path a
route, and every documented operation answering with a status (and, for 200, a body) that the
document lists, on a real embedded runtime (engine, publisher, store, order entry)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Route

from gateway.config import GatewayConfig
from gateway.edge.app import create_app
from gateway.edge.openapi import document
from gateway.roots.embedded import EmbeddedRuntime
from gateway.roots.embedded_config import EmbeddedConfig

KEY = "openapi-key-0123456789"
AUTH = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture
async def live(tmp_path: Path) -> AsyncIterator[tuple[Starlette, httpx.AsyncClient]]:
    runtime = EmbeddedRuntime(
        EmbeddedConfig(
            symbols=["AAPL"],
            feed="none",
            demo_api_key=KEY,
            candles_db=":memory:",
            database_url=f"sqlite:{tmp_path / 'reports.sqlite3'}",
        )
    )
    app = create_app(GatewayConfig(), services=runtime.session)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield app, client


def _routes(app: Starlette) -> set[tuple[str, str]]:
    found = set()
    for route in app.routes:
        if isinstance(route, Route):
            for method in route.methods or ():
                if method != "HEAD":
                    found.add((route.path, method.lower()))
    return found


def _documented() -> set[tuple[str, str]]:
    methods = {"get", "post", "delete", "put", "patch"}
    return {(p, m) for p, item in document()["paths"].items() for m in item if m in methods}


def _resolve(schema: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if ref is None:
        return schema
    found: dict[str, Any] = document()
    for part in ref.removeprefix("#/").split("/"):
        found = found[part]
    return _resolve(found)


def _matches(value: Any, schema: dict[str, Any]) -> bool:
    """The subset of JSON Schema the document uses: type, enum, required, properties,
    items, oneOf, minimum/maximum."""
    schema = _resolve(schema)
    if "oneOf" in schema:
        return sum(_matches(value, s) for s in schema["oneOf"]) >= 1
    if "enum" in schema:
        return value in schema["enum"]
    kinds = schema.get("type")
    if kinds is not None:
        names = kinds if isinstance(kinds, list) else [kinds]
        py = {
            "object": dict,
            "array": list,
            "string": str,
            "integer": int,
            "number": int | float,
            "null": type(None),
            "boolean": bool,
        }
        if not any(
            isinstance(value, py[n])
            and not (n in ("integer", "number") and isinstance(value, bool))
            for n in names
        ):
            return False
    if isinstance(value, dict):
        if not set(schema.get("required", ())) <= set(value):
            return False
        props = schema.get("properties", {})
        return all(_matches(value[k], s) for k, s in props.items() if k in value)
    if isinstance(value, list) and "items" in schema:
        return all(_matches(v, schema["items"]) for v in value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return schema.get("minimum", value) <= value <= schema.get("maximum", value)
    return True


def test_every_http_route_is_documented_and_every_documented_path_is_a_route() -> None:
    app = create_app(
        GatewayConfig(),
        services=EmbeddedRuntime(EmbeddedConfig(feed="none", candles_db=":memory:")).session,
    )
    assert _routes(app) == _documented()


async def test_openapi_json_is_served(live: tuple[Starlette, httpx.AsyncClient]) -> None:
    _, client = live
    r = await client.get("/openapi.json")
    assert r.status_code == 200 and r.json() == document()
    assert r.json()["openapi"].startswith("3.")


async def _place(client: httpx.AsyncClient) -> int:
    r = await client.post(
        "/v1/order",
        headers=AUTH,
        json={"symbol": "AAPL", "side": "buy", "type": "limit", "price": "10.00", "qty": 1},
    )
    assert r.status_code == 200, r.text
    order_id: int = r.json()["order"]["orderId"]
    return order_id


def _check(path: str, method: str, response: httpx.Response) -> None:
    op = document()["paths"][path][method]
    listed = op["responses"]
    status = str(response.status_code)
    assert status in listed, (
        f"{method.upper()} {path} answered {status}, documents {sorted(listed)}: {response.text}"
    )
    entry = _resolve(listed[status]) if "$ref" in listed[status] else listed[status]
    for media, content in entry.get("content", {}).items():
        if media == "application/json":
            assert _matches(response.json(), content["schema"]), (path, method, response.text)
        else:
            assert response.headers["content-type"].startswith(media.split(";")[0]), path


async def test_every_operation_answers_as_documented(
    live: tuple[Starlette, httpx.AsyncClient],
) -> None:
    _, client = live
    order_id = await _place(client)
    other = await _place(client)
    good: dict[tuple[str, str], tuple[str, dict[str, Any]]] = {
        ("/v1/symbols", "get"): ("/v1/symbols", {}),
        ("/v1/marketdata/orderBook/L2", "get"): (
            "/v1/marketdata/orderBook/L2?symbol=AAPL&depth=5",
            {},
        ),
        ("/v1/marketdata/ticker", "get"): ("/v1/marketdata/ticker?symbol=AAPL", {}),
        ("/v1/marketdata/trades", "get"): ("/v1/marketdata/trades?symbol=AAPL&limit=5", {}),
        ("/v1/marketdata/candles", "get"): ("/v1/marketdata/candles?symbol=AAPL&resolution=1m", {}),
        ("/v1/poll", "get"): ("/v1/poll?ch=book.AAPL,ticker.AAPL", {}),
        ("/v1/order", "post"): (
            "/v1/order",
            {"json": {"symbol": "AAPL", "side": "buy", "type": "market", "qty": 1}},
        ),
        ("/v1/order/{orderId}", "get"): (f"/v1/order/{order_id}", {}),
        ("/v1/order/{orderId}", "delete"): (f"/v1/order/{other}", {}),
        ("/v1/orders", "get"): ("/v1/orders?status=all&limit=10", {}),
        ("/v1/execution", "get"): ("/v1/execution?symbol=AAPL", {}),
        ("/v1/account", "get"): ("/v1/account", {}),
        ("/v1/account/statement", "get"): ("/v1/account/statement?date=2026-01-02", {}),
        ("/healthz", "get"): ("/healthz", {}),
        ("/metrics", "get"): ("/metrics", {}),
        ("/openapi.json", "get"): ("/openapi.json", {}),
    }
    bad: list[tuple[str, str, str, dict[str, Any]]] = [
        (
            "/v1/marketdata/orderBook/L2",
            "get",
            "/v1/marketdata/orderBook/L2?symbol=AAPL&depth=0",
            {},
        ),
        ("/v1/marketdata/orderBook/L2", "get", "/v1/marketdata/orderBook/L2?symbol=NOPE", {}),
        ("/v1/marketdata/trades", "get", "/v1/marketdata/trades?symbol=AAPL&limit=51", {}),
        ("/v1/marketdata/candles", "get", "/v1/marketdata/candles?symbol=AAPL&resolution=2m", {}),
        (
            "/v1/marketdata/candles",
            "get",
            "/v1/marketdata/candles?symbol=AAPL&resolution=1m&limit=1001",
            {},
        ),
        ("/v1/poll", "get", "/v1/poll?ch=book.AAPL&wait=-1", {}),
        ("/v1/poll", "get", "/v1/poll?ch=nope.X", {}),
        (
            "/v1/order",
            "post",
            "/v1/order",
            {"json": {"symbol": "AAPL", "side": "buy", "type": "limit", "qty": 1}},
        ),
        ("/v1/order", "post", "/v1/order", {"json": {"op": "cancel", "clientOrderId": "nope"}}),
        ("/v1/order/{orderId}", "delete", f"/v1/order/{other}", {}),
        ("/v1/order/{orderId}", "get", "/v1/order/99999", {}),
        ("/v1/orders", "get", "/v1/orders?limit=0", {}),
        ("/v1/execution", "get", "/v1/execution?limit=10001", {}),
        ("/v1/execution", "get", "/v1/execution?cursor=nope", {}),
        ("/v1/orders", "get", "/v1/orders?startTime=0&limit=0", {}),
        ("/v1/account/statement", "get", "/v1/account/statement?date=2026-02-30", {}),
    ]
    assert set(good) == _documented() - {("/v1/sse", "get")}  # (a stream: checked below)
    for (path, method), (url, kw) in good.items():
        response = await client.request(method.upper(), url, headers=AUTH, **kw)
        assert response.status_code == 200, (url, response.text)
        _check(path, method, response)
    for path, method, url, kw in bad:
        response = await client.request(method.upper(), url, headers=AUTH, **kw)
        assert response.status_code >= 400, url
        _check(path, method, response)
    history = await client.get("/v1/orders?startTime=0&limit=1", headers=AUTH)
    assert history.status_code == 200 and "nextCursor" in history.json()
    _check("/v1/orders", "get", history)
    unauthorized = await client.get("/v1/account")
    _check("/v1/account", "get", unauthorized)
    etag = (await client.get("/v1/symbols")).headers["etag"]
    cached = await client.get("/v1/symbols", headers={"If-None-Match": etag})
    _check("/v1/symbols", "get", cached)
    assert cached.status_code == 304
    sse_error = await client.get("/v1/sse?ch=book.NOPE")
    _check("/v1/sse", "get", sse_error)
