"""REST market-data snapshots, ``/healthz`` and ``/metrics``.

Every market-data answer is read from the snapshot store (Redis in distributed mode, so any
node answers the same), carries the channel's ``epoch`` and ``seq`` in the body and an
``ETag`` of ``"<epoch>-<seq>"``; a request whose ``If-None-Match`` names the current tag gets
``304 Not Modified`` without a body. Bad parameters get ``400 bad_request``, unknown symbols
``404 not_found``, always as ``{"error":{"code":..,"message":..}}``.

Routes: ``GET /v1/symbols`` · ``/v1/marketdata/orderBook/L2?symbol=&depth=`` ·
``/v1/marketdata/candles?symbol=&resolution=&startTime=&endTime=&limit=`` (the publisher's
ring from the store, older ranges from the candle archive, then the reporting database) ·
``/v1/marketdata/ticker[?symbol=]`` · ``/v1/marketdata/trades?symbol=&limit=`` · ``/healthz``
· ``/metrics``.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from gateway.config import GatewayConfig, RestConfig
from gateway.seams.services import Services
from gateway.wire.channels import BOOK, CANDLES, RESOLUTIONS, TICKER, TRADES
from gateway.wire.envelope import Envelope
from gateway.wire.errors import BAD_REQUEST, NOT_FOUND, UNAVAILABLE, error_response, quoted

if TYPE_CHECKING:
    from gateway.metrics import Metrics

JSON = "application/json"
BOOK_DEPTH_MAX = 1000
CANDLES_LIMIT_DEFAULT = 300
CANDLES_LIMIT_MAX = 1000
TRADES_LIMIT_DEFAULT = 50
HEALTH_TIMEOUT_S = 2.0
_INT_MAX = 2**63 - 1


class BadParam(Exception):
    """A query parameter that is missing or malformed (answered with 400 bad_request)."""


class NotFound(Exception):
    """An unknown symbol, or a channel without data yet (answered with 404 not_found)."""


def routes() -> list[BaseRoute]:
    return [
        Route("/v1/symbols", symbols, methods=["GET"]),
        Route("/v1/marketdata/orderBook/L2", order_book, methods=["GET"]),
        Route("/v1/marketdata/candles", candles, methods=["GET"]),
        Route("/v1/marketdata/ticker", ticker, methods=["GET"]),
        Route("/v1/marketdata/trades", trades, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
    ]


# -- helpers -----------------------------------------------------------------------------------


def _services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def _rest_config(request: Request) -> RestConfig:
    config: GatewayConfig | None = getattr(request.app.state, "config", None)
    return config.rest if config is not None else RestConfig()


def _int_param(
    request: Request, name: str, default: int | None, lo: int, hi: int = _INT_MAX
) -> int | None:
    text = request.query_params.get(name)
    if text is None or text == "":
        return default
    if not (text.isascii() and text.isdigit()) or len(text) > 19:
        raise BadParam(f"{name} must be an integer between {lo} and {hi}")
    value = int(text)
    if not lo <= value <= hi:
        raise BadParam(f"{name} must be an integer between {lo} and {hi}")
    return value


def symbol_names(services: Services) -> set[str]:
    """The configured symbols (``services.symbols()`` entries' ``symbol``)."""
    names: set[str] = set()
    for entry in services.symbols():
        name = entry.get("symbol") if isinstance(entry, dict) else None
        if isinstance(name, str):
            names.add(name)
    return names


def _symbol(request: Request) -> str:
    symbol = request.query_params.get("symbol")
    if not symbol:
        raise BadParam("symbol is required")
    if len(symbol) > 32 or "." in symbol:
        raise BadParam("malformed symbol")
    names = symbol_names(_services(request))
    if names and symbol not in names:
        raise NotFound(f"unknown symbol {quoted(symbol)}")
    return symbol


async def _snapshot(request: Request, channel: str) -> Envelope:
    envelope = await _services(request).store.snapshot(channel)
    if envelope is None:
        raise NotFound(f"no data for {channel} yet")
    return envelope


def etag_of(envelope: Envelope) -> str:
    return f'"{envelope.epoch}-{envelope.seq}"'


def _hash_etag(parts: Iterable[bytes]) -> str:
    digest = hashlib.blake2b(digest_size=12)
    for part in parts:
        digest.update(part)
        digest.update(b"\0")
    return f'"h-{digest.hexdigest()}"'


def if_none_match(header: str | None, etag: str) -> bool:
    """Whether an ``If-None-Match`` header matches ``etag`` (weak comparison, ``*``)."""
    if not header:
        return False
    for tag in header.split(","):
        tag = tag.strip()
        if tag == "*" or tag.removeprefix("W/") == etag:
            return True
    return False


def _answer(request: Request, body: dict[str, Any], etag: str) -> Response:
    return _answer_bytes(request, orjson.dumps(body), etag)


def _answer_bytes(request: Request, body: bytes, etag: str) -> Response:
    max_age = int(_rest_config(request).cache_max_age_s)
    cache = f"max-age={max_age}" if max_age > 0 else "no-cache"
    headers = {"ETag": etag, "Cache-Control": cache}
    if if_none_match(request.headers.get("if-none-match"), etag):
        return Response(status_code=304, headers=headers)
    return Response(body, media_type=JSON, headers=headers)


def _header(envelope: Envelope, symbol: str) -> dict[str, Any]:
    return {"symbol": symbol, "epoch": envelope.epoch, "seq": envelope.seq, "ts": envelope.ts}


async def _guarded(request: Request, handler: Any) -> Response:
    try:
        response: Response = await handler(request)
    except BadParam as exc:
        return error_response(400, BAD_REQUEST, str(exc))
    except NotFound as exc:
        return error_response(404, NOT_FOUND, str(exc))
    return response


# -- endpoints ---------------------------------------------------------------------------------


async def symbols(request: Request) -> Response:
    body = orjson.dumps({"symbols": _services(request).symbols()})
    return _answer_bytes(request, body, _hash_etag([body]))


async def _order_book(request: Request) -> Response:
    symbol = _symbol(request)
    depth = _int_param(request, "depth", None, 1, BOOK_DEPTH_MAX)
    if depth is not None:
        depth = min(depth, max(1, _rest_config(request).depth_max_levels))
    envelope = await _snapshot(request, f"{BOOK}.{symbol}")
    data = envelope.data()
    bids, asks = data.get("bids", []), data.get("asks", [])
    if depth is not None:
        bids, asks = bids[:depth], asks[:depth]
    body = _header(envelope, symbol) | {
        "bids": bids,
        "asks": asks,
        "checksum": data.get("checksum"),
    }
    return _answer(request, body, etag_of(envelope))


async def order_book(request: Request) -> Response:
    return await _guarded(request, _order_book)


async def _candles(request: Request) -> Response:
    symbol = _symbol(request)
    resolution = request.query_params.get("resolution")
    if resolution not in RESOLUTIONS:
        raise BadParam(f"resolution must be one of {', '.join(RESOLUTIONS)}")
    start = _int_param(request, "startTime", None, 0)
    end = _int_param(request, "endTime", None, 0)
    if start is not None and end is not None and start > end:
        raise BadParam("startTime is after endTime")
    limit = _int_param(request, "limit", CANDLES_LIMIT_DEFAULT, 1, CANDLES_LIMIT_MAX)
    assert limit is not None
    services = _services(request)
    envelope = await services.store.snapshot(f"{CANDLES}.{symbol}.{resolution}")
    ring: list[dict[str, Any]] = envelope.data().get("candles", []) if envelope else []
    chosen = [
        c for c in ring if (start is None or c["t"] >= start) and (end is None or c["t"] <= end)
    ]
    oldest_ring = ring[0]["t"] if ring else None
    reaches_before_ring = oldest_ring is None or start is None or start < oldest_ring
    if services.candles is not None and len(chosen) < limit and reaches_before_ring:
        archive_end: int | None = end
        if oldest_ring is not None:
            archive_end = oldest_ring - 1 if end is None else min(end, oldest_ring - 1)
        if start is None or archive_end is None or archive_end >= start:
            older = await services.candles.range(symbol, resolution, start, archive_end, limit)
            chosen = [c for c in older if oldest_ring is None or c["t"] < oldest_ring] + chosen
    if services.history is not None and len(chosen) < limit and reaches_before_ring:
        # the reporting database keeps every closed candle, past the archive's retention
        oldest = chosen[0]["t"] if chosen else None
        history_end = end
        if oldest is not None:
            history_end = oldest - 1 if end is None else min(end, oldest - 1)
        if start is None or history_end is None or history_end >= start:
            older = await services.history.candles(
                symbol, resolution, start, history_end, limit - len(chosen)
            )
            chosen = older + chosen
    chosen = chosen[-limit:]
    body: dict[str, Any] = {"symbol": symbol, "resolution": resolution}
    if envelope is not None:
        body |= {"epoch": envelope.epoch, "seq": envelope.seq, "ts": envelope.ts}
        etag = etag_of(envelope)
    else:
        body |= {"epoch": None, "seq": 0, "ts": None}
        etag = _hash_etag([orjson.dumps(chosen)])
    body["candles"] = chosen
    return _answer(request, body, etag)


async def candles(request: Request) -> Response:
    return await _guarded(request, _candles)


async def _ticker(request: Request) -> Response:
    if request.query_params.get("symbol") is not None:
        symbol = _symbol(request)
        envelope = await _snapshot(request, f"{TICKER}.{symbol}")
        return _answer(request, _header(envelope, symbol) | envelope.data(), etag_of(envelope))
    services = _services(request)
    names = sorted(symbol_names(services))
    if not names:
        prefix = f"{TICKER}."
        names = sorted(
            ch[len(prefix) :] for ch in await services.store.channels() if ch.startswith(prefix)
        )
    found = await asyncio.gather(*(services.store.snapshot(f"{TICKER}.{s}") for s in names))
    tickers = [
        _header(env, name) | env.data() for name, env in zip(names, found, strict=True) if env
    ]
    tag_parts = [f"{t['symbol']}:{t['epoch']}:{t['seq']}".encode() for t in tickers]
    return _answer(request, {"tickers": tickers}, _hash_etag(tag_parts))


async def ticker(request: Request) -> Response:
    return await _guarded(request, _ticker)


async def _trades(request: Request) -> Response:
    symbol = _symbol(request)
    most = max(1, _rest_config(request).trades_max)
    limit = _int_param(request, "limit", min(TRADES_LIMIT_DEFAULT, most), 1, most)
    assert limit is not None
    envelope = await _snapshot(request, f"{TRADES}.{symbol}")
    recent: list[Any] = envelope.data().get("trades", [])
    body = _header(envelope, symbol) | {"trades": recent[-limit:]}
    return _answer(request, body, etag_of(envelope))


async def trades(request: Request) -> Response:
    return await _guarded(request, _trades)


async def healthz(request: Request) -> Response:
    """``200 {"status":"ok"}`` when the snapshot store answers reads and its writes go
    through (a store with a ``writer_error`` attribute, the Redis one, says why its last write
    failed until a write, and the rebuild after an outage, succeeded), else 503."""
    checks: dict[str, str] = {}
    store = _services(request).store
    headers = {"Cache-Control": "no-store", "Retry-After": "1"}
    try:
        channels = await asyncio.wait_for(store.channels(), timeout=HEALTH_TIMEOUT_S)
        checks["store"] = "ok"
    except Exception as exc:
        checks["store"] = f"error: {type(exc).__name__}"
        body = {"status": "unavailable", "checks": checks}
        return Response(orjson.dumps(body), status_code=503, media_type=JSON, headers=headers)
    writer_error = getattr(store, "writer_error", None)
    if writer_error:
        checks["store_writes"] = f"error: {writer_error}"
        body_bad: dict[str, object] = {"status": "unavailable", "checks": checks}
        body_bad["channels"] = len(channels)
        return Response(orjson.dumps(body_bad), status_code=503, media_type=JSON, headers=headers)
    body_ok = {"status": "ok", "checks": checks, "channels": len(channels)}
    return Response(orjson.dumps(body_ok), media_type=JSON, headers={"Cache-Control": "no-store"})


async def metrics(request: Request) -> Response:
    """Prometheus text exposition of this app's registry."""
    app_metrics: Metrics | None = getattr(request.app.state, "metrics", None)
    if app_metrics is None:
        return error_response(503, UNAVAILABLE, "metrics are not enabled")
    body, content_type = app_metrics.render()
    return Response(body, headers={"Content-Type": content_type, "Cache-Control": "no-store"})
