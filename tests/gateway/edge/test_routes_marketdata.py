from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from gateway.config import GatewayConfig
from gateway.edge import routes_marketdata
from gateway.metrics import Metrics
from gateway.seams.bus_memory import MemoryBus
from gateway.seams.candles_sqlite import SqliteCandleArchive, SqliteCandleConfig
from gateway.seams.services import Services
from gateway.seams.store_memory import MemorySnapshotStore
from gateway.wire.envelope import SNAPSHOT, UPDATE, Envelope

EPOCH = "ep1"


def candle(t: int, c: str = "10") -> dict[str, Any]:
    return {"t": t, "o": c, "h": c, "l": c, "c": c, "v": 1, "n": 1}


def snap(channel: str, seq: int, data: Any) -> Envelope:
    return Envelope.build(SNAPSHOT, channel, EPOCH, seq, 1_000_000 + seq, data)


BOOK = {
    "bids": [["100.00", 5], ["99.99", 3], ["99.98", 1]],
    "asks": [["100.01", 2], ["100.02", 7]],
    "checksum": 1234,
}


@pytest.fixture
def store() -> MemorySnapshotStore:
    store = MemorySnapshotStore()
    store.record_snapshot(snap("book.AAPL", 7, BOOK))
    store.record_snapshot(snap("ticker.AAPL", 3, {"last": "100.00", "volume": 5}))
    store.record_snapshot(snap("ticker.MSFT", 9, {"last": "300.00", "volume": 1}))
    trades = [{"id": i, "price": "100.00", "qty": 1, "side": "buy", "ts": i} for i in range(1, 6)]
    store.record_snapshot(snap("trades.AAPL", 5, {"trades": trades}))
    ring = [candle(t) for t in (300_000, 360_000, 420_000)]
    store.record_snapshot(snap("candles.AAPL.1m", 11, {"candles": ring}))
    return store


@pytest.fixture
async def archive(tmp_path: Path) -> AsyncIterator[SqliteCandleArchive]:
    archive = SqliteCandleArchive(SqliteCandleConfig(path=str(tmp_path / "candles.sqlite3")))
    await archive.start()
    for t in (120_000, 180_000, 240_000, 300_000):
        archive.append("AAPL", "1m", candle(t, "9"))
    await archive.flush()
    try:
        yield archive
    finally:
        await archive.close()


@pytest.fixture
async def client(
    store: MemorySnapshotStore, archive: SqliteCandleArchive
) -> AsyncIterator[httpx.AsyncClient]:
    app = Starlette(routes=routes_marketdata.routes())
    app.state.config = GatewayConfig()
    app.state.metrics = Metrics()
    app.state.services = Services(
        bus=MemoryBus(),
        store=store,
        candles=archive,
        symbols=lambda: [{"symbol": "AAPL", "tick": "0.01"}, {"symbol": "MSFT", "tick": "0.01"}],
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        yield c


async def test_symbols(client: httpx.AsyncClient) -> None:
    r = await client.get("/v1/symbols")
    assert r.status_code == 200
    assert [s["symbol"] for s in r.json()["symbols"]] == ["AAPL", "MSFT"]
    again = await client.get("/v1/symbols", headers={"If-None-Match": r.headers["etag"]})
    assert again.status_code == 304


async def test_order_book_with_seq_and_depth(client: httpx.AsyncClient) -> None:
    r = await client.get("/v1/marketdata/orderBook/L2", params={"symbol": "AAPL"})
    assert r.status_code == 200
    body = r.json()
    assert body["seq"] == 7 and body["epoch"] == EPOCH and body["symbol"] == "AAPL"
    assert body["bids"] == BOOK["bids"] and body["asks"] == BOOK["asks"]
    assert body["checksum"] == 1234
    assert r.headers["etag"] == f'"{EPOCH}-7"'
    r = await client.get("/v1/marketdata/orderBook/L2", params={"symbol": "AAPL", "depth": 1})
    assert r.json()["bids"] == [["100.00", 5]] and r.json()["asks"] == [["100.01", 2]]


async def test_etag_304_until_the_channel_moves(
    client: httpx.AsyncClient, store: MemorySnapshotStore
) -> None:
    url = "/v1/marketdata/orderBook/L2?symbol=AAPL"
    first = await client.get(url)
    tag = first.headers["etag"]
    cached = await client.get(url, headers={"If-None-Match": tag})
    assert cached.status_code == 304 and cached.content == b""
    assert cached.headers["etag"] == tag
    weak = await client.get(url, headers={"If-None-Match": f'"x", W/{tag}'})
    assert weak.status_code == 304
    store.record(Envelope.build(UPDATE, "book.AAPL", EPOCH, 8, 2, {"bids": [], "asks": []}))
    store.record_snapshot(snap("book.AAPL", 8, BOOK))
    moved = await client.get(url, headers={"If-None-Match": tag})
    assert moved.status_code == 200 and moved.json()["seq"] == 8
    assert moved.headers["etag"] != tag


async def test_ticker_one_and_all(client: httpx.AsyncClient) -> None:
    r = await client.get("/v1/marketdata/ticker", params={"symbol": "MSFT"})
    assert r.status_code == 200
    assert r.json() == {
        "symbol": "MSFT",
        "epoch": EPOCH,
        "seq": 9,
        "ts": 1_000_009,
        "last": "300.00",
        "volume": 1,
    }
    r = await client.get("/v1/marketdata/ticker")
    assert [(t["symbol"], t["seq"]) for t in r.json()["tickers"]] == [("AAPL", 3), ("MSFT", 9)]
    cached = await client.get("/v1/marketdata/ticker", headers={"If-None-Match": r.headers["etag"]})
    assert cached.status_code == 304


async def test_trades_limit_keeps_the_newest(client: httpx.AsyncClient) -> None:
    r = await client.get("/v1/marketdata/trades", params={"symbol": "AAPL", "limit": 2})
    assert r.status_code == 200
    assert r.json()["seq"] == 5
    assert [t["id"] for t in r.json()["trades"]] == [4, 5]
    r = await client.get("/v1/marketdata/trades", params={"symbol": "AAPL"})
    assert [t["id"] for t in r.json()["trades"]] == [1, 2, 3, 4, 5]


async def test_candles_ring_then_archive(client: httpx.AsyncClient) -> None:
    params: dict[str, Any] = {"symbol": "AAPL", "resolution": "1m"}
    r = await client.get("/v1/marketdata/candles", params=params)
    assert r.status_code == 200
    body = r.json()
    assert body["seq"] == 11
    # ring 300k..420k wins over the archive's 300k; older buckets come from the archive
    assert [(c["t"], c["c"]) for c in body["candles"]] == [
        (120_000, "9"),
        (180_000, "9"),
        (240_000, "9"),
        (300_000, "10"),
        (360_000, "10"),
        (420_000, "10"),
    ]
    r = await client.get("/v1/marketdata/candles", params=params | {"limit": 2})
    assert [c["t"] for c in r.json()["candles"]] == [360_000, 420_000]
    r = await client.get(
        "/v1/marketdata/candles", params=params | {"startTime": 150_000, "endTime": 360_000}
    )
    assert [c["t"] for c in r.json()["candles"]] == [180_000, 240_000, 300_000, 360_000]
    r = await client.get(
        "/v1/marketdata/candles", params=params | {"startTime": 100_000, "endTime": 200_000}
    )
    assert [c["t"] for c in r.json()["candles"]] == [120_000, 180_000]


async def test_candles_without_ring_come_from_the_archive(client: httpx.AsyncClient) -> None:
    r = await client.get("/v1/marketdata/candles", params={"symbol": "MSFT", "resolution": "1m"})
    assert r.status_code == 200
    assert r.json()["candles"] == [] and r.json()["seq"] == 0


@pytest.mark.parametrize(
    "url",
    [
        "/v1/marketdata/orderBook/L2",
        "/v1/marketdata/orderBook/L2?symbol=AAPL&depth=0",
        "/v1/marketdata/orderBook/L2?symbol=AAPL&depth=abc",
        "/v1/marketdata/orderBook/L2?symbol=AAPL&depth=-1",
        "/v1/marketdata/orderBook/L2?symbol=AAPL&depth=99999999999999999999999",
        "/v1/marketdata/candles?symbol=AAPL",
        "/v1/marketdata/candles?symbol=AAPL&resolution=7m",
        "/v1/marketdata/candles?symbol=AAPL&resolution=1m&startTime=5&endTime=4",
        "/v1/marketdata/candles?symbol=AAPL&resolution=1m&limit=0",
        "/v1/marketdata/candles?symbol=AAPL&resolution=1m&startTime=1.5",
        "/v1/marketdata/trades?symbol=AAPL&limit=51",
        "/v1/marketdata/trades?symbol=a.b",
        "/v1/marketdata/ticker?symbol=",
    ],
)
async def test_bad_params_400(client: httpx.AsyncClient, url: str) -> None:
    r = await client.get(url)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["code"] == "bad_request"
    assert r.json()["error"]["message"]


@pytest.mark.parametrize(
    "url",
    [
        "/v1/marketdata/orderBook/L2?symbol=NOPE",
        "/v1/marketdata/ticker?symbol=NOPE",
        "/v1/marketdata/trades?symbol=NOPE",
        "/v1/marketdata/candles?symbol=NOPE&resolution=1m",
        "/v1/marketdata/orderBook/L2?symbol=MSFT",  # known symbol, no data yet
    ],
)
async def test_unknown_symbol_404(client: httpx.AsyncClient, url: str) -> None:
    r = await client.get(url)
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "not_found"


async def test_healthz(client: httpx.AsyncClient) -> None:
    r = await client.get("/healthz")
    assert r.status_code == 200
    assert r.json()["status"] == "ok" and r.json()["checks"]["store"] == "ok"


class BrokenStore(MemorySnapshotStore):
    async def channels(self) -> list[str]:
        raise ConnectionError("store down")


async def test_healthz_reports_a_broken_store() -> None:
    app = Starlette(routes=routes_marketdata.routes())
    app.state.services = Services(bus=MemoryBus(), store=BrokenStore())
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test"
    ) as c:
        r = await c.get("/healthz")
    assert r.status_code == 503
    assert r.json()["status"] == "unavailable"


async def test_metrics_prometheus_text(client: httpx.AsyncClient) -> None:
    r = await client.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    assert "quotegate_connections" in r.text


async def test_mounted_by_create_app(app: Starlette) -> None:
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
            health = await c.get("/healthz")
            assert health.status_code == 200 and health.json()["channels"] >= 4
            book = await c.get("/v1/marketdata/orderBook/L2", params={"symbol": "AAPL"})
            assert book.status_code == 200 and book.json()["seq"] == 1
            assert (await c.get("/v1/marketdata/ticker?symbol=ZZZ")).status_code == 404
            metrics = await c.get("/metrics")
            assert metrics.status_code == 200 and "quotegate_" in metrics.text
