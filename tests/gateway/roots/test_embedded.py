"""The embedded runtime: one sequencing point from feed and REST to the publisher, store and bus."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest

from engine.commands import NewOrder
from gateway.roots.embedded import EmbeddedRuntime, embedded_services
from gateway.roots.embedded_config import EmbeddedConfig
from gateway.wire.envelope import Envelope
from tests.waiting import until

KEY = "test-demo-key-0123456789"


async def _until(predicate: Callable[[], bool], timeout_s: float = 20.0) -> None:
    await until(predicate, timeout_s=timeout_s)


async def test_quiet_runtime_defines_symbols_and_demo_account() -> None:
    runtime = await embedded_services(
        EmbeddedConfig(symbols=["AAPL", "MSFT"], feed="none", demo_api_key=KEY)
    )
    try:
        services = runtime.services
        assert [s["symbol"] for s in services.symbols()] == ["AAPL", "MSFT"]
        assert services.authenticate(KEY) == "demo"
        assert services.authenticate("nope-nope-nope-nope") is None
        assert services.orders is not None
        acct = await services.orders.account("demo")
        assert acct["balances"]["USD"]["available"] == "1000000.00"
        assert acct["balances"]["AAPL"]["available"] == 1000
        snap = await services.store.snapshot("book.AAPL")
        assert snap is not None and snap.data()["bids"] == []
        mine = await services.store.snapshot("orders.demo")
        assert mine is not None and mine.data() == {"open": []}
    finally:
        await runtime.close()
        await runtime.close()


async def test_rest_orders_reach_the_channels() -> None:
    runtime = EmbeddedRuntime(EmbeddedConfig(symbols=["AAPL"], feed="none", demo_api_key=KEY))
    seen: list[Envelope] = []
    runtime.bus.add_listener(seen.append)
    async with runtime.session() as services:
        assert services.orders is not None
        events = await services.orders.submit(
            "demo",
            {"symbol": "AAPL", "side": "buy", "type": "limit", "price": "10.00", "qty": 3},
        )
        assert events[0]["event"] == "accepted"
        channels = [e.channel for e in seen]
        assert "orders.demo" in channels and "book.AAPL" in channels
        book = next(e for e in seen if e.channel == "book.AAPL")
        assert book.data()["bids"] == [["10.00", 3]]
        # the store has the same state
        snap = await services.store.snapshot("book.AAPL")
        assert snap is not None and snap.data()["bids"] == [["10.00", 3]]
        assert snap.seq == book.seq
        mine = await services.store.snapshot("orders.demo")
        assert mine is not None and [o["price"] for o in mine.data()["open"]] == ["10.00"]


async def test_synthetic_feed_makes_a_market() -> None:
    cfg = EmbeddedConfig(symbols=["AAPL"], rate_orders_per_s=2000, seed=3, demo_api_key=KEY)
    async with EmbeddedRuntime(cfg).session() as services:
        runtime = services.extra["runtime"]
        await _until(lambda: runtime.engine.orders.executions("tk1"))
        snap = await services.store.snapshot("book.AAPL")
        assert snap is not None
        data = snap.data()
        assert data["bids"] and data["asks"]
        assert float(data["bids"][0][0]) < float(data["asks"][0][0])  # never crossed
        ticker = await services.store.snapshot("ticker.AAPL")
        assert ticker is not None and ticker.data()["last"] is not None
        # a REST order interleaves with the feed through the same engine
        assert services.orders is not None
        ev = await services.orders.submit(
            "demo", {"symbol": "AAPL", "side": "sell", "type": "market", "qty": 1}
        )
        assert ev[0]["event"] == "accepted"
    assert runtime.sink_errors == 0
    assert runtime.feed is not None and runtime.feed.errors == 0


async def test_replay_feed(tmp_path: Path) -> None:
    lines = [
        {"op": "instrument", "symbol": "XYZ", "tick": "0.5", "lot": 10},
        {"op": "deposit", "account": "a", "asset": "USD", "amount": "1000.00"},
        {"op": "deposit", "account": "b", "asset": "XYZ", "amount": 100},
        {
            "op": "new",
            "account": "b",
            "clientOrderId": "1",
            "symbol": "XYZ",
            "side": "sell",
            "type": "limit",
            "price": "5.5",
            "qty": 20,
        },
        {
            "op": "new",
            "account": "a",
            "clientOrderId": "1",
            "symbol": "XYZ",
            "side": "buy",
            "type": "limit",
            "price": "5.5",
            "qty": 10,
        },
    ]
    path = tmp_path / "cmds.jsonl"
    path.write_bytes(b"\n".join(orjson.dumps(x) for x in lines))
    cfg = EmbeddedConfig(
        symbols=[], feed="replay", replay_file=str(path), replay_speed=0, demo_api_key=KEY
    )
    runtime = await embedded_services(cfg)
    try:
        assert runtime.feed is not None
        await asyncio.wait_for(runtime.feed.finished.wait(), 20)  # type: ignore[union-attr]
        trades = await runtime.store.snapshot("trades.XYZ")
        assert trades is not None
        assert [(t["price"], t["qty"]) for t in trades.data()["trades"]] == [("5.5", 10)]
        assert [s["symbol"] for s in runtime.services.symbols()] == ["XYZ"]
        # the demo account holds shares of the replay's symbols, not of the default ones
        assert runtime.services.orders is not None
        acct = await runtime.services.orders.account("demo")
        assert set(acct["balances"]) == {"USD", "XYZ"}
    finally:
        await runtime.close()


async def test_accounts_file(tmp_path: Path) -> None:
    path = tmp_path / "accounts.json"
    path.write_bytes(
        orjson.dumps(
            {
                "accounts": [
                    {
                        "account": "zed",
                        "apiKeys": ["zed-key-0123456789ab"],
                        "deposits": {"USD": "50.00", "AAPL": 7},
                    }
                ]
            }
        )
    )
    cfg = EmbeddedConfig(symbols=["AAPL"], feed="none", accounts_file=str(path))
    async with EmbeddedRuntime(cfg).session() as services:
        assert services.authenticate("zed-key-0123456789ab") == "zed"
        assert services.orders is not None
        acct = await services.orders.account("zed")
        assert acct["balances"] == {
            "AAPL": {"available": 7, "reserved": 0},
            "USD": {"available": "50.00", "reserved": "0.00"},
        }


def test_bad_config() -> None:
    with pytest.raises(ValueError, match="feed"):
        EmbeddedConfig(feed="kafka")
    with pytest.raises(ValueError, match="replay file"):
        EmbeddedConfig(feed="replay")
    with pytest.raises(ValueError, match="symbol"):
        EmbeddedConfig(symbols=[" "])
    with pytest.raises(ValueError, match="bad symbol"):
        EmbeddedConfig(symbols=["BRK.B"])


def test_submit_is_the_one_sequencing_point() -> None:
    runtime = EmbeddedRuntime(EmbeddedConfig(symbols=["AAPL"], feed="none", demo_api_key=KEY))
    seen: list[Envelope] = []
    runtime.bus.add_listener(seen.append)
    from engine.commands import DefineInstrument, Deposit

    runtime.submit(DefineInstrument(symbol="AAPL", tick="0.01", lot=1))
    runtime.submit(Deposit("x", "USD", "100.00"))
    events = runtime.submit(NewOrder("x", "c", "AAPL", "buy", "limit", "1.00", 1))
    assert events and runtime.engine.orders.open_orders("x")
    assert {e.channel for e in seen} >= {"book.AAPL", "orders.x"}


@pytest.mark.redis
async def test_snapshots_in_redis(redis_url: str) -> None:
    cfg = EmbeddedConfig(symbols=["AAPL"], feed="none", demo_api_key=KEY, redis_url=redis_url)
    runtime = await embedded_services(cfg)
    try:
        assert type(runtime.store).__name__ == "RedisSnapshotStore"
        assert runtime.services.orders is not None
        await runtime.services.orders.submit(
            "demo", {"symbol": "AAPL", "side": "buy", "type": "limit", "price": "9.00", "qty": 2}
        )
        await runtime.store.flush()
        snap = await runtime.store.snapshot("book.AAPL")
        assert snap is not None and snap.data()["bids"] == [["9.00", 2]]
        assert "book.AAPL" in await runtime.store.channels()
    finally:
        await runtime.close()


async def test_closed_candles_reach_the_archive(tmp_path: Path) -> None:
    now = [1_700_000_000_000_000]
    db = tmp_path / "candles.sqlite3"
    cfg = EmbeddedConfig(symbols=["AAPL"], feed="none", demo_api_key=KEY, candles_db=str(db))
    runtime = EmbeddedRuntime(cfg, clock=lambda: now[0])
    async with runtime.session() as services:
        assert services.orders is not None and services.candles is not None
        for i, price in enumerate(("10.00", "11.00")):
            now[0] += 2_000_000  # a new 1s bucket each time
            await services.orders.submit(
                "demo",
                {
                    "symbol": "AAPL",
                    "side": "sell",
                    "type": "limit",
                    "price": price,
                    "qty": 1,
                    "clientOrderId": f"s{i}",
                },
            )
            await services.orders.submit(
                "demo",
                {
                    "symbol": "AAPL",
                    "side": "buy",
                    "type": "limit",
                    "price": price,
                    "qty": 1,
                    "clientOrderId": f"b{i}",
                },
            )
        await services.candles.flush()
        closed = await services.candles.range("AAPL", "1s", None, None, 10)
        assert [c["c"] for c in closed] == ["10.00"]  # the first bucket closed; the second is open
    assert db.exists()


def test_accounts_may_not_take_the_synthetic_feeds_names(tmp_path: Path) -> None:
    path = tmp_path / "accounts.json"
    path.write_bytes(
        orjson.dumps({"accounts": [{"account": "mm1", "apiKeys": ["mm1-key-0123456789ab"]}]})
    )
    with pytest.raises(ValueError, match="mm1"):
        EmbeddedRuntime(EmbeddedConfig(symbols=["AAPL"], accounts_file=str(path)))
    EmbeddedRuntime(EmbeddedConfig(symbols=["AAPL"], feed="none", accounts_file=str(path)))
    with pytest.raises(FileNotFoundError):
        EmbeddedRuntime(EmbeddedConfig(feed="replay", replay_file=str(tmp_path / "missing")))


async def test_stop_feed_keeps_storage_open() -> None:
    cfg = EmbeddedConfig(symbols=["AAPL"], rate_orders_per_s=2000, demo_api_key=KEY)
    runtime = await embedded_services(cfg)
    try:
        await _until(lambda: runtime.commands > 200)
        await runtime.stop_feed()
        await runtime.stop_feed()  # idempotent
        assert runtime.feed is not None and not runtime.feed.running  # no task sends orders
        count = runtime.commands
        snap = await runtime.store.snapshot("book.AAPL")  # the store still answers
        assert snap is not None and snap.data()["bids"]
        assert runtime.commands == count
    finally:
        await runtime.close()
