"""create_app: lifespan (services started and closed, hub on app.state), route mounting,
static web UI, JSON errors without tracebacks."""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import orjson
import pytest
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.config import GatewayConfig
from gateway.edge.app import collect_routes, create_app
from gateway.fanout.hub import Hub
from gateway.seams.services import Services
from gateway.wire.errors import NOT_FOUND, GatewayError
from tests.gateway.conftest import Stack, make_config, make_stack


def test_client(app: Any) -> Any:
    with warnings.catch_warnings():
        from starlette.exceptions import StarletteDeprecationWarning

        warnings.simplefilter("ignore", StarletteDeprecationWarning)
        from starlette.testclient import TestClient
    return TestClient(app, raise_server_exceptions=False)


test_client.__test__ = False  # type: ignore[attr-defined]


class Tracking:
    """Records start/close of a bus or store (wrapping the real one)."""

    def __init__(self, inner: Any, log: list[str], name: str) -> None:
        self.inner, self.log, self.name = inner, log, name

    async def start(self) -> None:
        self.log.append(f"start {self.name}")
        await self.inner.start()

    async def close(self) -> None:
        self.log.append(f"close {self.name}")
        await self.inner.close()

    def __getattr__(self, item: str) -> Any:
        return getattr(self.inner, item)


def tracked(stack: Stack, log: list[str]) -> Services:
    return Services(
        bus=Tracking(stack.bus, log, "bus"),
        store=Tracking(stack.store, log, "store"),
        authenticate=stack.services.authenticate,
        symbols=stack.services.symbols,
    )


def test_lifespan_starts_and_closes_in_reverse(stack: Stack) -> None:
    log: list[str] = []
    app = create_app(GatewayConfig(), services=tracked(stack, log))
    with test_client(app):
        assert log == ["start bus", "start store"]
        assert isinstance(app.state.hub, Hub)
        assert app.state.services.bus.name == "bus"
        assert app.state.config.port == 8000
        assert app.state.metrics is not None
    assert log == ["start bus", "start store", "close store", "close bus"]


def test_services_from_async_factory_and_context_manager() -> None:
    stack = make_stack()

    async def factory() -> Services:
        return stack.services

    app = create_app(services=factory)
    with test_client(app):
        assert app.state.services is stack.services

    events: list[str] = []

    @asynccontextmanager
    async def managed() -> AsyncIterator[Services]:
        events.append("enter")
        yield stack.services
        events.append("exit")

    app = create_app(services=managed)
    with test_client(app):
        assert events == ["enter"]
    assert events == ["enter", "exit"]


def test_routes_of_every_present_module_are_mounted() -> None:
    paths = {getattr(r, "path", None) for r in collect_routes()}
    assert "/v1/ws" in paths
    assert collect_routes(["gateway.no_such_module"]) == []


@pytest.fixture
def web_dir(tmp_path: Path) -> Path:
    (tmp_path / "index.html").write_text("<h1>quotegate</h1>")
    return tmp_path


def test_static_web_ui_at_root(stack: Stack, web_dir: Path) -> None:
    app = create_app(GatewayConfig(web_dir=str(web_dir)), services=stack.services)
    with test_client(app) as client:
        page = client.get("/")
        assert page.status_code == 200 and "<h1>quotegate</h1>" in page.text
        missing = client.get("/nope.js")
        assert missing.status_code == 404


@pytest.fixture
def erring_app(stack: Stack) -> Iterator[Any]:
    async def boom(request: Request) -> Response:
        raise RuntimeError("secret detail in a traceback")

    async def gone(request: Request) -> Response:
        raise GatewayError(NOT_FOUND, "no such order")

    app = create_app(
        services=stack.services,
        extra_routes=[Route("/boom", boom), Route("/gone", gone)],
    )
    with test_client(app) as client:
        yield client


def test_unhandled_error_is_a_json_500_without_traceback(erring_app: Any) -> None:
    with warnings.catch_warnings():
        response = erring_app.get("/boom")
    assert response.status_code == 500
    assert response.headers["content-type"].startswith("application/json")
    assert orjson.loads(response.content) == {
        "error": {"code": "internal", "message": "internal error"}
    }
    assert "secret" not in response.text and "Traceback" not in response.text


def test_gateway_error_and_http_errors_are_json(erring_app: Any) -> None:
    response = erring_app.get("/gone")
    assert response.status_code == 404
    assert orjson.loads(response.content) == {
        "error": {"code": "not_found", "message": "no such order"}
    }
    response = erring_app.get("/no/such/path")
    assert response.status_code == 404
    assert orjson.loads(response.content) == {
        "error": {"code": "not_found", "message": "no such endpoint: GET /no/such/path"}
    }
    response = erring_app.post("/gone")
    assert response.status_code == 405
    assert sorted(response.headers["allow"].split(", ")) == ["GET", "HEAD"]
    assert orjson.loads(response.content) == {
        "error": {
            "code": "method_not_allowed",
            "message": "method not allowed: POST /gone (allowed: GET, HEAD)",
        }
    }


def test_websocket_served_by_the_app(client: Any) -> None:
    with client.websocket_connect("/v1/ws") as ws:
        ws.send_text('{"op":"ping","id":1}')
        assert orjson.loads(ws.receive_text()) == {"type": "pong", "id": 1}


def test_wrong_methods_name_the_api_routes_methods_not_the_pages(
    stack: Stack, tmp_path: Path
) -> None:
    """The web page's static mount matches every path; a wrong method on an API path still
    answers the API's own 405 (its methods in Allow), and an API path that does not exist a
    404, never the page's ``Allow: GET, HEAD``."""
    (tmp_path / "index.html").write_text("<html></html>")
    config = dataclasses.replace(make_config(), web_dir=str(tmp_path))
    app = create_app(config, services=stack.services)
    with test_client(app) as client:
        for method, path, allowed in [
            ("OPTIONS", "/v1/order", "POST"),
            ("PUT", "/v1/order/5", "DELETE, GET, HEAD"),
            ("DELETE", "/v1/symbols", "GET, HEAD"),
        ]:
            r = client.request(method, path)
            assert r.status_code == 405, (method, path, r.text)
            assert sorted(r.headers["allow"].split(", ")) == allowed.split(", ")
            assert r.json()["error"] == {
                "code": "method_not_allowed",
                "message": f"method not allowed: {method} {path} (allowed: {allowed})",
            }
        r = client.delete("/v1/order/")
        assert r.status_code == 404
        assert r.json()["error"] == {
            "code": "not_found",
            "message": "no such endpoint: DELETE /v1/order/",
        }
        assert "allow" not in r.headers
        assert client.get("/").status_code == 200  # the page is still served


def test_switched_off_transports_are_refused_like_a_blocking_proxy(stack: Stack) -> None:
    from starlette.websockets import WebSocketDisconnect

    app = create_app(GatewayConfig(transports="poll"), services=stack.services)
    with test_client(app) as client:
        for path in ("/v1/sse?ch=ticker.AAPL", "/v1/sse"):
            refused = client.get(path)
            assert refused.status_code == 404
            assert refused.json()["error"]["code"] == "not_found"
            assert "sse transport is switched off" in refused.json()["error"]["message"]
        with pytest.raises(WebSocketDisconnect) as closed, client.websocket_connect("/v1/ws"):
            pass  # pragma: no cover - the handshake is refused
        assert closed.value.code == 1008
        assert client.get("/v1/poll?ch=ticker.AAPL").status_code == 200
    app = create_app(GatewayConfig(transports="ws,sse"), services=stack.services)
    with test_client(app) as client:
        assert client.get("/v1/poll?ch=ticker.AAPL").status_code == 404
        with client.websocket_connect("/v1/ws") as ws:
            ws.send_json({"op": "ping", "id": 1})
            assert ws.receive_json() == {"type": "pong", "id": 1}
