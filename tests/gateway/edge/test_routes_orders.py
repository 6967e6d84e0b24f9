"""REST order endpoints over a real engine: auth, isolation between accounts, error codes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from engine import Engine, EngineConfig
from engine.commands import DefineInstrument, Deposit
from engine.events import Event
from gateway.edge.routes_orders import OrderRoutesConfig, RateLimiter, routes
from gateway.seams.bus_memory import MemoryBus
from gateway.seams.services import Services
from gateway.seams.store_memory import MemorySnapshotStore
from gateway.trading.accounts import Accounts
from gateway.trading.order_service import EngineOrderService

ALICE = "alice-key-0123456789"
BOB = "bob-key-0123456789ab"
ACCOUNTS = {
    "accounts": [
        {"account": "alice", "apiKeys": [ALICE], "deposits": {"USD": "100000.00", "AAPL": 100}},
        {"account": "bob", "apiKeys": [BOB], "deposits": {"USD": "100000.00", "AAPL": 100}},
    ]
}


def _services(extra: dict[str, Any] | None = None, *, with_orders: bool = True) -> Services:
    engine = Engine(EngineConfig())
    engine.submit(DefineInstrument(symbol="AAPL", tick="0.01", lot=1))
    accounts = Accounts.from_obj(ACCOUNTS)
    for dep in accounts.deposit_commands():
        engine.submit(dep)
    engine.submit(Deposit("carol", "USD", "10.00"))

    def submit(cmd: Any) -> list[Event]:
        return engine.submit(cmd)

    return Services(
        bus=MemoryBus(),
        store=MemorySnapshotStore(),
        orders=EngineOrderService(engine, submit) if with_orders else None,
        authenticate=accounts.authenticate,
        extra=extra or {},
    )


def _client(services: Services) -> httpx.AsyncClient:
    app = Starlette(routes=routes())
    app.state.services = services
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with _client(_services()) as c:
        yield c


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _order(side: str = "buy", price: str = "100.00", qty: int = 5, **kw: Any) -> dict[str, Any]:
    return {"symbol": "AAPL", "side": side, "type": "limit", "price": price, "qty": qty, **kw}


def _assert_error(resp: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    body: dict[str, Any] = resp.json()
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    return body


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/v1/order"),
        ("DELETE", "/v1/order/1"),
        ("GET", "/v1/order/1"),
        ("GET", "/v1/orders"),
        ("GET", "/v1/execution"),
        ("GET", "/v1/account"),
    ],
)
@pytest.mark.parametrize(
    "headers", [{}, {"Authorization": "Bearer wrong-key-0123456789"}, {"Authorization": ALICE}]
)
async def test_unauthenticated_is_401(
    client: httpx.AsyncClient, method: str, path: str, headers: dict[str, str]
) -> None:
    resp = await client.request(method, path, headers=headers, json=_order())
    _assert_error(resp, 401, "unauthorized")
    assert resp.headers["www-authenticate"] == "Bearer"


async def test_place_query_cancel(client: httpx.AsyncClient) -> None:
    resp = await client.post("/v1/order", headers=_auth(ALICE), json=_order(clientOrderId="a1"))
    assert resp.status_code == 200, resp.text
    body = resp.json()
    order = body["order"]
    assert order["account"] == "alice" and order["status"] == "new"
    assert [e["event"] for e in body["events"]] == ["accepted"]
    oid = order["orderId"]
    got = await client.get(f"/v1/order/{oid}", headers=_auth(ALICE))
    assert got.status_code == 200 and got.json()["clientOrderId"] == "a1"
    listed = await client.get("/v1/orders?status=open", headers=_auth(ALICE))
    assert [o["orderId"] for o in listed.json()["orders"]] == [oid]
    acct = (await client.get("/v1/account", headers=_auth(ALICE))).json()
    assert acct["balances"]["USD"]["reserved"] == "500.00"
    resp = await client.delete(f"/v1/order/{oid}", headers=_auth(ALICE))
    assert resp.status_code == 200
    assert resp.json()["order"]["status"] == "cancelled"
    assert [e["event"] for e in resp.json()["events"]] == ["cancelled"]
    _assert_error(await client.delete(f"/v1/order/{oid}", headers=_auth(ALICE)), 409, "conflict")
    all_orders = await client.get("/v1/orders?status=all", headers=_auth(ALICE))
    assert [o["status"] for o in all_orders.json()["orders"]] == ["cancelled"]


async def test_one_account_cannot_touch_anothers(client: httpx.AsyncClient) -> None:
    resp = await client.post("/v1/order", headers=_auth(ALICE), json=_order("sell", qty=5))
    oid = resp.json()["order"]["orderId"]
    await client.post("/v1/order", headers=_auth(BOB), json=_order("buy", qty=2))
    # bob cannot see, cancel or list alice's order: it does not exist for him
    _assert_error(await client.get(f"/v1/order/{oid}", headers=_auth(BOB)), 404, "not_found")
    _assert_error(await client.delete(f"/v1/order/{oid}", headers=_auth(BOB)), 404, "not_found")
    unknown = await client.get("/v1/order/999999", headers=_auth(BOB))
    assert unknown.json() == (await client.get(f"/v1/order/{oid}", headers=_auth(BOB))).json()
    bob_orders = (await client.get("/v1/orders?status=all", headers=_auth(BOB))).json()["orders"]
    assert oid not in [o["orderId"] for o in bob_orders]
    # executions and balances are each account's own
    bob_exec = (await client.get("/v1/execution", headers=_auth(BOB))).json()["executions"]
    assert [(e["side"], e["qty"], e["liquidity"]) for e in bob_exec] == [("buy", 2, "taker")]
    assert "alice" not in (await client.get("/v1/execution", headers=_auth(BOB))).text
    alice_exec = (await client.get("/v1/execution", headers=_auth(ALICE))).json()["executions"]
    assert [(e["side"], e["liquidity"]) for e in alice_exec] == [("sell", "maker")]
    by_foreign = await client.get(f"/v1/execution?orderId={oid}", headers=_auth(BOB))
    assert by_foreign.json()["executions"] == []
    assert (await client.get("/v1/account", headers=_auth(BOB))).json()["account"] == "bob"
    # a body naming another account is refused; alice's client order id is not bob's
    _assert_error(
        await client.post("/v1/order", headers=_auth(BOB), json=_order(account="alice")),
        403,
        "forbidden",
    )
    resp = await client.post(
        "/v1/order", headers=_auth(BOB), json={"op": "cancel", "clientOrderId": "nope"}
    )
    _assert_error(resp, 404, "not_found")
    # the alice order is still there, with 3 left
    left = await client.get(f"/v1/order/{oid}", headers=_auth(ALICE))
    assert left.json()["openQty"] == 3


async def test_lists_are_the_newest_limit_oldest_first(client: httpx.AsyncClient) -> None:
    ids = []
    for _ in range(5):  # alice sells 1 five times; bob's buys of 1 fill them one by one
        resp = await client.post("/v1/order", headers=_auth(ALICE), json=_order("sell", qty=1))
        ids.append(resp.json()["order"]["orderId"])
        await client.post("/v1/order", headers=_auth(BOB), json=_order("buy", qty=1))
    resting = await client.post("/v1/order", headers=_auth(ALICE), json=_order("sell", qty=1))
    ids.append(resting.json()["order"]["orderId"])
    listed = await client.get("/v1/orders?status=all&limit=3", headers=_auth(ALICE))
    assert [o["orderId"] for o in listed.json()["orders"]] == ids[-3:]
    every = await client.get("/v1/orders?status=all", headers=_auth(ALICE))
    assert [o["orderId"] for o in every.json()["orders"]] == ids
    opened = await client.get("/v1/orders?limit=1", headers=_auth(ALICE))
    assert [o["orderId"] for o in opened.json()["orders"]] == ids[-1:]
    fills = (await client.get("/v1/execution", headers=_auth(ALICE))).json()["executions"]
    assert [e["orderId"] for e in fills] == ids[:5]
    newest = await client.get("/v1/execution?limit=2", headers=_auth(ALICE))
    assert newest.json()["executions"] == fills[-2:]


async def test_replace_by_client_order_id(client: httpx.AsyncClient) -> None:
    await client.post("/v1/order", headers=_auth(ALICE), json=_order(clientOrderId="r1"))
    resp = await client.post(
        "/v1/order",
        headers=_auth(ALICE),
        json={"op": "replace", "clientOrderId": "r1", "price": "99.00", "qty": 3},
    )
    assert resp.status_code == 200, resp.text
    assert resp.json()["order"]["price"] == "99.00" and resp.json()["order"]["openQty"] == 3
    assert [e["event"] for e in resp.json()["events"]] == ["replaced"]
    _assert_error(
        await client.post(
            "/v1/order",
            headers=_auth(BOB),
            json={"op": "replace", "clientOrderId": "r1", "price": "1.00"},
        ),
        404,
        "not_found",
    )


@pytest.mark.parametrize(
    ("body", "status", "reason"),
    [
        (_order(price="100.001"), 400, "bad_price"),
        (_order(qty=0), 400, "bad_qty"),
        (_order(symbol="NOPE"), 400, "unknown_symbol"),
        (_order(qty=100000), 409, "insufficient_funds"),
        (_order(side="sideways"), 400, "malformed"),
        ({"op": "deposit", "asset": "USD", "amount": "1.00"}, 400, "malformed"),
    ],
)
async def test_rejected_orders_carry_the_reason(
    client: httpx.AsyncClient, body: dict[str, Any], status: int, reason: str
) -> None:
    resp = await client.post("/v1/order", headers=_auth(ALICE), json=body)
    err = _assert_error(resp, status, "conflict" if status == 409 else "bad_request")
    assert err["error"]["reason"] == reason


async def test_duplicate_client_order_id_is_409(client: httpx.AsyncClient) -> None:
    await client.post("/v1/order", headers=_auth(ALICE), json=_order(clientOrderId="d1"))
    resp = await client.post("/v1/order", headers=_auth(ALICE), json=_order(clientOrderId="d1"))
    assert _assert_error(resp, 409, "conflict")["error"]["reason"] == "duplicate_order"


@pytest.mark.parametrize("raw", [b"not json", b"[1,2]", b'"x"', b""])
async def test_bad_body_is_400(client: httpx.AsyncClient, raw: bytes) -> None:
    resp = await client.post("/v1/order", headers=_auth(ALICE), content=raw)
    _assert_error(resp, 400, "bad_request")


@pytest.mark.parametrize(
    "path",
    [
        "/v1/order/abc",
        "/v1/order/-1",
        "/v1/orders?status=weird",
        "/v1/execution?startTime=x",
        "/v1/execution?startTime=5&endTime=4",
        "/v1/execution?orderId=1.5",
        "/v1/orders?status=all&limit=0",
        "/v1/orders?limit=10001",
        "/v1/execution?limit=-3",
        "/v1/execution?limit=many",
    ],
)
async def test_bad_parameters_are_400(client: httpx.AsyncClient, path: str) -> None:
    _assert_error(await client.get(path, headers=_auth(ALICE)), 400, "bad_request")


async def test_body_over_the_limit_is_413() -> None:
    extra = {"order_routes": OrderRoutesConfig(body_max_bytes=100)}
    async with _client(_services(extra)) as c:
        big = _order(clientOrderId="x" * 200)
        _assert_error(await c.post("/v1/order", headers=_auth(ALICE), json=big), 413, "too_large")
        ok = await c.post("/v1/order", headers=_auth(ALICE), json=_order())
        assert ok.status_code == 200


async def test_rate_limit_is_429_per_account() -> None:
    now = [0.0]
    limiter = RateLimiter(1.0, 2, clock=lambda: now[0])
    async with _client(_services({"order_rate_limiter": limiter})) as c:
        codes = [
            (await c.post("/v1/order", headers=_auth(ALICE), json=_order())).status_code
            for _ in range(3)
        ]
        assert codes == [200, 200, 429]
        assert (await c.post("/v1/order", headers=_auth(BOB), json=_order())).status_code == 200
        assert (await c.get("/v1/orders", headers=_auth(ALICE))).status_code == 200  # reads free
        now[0] = 1.0
        assert (await c.post("/v1/order", headers=_auth(ALICE), json=_order())).status_code == 200


async def test_no_order_service_is_503() -> None:
    async with _client(_services(with_orders=False)) as c:
        _assert_error(await c.get("/v1/account", headers=_auth(ALICE)), 503, "unavailable")


async def test_cancel_or_replace_of_an_unknown_order_is_404_unknown_order(
    client: httpx.AsyncClient,
) -> None:
    """Unknown (never placed, someone else's, forgotten): 404 ``not_found``; known but no
    longer open: 409 ``conflict``; both with reason ``unknown_order``, on every route."""
    for body in (
        {"op": "cancel", "clientOrderId": "nope"},
        {"op": "replace", "clientOrderId": "nope", "qty": 1},
    ):
        err = _assert_error(
            await client.post("/v1/order", headers=_auth(ALICE), json=body), 404, "not_found"
        )
        assert err["error"] == {
            "code": "not_found",
            "message": 'no order with clientOrderId "nope"',
            "reason": "unknown_order",
        }
    err = _assert_error(
        await client.delete("/v1/order/424242", headers=_auth(ALICE)), 404, "not_found"
    )
    assert err["error"]["reason"] == "unknown_order"
    placed = await client.post("/v1/order", headers=_auth(ALICE), json=_order(clientOrderId="c1"))
    oid = placed.json()["order"]["orderId"]
    assert (await client.delete(f"/v1/order/{oid}", headers=_auth(ALICE))).status_code == 200
    err = _assert_error(
        await client.delete(f"/v1/order/{oid}", headers=_auth(ALICE)), 409, "conflict"
    )
    assert err["error"] == {
        "code": "conflict",
        "message": f"order {oid} is cancelled, not open",
        "reason": "unknown_order",
    }
    again = await client.post(
        "/v1/order", headers=_auth(ALICE), json={"op": "cancel", "clientOrderId": "c1"}
    )
    err = _assert_error(again, 409, "conflict")
    assert err["error"] == {
        "code": "conflict",
        "message": 'the order with clientOrderId "c1" is cancelled, not open',
        "reason": "unknown_order",
    }


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            {"symbol": "AAPL", "side": "buy", "type": "limit", "qty": 1},
            "a limit order needs a price: a decimal string on the tick 0.01",
        ),
        (_order(price="100.001"), 'price "100.001" is not a positive multiple of the tick 0.01'),
        (_order(qty=100_000), "needs 10000000.00 USD, 100000.00 available"),
        (_order("sell", qty=1000), "needs 1000 AAPL shares, 100 available"),
        (_order(side="bid"), 'side must be "buy" or "sell", not "bid"'),
        (_order(tif="DAY"), 'tif must be "GTC", "IOC" or "FOK", not "DAY"'),
        (_order(type="stop"), 'type must be "limit" or "market", not "stop"'),
        (_order(symbol="NOPE"), 'unknown symbol "NOPE"'),
        (
            {"symbol": "AAPL", "side": "buy", "type": "market", "price": "1.00", "qty": 1},
            "a market order has no price: leave price out, or use type limit",
        ),
    ],
)
async def test_rejection_messages_speak_the_api(
    client: httpx.AsyncClient, body: dict[str, Any], message: str
) -> None:
    """Field names and values as the client wrote them, cash as decimal strings, shares as
    integers: never the engine's ticks or 10**-8 cash units, never Python's ``None``."""
    resp = await client.post("/v1/order", headers=_auth(ALICE), json=body)
    assert resp.json()["error"]["message"] == message


async def test_replace_beyond_the_funds_says_how_much_more(client: httpx.AsyncClient) -> None:
    await client.post("/v1/order", headers=_auth(ALICE), json=_order(clientOrderId="m1"))
    resp = await client.post(
        "/v1/order",
        headers=_auth(ALICE),
        json={"op": "replace", "clientOrderId": "m1", "qty": 2000},
    )
    err = _assert_error(resp, 409, "conflict")["error"]
    assert err["reason"] == "insufficient_funds"
    assert err["message"] == "needs 199500.00 more USD, 99500.00 available"
