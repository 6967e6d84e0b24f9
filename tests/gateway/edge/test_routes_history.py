"""History endpoints served from the reporting database (SQLite and PostgreSQL): paging with a
cursor beyond the engine's retention, the engine's answers kept without history parameters,
statements, candles past the archive, and isolation between accounts on every endpoint."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from starlette.applications import Starlette

from engine import EngineConfig
from gateway.edge import routes_marketdata, routes_orders
from gateway.reporting.records import CandleClosed
from gateway.roots.embedded import EmbeddedRuntime
from gateway.roots.embedded_config import EmbeddedConfig

ALICE = "alice-key-0123456789"
BOB = "bob-key-0123456789ab"
ACCOUNTS = {
    "accounts": [
        {"account": "alice", "apiKeys": [ALICE], "deposits": {"USD": "100000.00", "AAPL": 100}},
        {"account": "bob", "apiKeys": [BOB], "deposits": {"USD": "100000.00", "AAPL": 100}},
    ]
}
TRADES = 12


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
async def world(tmp_path: Path, report_db_url: str) -> AsyncIterator[tuple[httpx.AsyncClient, Any]]:
    """A runtime (no feed) whose engine keeps almost nothing, alice and bob trading TRADES
    times over REST, everything reported; the client speaks to the order and market-data
    routes."""
    accounts = tmp_path / "accounts.json"
    accounts.write_bytes(orjson.dumps(ACCOUNTS))
    runtime = EmbeddedRuntime(
        EmbeddedConfig(
            symbols=["AAPL"],
            feed="none",
            accounts_file=str(accounts),
            database_url=report_db_url,
            reporter_flush_interval_ms=1,
            engine=EngineConfig(
                finished_orders_max=1, executions_per_account_max=1, compact_every_orders=2
            ),
        )
    )
    async with runtime.session() as services:
        app = Starlette(routes=routes_orders.routes() + routes_marketdata.routes())
        app.state.services = services
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            for i in range(TRADES):
                sell = {"symbol": "AAPL", "side": "sell", "type": "limit", "price": "10.00",
                        "qty": 2, "clientOrderId": f"s{i}"}  # fmt: skip
                buy = dict(sell, side="buy", clientOrderId=f"b{i}")
                assert (await client.post("/v1/order", json=sell, headers=_auth(ALICE))).is_success
                assert (await client.post("/v1/order", json=buy, headers=_auth(BOB))).is_success
            # one resting order of bob's that never trades
            rest = {"symbol": "AAPL", "side": "buy", "type": "limit", "price": "1.00", "qty": 1}
            assert (await client.post("/v1/order", json=rest, headers=_auth(BOB))).is_success
            assert runtime.reporter is not None
            assert await runtime.reporter.drain(10)
            yield client, runtime


async def _pages(client: httpx.AsyncClient, path: str, key: str, **params: Any) -> list[Any]:
    """Every item of a paged history query, following nextCursor."""
    items: list[Any] = []
    cursor = None
    field = "orders" if path == "/v1/orders" else "executions"
    for _ in range(100):
        q = dict(params, **({"cursor": cursor} if cursor else {}))
        resp = await client.get(path, params=q, headers=_auth(key))
        assert resp.status_code == 200, resp.text
        body = resp.json()
        items.extend(body[field])
        cursor = body["nextCursor"]
        if cursor is None:
            return items
    raise AssertionError("paging did not end")


async def test_orders_history_pages_every_state_beyond_retention(world: Any) -> None:
    client, _ = world
    # the engine retains almost nothing: the plain list answers from it, as before
    plain = (await client.get("/v1/orders?status=all", headers=_auth(ALICE))).json()
    assert "nextCursor" not in plain and len(plain["orders"]) < TRADES
    mine = await _pages(client, "/v1/orders", ALICE, startTime=0, limit=5)
    assert [o["clientOrderId"] for o in mine] == [f"s{i}" for i in range(TRADES)]
    assert {o["status"] for o in mine} == {"filled"} and {o["account"] for o in mine} == {"alice"}
    bobs = await _pages(client, "/v1/orders", BOB, startTime=0, limit=7)
    assert len(bobs) == TRADES + 1 and {o["account"] for o in bobs} == {"bob"}
    assert bobs[-1]["status"] == "new" and bobs[-1]["openQty"] == 1
    # a time range
    ts = [o["ts"] for o in mine]
    some = await _pages(client, "/v1/orders", ALICE, startTime=ts[3], endTime=ts[5])
    assert [o["clientOrderId"] for o in some] == ["s3", "s4", "s5"]
    # status=open still asks the engine
    open_ = (await client.get("/v1/orders?status=open&startTime=0", headers=_auth(BOB))).json()
    assert [o["price"] for o in open_["orders"]] == ["1.00"] and "nextCursor" not in open_


async def test_execution_history_pages_and_filters(world: Any) -> None:
    client, _ = world
    plain = (await client.get("/v1/execution", headers=_auth(ALICE))).json()
    assert "nextCursor" not in plain and 1 <= len(plain["executions"]) < TRADES
    mine = await _pages(client, "/v1/execution", ALICE, startTime=0, limit=5)
    assert len(mine) == TRADES
    assert {(e["side"], e["liquidity"], e["price"], e["qty"]) for e in mine} == {
        ("sell", "maker", "10.00", 2)
    }
    theirs = await _pages(client, "/v1/execution", BOB, startTime=0, limit=5)
    assert {(e["side"], e["liquidity"]) for e in theirs} == {("buy", "taker")}
    # the newest retained execution agrees with the database's copy of it
    assert plain["executions"][-1] == mine[-1]
    one = await _pages(client, "/v1/execution", ALICE, startTime=0, orderId=mine[2]["orderId"])
    assert one == [mine[2]]
    assert await _pages(client, "/v1/execution", ALICE, startTime=0, symbol="MSFT") == []


async def test_an_account_never_reads_another_accounts_rows(world: Any) -> None:
    client, _ = world
    bobs_orders = await _pages(client, "/v1/orders", BOB, startTime=0)
    bobs_execs = await _pages(client, "/v1/execution", BOB, startTime=0)
    # alice filtering by bob's order ids, or paging from bob's cursors, gets none of bob's rows
    for order in bobs_orders:
        got = await _pages(client, "/v1/execution", ALICE, startTime=0, orderId=order["orderId"])
        assert got == []
    first = await client.get("/v1/orders", params={"startTime": 0, "limit": 2}, headers=_auth(BOB))
    cursor = first.json()["nextCursor"]
    resp = await client.get("/v1/orders", params={"cursor": cursor}, headers=_auth(ALICE))
    assert all(o["account"] == "alice" for o in resp.json()["orders"])
    first = await client.get("/v1/execution", params={"startTime": 0, "limit": 2},
                             headers=_auth(BOB))  # fmt: skip
    resp = await client.get(
        "/v1/execution", params={"cursor": first.json()["nextCursor"]}, headers=_auth(ALICE)
    )
    ids = {(e["tradeId"], e["side"]) for e in resp.json()["executions"]}
    assert ids and not ids & {(e["tradeId"], e["side"]) for e in bobs_execs}
    # statements: each account's own fills only
    day = datetime.now(UTC).date().isoformat()
    alice = (await client.get(f"/v1/account/statement?date={day}", headers=_auth(ALICE))).json()
    bob = (await client.get(f"/v1/account/statement?date={day}", headers=_auth(BOB))).json()
    assert alice["account"] == "alice" and {f["side"] for f in alice["fills"]} == {"sell"}
    assert bob["account"] == "bob" and {f["side"] for f in bob["fills"]} == {"buy"}
    # no key, or a wrong one: 401 on every history endpoint
    for path in ("/v1/orders?startTime=0", "/v1/execution?startTime=0",
                 f"/v1/account/statement?date={day}"):  # fmt: skip
        assert (await client.get(path)).status_code == 401
        assert (await client.get(path, headers=_auth("x" * 20))).status_code == 401


async def test_statement_balances_fills_and_turnover(world: Any) -> None:
    client, _ = world
    day = datetime.now(UTC).date().isoformat()
    st = (await client.get(f"/v1/account/statement?date={day}", headers=_auth(ALICE))).json()
    assert st["balances"]["USD"] == {"opening": "0.00", "closing": f"{100000 + TRADES * 20}.00"}
    assert st["balances"]["AAPL"] == {"opening": 0, "closing": 100 - TRADES * 2}
    assert len(st["fills"]) == TRADES and st["fills"][0]["notional"] == "20.00"
    assert st["turnover"] == {"USD": f"{TRADES * 20}.00"}
    assert st["volume"] == {"AAPL": {"buy": 0, "sell": TRADES * 2}}
    # the day before: nothing yet
    yesterday = datetime.fromtimestamp(time.time() - 86400, UTC).date().isoformat()
    old = (await client.get(f"/v1/account/statement?date={yesterday}",
                            headers=_auth(ALICE))).json()  # fmt: skip
    assert old["fills"] == [] and old["balances"] == {}


BAD_QUERIES = [
    "/v1/orders?cursor=abc",
    "/v1/orders?cursor=" + "9" * 70,
    "/v1/execution?cursor=12",
    "/v1/execution?cursor=1-x",
    "/v1/orders?startTime=5&endTime=4",
    "/v1/orders?startTime=0&limit=0",
    "/v1/orders?startTime=0&status=done",
    "/v1/account/statement?date=2024-13-01",
    "/v1/account/statement?date=yesterday",
    "/v1/account/statement",
]


async def test_bad_history_parameters_get_400(world: Any) -> None:
    client, _ = world
    for query in BAD_QUERIES:
        resp = await client.get(query, headers=_auth(ALICE))
        assert resp.status_code == 400, (query, resp.text)
        assert resp.json()["error"]["code"] == "bad_request"


async def test_candles_beyond_the_ring_and_archive(world: Any) -> None:
    client, runtime = world
    # candles older than anything the ring or the archive hold, known only to the database
    old = [{"t": 1_000_000 + 1000 * i, "o": "1.00", "h": "1.00", "l": "1.00", "c": "1.00",
            "v": i + 1, "n": 1} for i in range(5)]  # fmt: skip
    await runtime.reporter.write([[CandleClosed("AAPL", "1s", c)] for c in old])
    resp = await client.get("/v1/marketdata/candles?symbol=AAPL&resolution=1s&endTime=2000000")
    assert resp.status_code == 200, resp.text
    assert resp.json()["candles"] == old
    resp = await client.get(
        "/v1/marketdata/candles?symbol=AAPL&resolution=1s&startTime=1002000&endTime=1003000"
    )
    assert resp.json()["candles"] == old[2:4]
    # with everything: the ring's newest candles last, the database's before them
    resp = await client.get("/v1/marketdata/candles?symbol=AAPL&resolution=1s&startTime=0")
    got = resp.json()["candles"]
    assert got[:5] == old and len(got) > 5


async def test_statement_without_a_database_is_503(tmp_path: Path) -> None:
    runtime = EmbeddedRuntime(EmbeddedConfig(symbols=["AAPL"], feed="none", demo_api_key=ALICE))
    async with runtime.session() as services:
        app = Starlette(routes=routes_orders.routes())
        app.state.services = services
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            resp = await client.get("/v1/account/statement?date=2024-01-01", headers=_auth(ALICE))
            assert resp.status_code == 503
            # and the engine answers time-range queries as before
            resp = await client.get("/v1/execution?startTime=0", headers=_auth(ALICE))
            assert resp.status_code == 200 and resp.json() == {"executions": []}


def test_metrics_export_the_reporter_gauges(tmp_path: Path) -> None:
    import warnings

    from starlette.exceptions import StarletteDeprecationWarning

    from gateway.edge.app import create_app

    with warnings.catch_warnings():  # starlette asks for httpx2; httpx serves the tests
        warnings.simplefilter("ignore", StarletteDeprecationWarning)
        from starlette.testclient import TestClient

    runtime = EmbeddedRuntime(
        EmbeddedConfig(
            symbols=["AAPL"],
            feed="none",
            demo_api_key=ALICE,
            database_url=f"sqlite:{tmp_path / 'r.sqlite3'}",
        )
    )
    with TestClient(create_app(services=runtime.session)) as client:
        text = client.get("/metrics").text
        assert "quotegate_reporter_lag_events" in text
        assert "quotegate_reporter_dropped_records 0.0" in text
