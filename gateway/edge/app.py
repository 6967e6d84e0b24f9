"""The ASGI application factory: :func:`create_app`.

The lifespan starts the services (bus, store, candle archive), builds the :class:`Hub` over
them and keeps everything on ``app.state``: ``config``, ``services``, ``hub``, ``metrics``.
Routes come from the transport and route modules, each exposing ``routes()``; the web UI is
served from ``config.web_dir`` at ``/``. A streaming transport that ``config.transports``
leaves out is refused the way a proxy that blocks it would: the WebSocket handshake gets HTTP
403, the SSE and poll endpoints ``404 not_found``; clients then fall back to the next one.
Errors never reach a client as a traceback: a :class:`~gateway.wire.errors.GatewayError`
becomes its JSON error, anything else a JSON 500.
"""

from __future__ import annotations

import importlib
import logging
import mimetypes
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.websockets import WebSocket

from gateway.config import GatewayConfig
from gateway.fanout.hub import Hub
from gateway.metrics import Metrics
from gateway.seams.services import Services
from gateway.wire import errors
from gateway.wire.errors import GatewayError, error_response, gateway_error_response

log = logging.getLogger(__name__)

# the page imports the chart library as an ES module (.mjs); a browser runs a module script
# only when it is served as JavaScript, whatever the host's /etc/mime.types says
mimetypes.add_type("text/javascript", ".mjs")

ServicesSource = (
    Services
    | Callable[[], Awaitable[Services]]
    | Callable[[], AbstractAsyncContextManager[Services]]
)
"""Ready services, an async factory, or a factory of an async context manager (whose exit
stops what it started: engine, feed, ...)."""

ROUTE_MODULES = (
    "gateway.edge.ws",
    "gateway.edge.sse",
    "gateway.edge.poll",
    "gateway.edge.routes_marketdata",
    "gateway.edge.routes_orders",
    "gateway.edge.openapi",
)
"""Modules whose ``routes()`` are mounted, in this order (missing modules are skipped)."""

TRANSPORT_MODULES = {
    "ws": ("gateway.edge.ws", "/v1/ws"),
    "sse": ("gateway.edge.sse", "/v1/sse"),
    "poll": ("gateway.edge.poll", "/v1/poll"),
}
"""Each streaming transport's module and endpoint."""

_STATUS_CODES = {
    400: errors.BAD_REQUEST,
    401: errors.UNAUTHORIZED,
    403: errors.FORBIDDEN,
    404: errors.NOT_FOUND,
    405: errors.METHOD_NOT_ALLOWED,
    409: errors.CONFLICT,
    413: errors.TOO_LARGE,
    429: errors.RATE_LIMITED,
    503: errors.UNAVAILABLE,
}


def collect_routes(modules: Sequence[str] = ROUTE_MODULES) -> list[BaseRoute]:
    """``routes()`` of every module of ``modules`` that exists."""
    found: list[BaseRoute] = []
    for name in modules:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:
                continue
            raise
        found.extend(module.routes())
    return found


async def _enter(stack: AsyncExitStack, source: ServicesSource) -> tuple[Services, bool]:
    """The services, and whether their source owns their lifetime (a context manager whose
    exit stops its producers first and then closes the bus, store and archive it started)."""
    if isinstance(source, Services):
        return source, False
    made: Any = source()
    if hasattr(made, "__aenter__"):
        services: Services = await stack.enter_async_context(made)
        return services, True
    result: Services = await made
    return result, False


def create_app(
    config: GatewayConfig | None = None,
    *,
    services: ServicesSource,
    metrics: Metrics | None = None,
    extra_routes: Sequence[BaseRoute] = (),
) -> Starlette:
    """The gateway app. ``services`` are started in the lifespan (bus, store, candles) and
    closed in reverse order at shutdown, by the lifespan for ready services and async
    factories, by the context manager's exit for a context-manager factory; ``metrics``
    defaults to a fresh registry."""
    config = config or GatewayConfig()
    metrics = metrics or Metrics()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            svc, owned = await _enter(stack, services)
            # start() is idempotent; when a context manager owns the services, its exit
            # closes them after stopping what feeds them (closing the store under a running
            # feed would lose its last writes), so the lifespan does not close them itself.
            for component in (svc.bus, svc.store, svc.candles):
                if component is not None:
                    await component.start()
                    if not owned:
                        stack.push_async_callback(component.close)
            hub = Hub(config.hub, bus=svc.bus, store=svc.store, metrics=metrics)
            await hub.start()
            stack.push_async_callback(hub.close)
            if svc.reporter is not None:
                metrics.watch_reporter(svc.reporter)
            app.state.services = svc
            app.state.hub = hub
            yield

    enabled = config.enabled_transports()
    refused = [name for name in TRANSPORT_MODULES if name not in enabled]
    modules = [m for m in ROUTE_MODULES if m not in {TRANSPORT_MODULES[n][0] for n in refused}]
    routes: list[BaseRoute] = [
        *(refusal_route(name) for name in refused),
        *collect_routes(modules),
        *extra_routes,
    ]
    if config.web_dir is not None and os.path.isdir(config.web_dir):
        routes.append(Mount("/", app=StaticFiles(directory=config.web_dir, html=True), name="web"))

    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={
            GatewayError: _gateway_error,
            HTTPException: _http_error,
            Exception: _internal_error,
        },
    )
    app.state.config = config
    app.state.metrics = metrics
    return app


def refusal_route(transport: str) -> BaseRoute:
    """The route that refuses a switched-off transport at its endpoint."""
    path = TRANSPORT_MODULES[transport][1]
    if transport == "ws":

        async def refuse_ws(websocket: WebSocket) -> None:
            await websocket.close(code=1008)  # before accept: the handshake gets HTTP 403

        return WebSocketRoute(path, refuse_ws)

    async def refuse_http(request: Request) -> Response:
        return error_response(
            404, errors.NOT_FOUND, f"the {transport} transport is switched off on this server"
        )

    return Route(path, refuse_http, methods=["GET"])


async def _gateway_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, GatewayError)
    return gateway_error_response(exc)


async def _http_error(request: Request, exc: Exception) -> Response:
    """Starlette's own errors (no route, wrong method) in the API's terms."""
    assert isinstance(exc, HTTPException)
    code = _STATUS_CODES.get(exc.status_code, errors.BAD_REQUEST)
    headers = dict(exc.headers) if exc.headers else None
    status = exc.status_code
    path = request.url.path
    where = f"{request.method} {path[:200]}"
    if status in (404, 405):
        # the API routes decide, not the web page's static mount that also matches every path
        methods = api_methods(request.app.routes, path)
        if methods:
            status, code = 405, errors.METHOD_NOT_ALLOWED
            headers = {**(headers or {}), "Allow": ", ".join(sorted(methods))}
        elif path.startswith(API_PREFIX) or status == 404:
            status, code, headers = 404, errors.NOT_FOUND, None
    if status == 404:
        message = f"no such endpoint: {where}"
    elif status == 405:
        allow = (headers or {}).get("Allow") or (headers or {}).get("allow") or ""
        allowed = ", ".join(sorted(m.strip() for m in allow.split(",") if m.strip()))
        message = f"method not allowed: {where}" + (f" (allowed: {allowed})" if allowed else "")
    else:
        message = str(exc.detail)
    return error_response(status, code, message, headers=headers)


API_PREFIX = "/v1/"


def api_methods(routes: Sequence[BaseRoute], path: str) -> set[str]:
    """Every method the HTTP routes whose path matches ``path`` take (``HEAD`` with ``GET``)."""
    methods: set[str] = set()
    for route in routes:
        if isinstance(route, Route) and route.path_regex.match(path):
            methods.update(route.methods or ())
    return methods


async def _internal_error(request: Request, exc: Exception) -> Response:
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(500, errors.INTERNAL, "internal error")
