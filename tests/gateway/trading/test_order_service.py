"""EngineOrderService over a real engine: commands from REST bodies, own data only."""

from __future__ import annotations

from typing import Any

import pytest

from engine import Engine, EngineConfig
from engine.commands import DefineInstrument, Deposit, Malformed, NewOrder
from engine.events import Event
from gateway.trading.order_service import EngineOrderService


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000

    def __call__(self) -> int:
        self.now += 1000
        return self.now


@pytest.fixture
def engine() -> Engine:
    eng = Engine(EngineConfig(), clock=Clock())
    eng.submit(DefineInstrument(symbol="AAPL", tick="0.01", lot=1))
    eng.submit(DefineInstrument(symbol="MSFT", tick="0.01", lot=1))
    for account in ("alice", "bob"):
        eng.submit(Deposit(account, "USD", "100000.00"))
        eng.submit(Deposit(account, "AAPL", 1000))
        eng.submit(Deposit(account, "MSFT", 1000))
    return eng


@pytest.fixture
def service(engine: Engine) -> EngineOrderService:
    def submit(cmd: Any) -> list[Event]:
        return engine.submit(cmd)

    return EngineOrderService(engine, submit)


def _limit(side: str, price: str, qty: int, coid: str, symbol: str = "AAPL") -> dict[str, Any]:
    return {
        "symbol": symbol,
        "side": side,
        "type": "limit",
        "price": price,
        "qty": qty,
        "clientOrderId": coid,
    }


def test_command_takes_the_account_from_the_caller(service: EngineOrderService) -> None:
    cmd = service.command("alice", {**_limit("buy", "10.00", 1, "c1"), "account": "bob", "ts": 5})
    assert isinstance(cmd, NewOrder)
    assert cmd.account == "alice" and cmd.ts is None and cmd.client_order_id == "c1"
    generated = service.command("alice", {"symbol": "AAPL", "side": "buy", "qty": 1})
    assert isinstance(generated, NewOrder) and generated.client_order_id.startswith("r")
    bad = service.command("alice", {"op": "deposit", "asset": "USD", "amount": "1.00"})
    assert isinstance(bad, Malformed) and bad.account == "alice"


async def test_submit_and_query_own_orders(service: EngineOrderService) -> None:
    events = await service.submit("alice", _limit("buy", "100.00", 10, "a1"))
    assert [e["event"] for e in events] == ["accepted"]
    order_id = events[0]["orderId"]
    order = await service.order("alice", order_id)
    assert order is not None
    assert order["status"] == "new" and order["price"] == "100.00" and order["openQty"] == 10
    assert await service.order("bob", order_id) is None  # not bob's
    assert [o["orderId"] for o in await service.orders("alice", open_only=True)] == [order_id]
    assert await service.orders("bob", open_only=True) == []
    by_client = await service.order_by_client("alice", "a1")
    assert by_client == order
    assert await service.order_by_client("bob", "a1") is None


async def test_trade_events_show_only_the_callers_side(service: EngineOrderService) -> None:
    await service.submit("alice", _limit("sell", "100.00", 5, "s1"))
    events = await service.submit("bob", {**_limit("buy", "100.00", 5, "b1"), "tif": "IOC"})
    kinds = [e["event"] for e in events]
    assert "trade" in kinds and "done" in kinds
    for ev in events:
        assert ev.get("account") in ("bob", None)
        assert "alice" not in str(ev)
    trade = next(e for e in events if e["event"] == "trade")
    assert trade["side"] == "buy" and trade["liquidity"] == "taker" and trade["qty"] == 5


async def test_executions_filtered(service: EngineOrderService) -> None:
    await service.submit("alice", _limit("sell", "100.00", 5, "s1"))
    await service.submit("alice", _limit("sell", "50.00", 5, "s2", symbol="MSFT"))
    await service.submit("bob", _limit("buy", "100.00", 5, "b1"))
    buy = await service.submit("bob", _limit("buy", "50.00", 2, "b2", symbol="MSFT"))
    bob_all = await service.executions("bob")
    assert [(e["symbol"], e["qty"], e["side"]) for e in bob_all] == [
        ("AAPL", 5, "buy"),
        ("MSFT", 2, "buy"),
    ]
    alice_all = await service.executions("alice")
    assert [(e["symbol"], e["side"], e["liquidity"]) for e in alice_all] == [
        ("AAPL", "sell", "maker"),
        ("MSFT", "sell", "maker"),
    ]
    assert [e["symbol"] for e in await service.executions("bob", symbol="MSFT")] == ["MSFT"]
    msft_order = buy[0]["orderId"]
    assert [e["orderId"] for e in await service.executions("bob", order_id=msft_order)] == [
        msft_order
    ]
    first_ts = bob_all[0]["ts"]
    assert len(await service.executions("bob", start_us=first_ts + 1)) == 1
    assert len(await service.executions("bob", end_us=first_ts)) == 1
    # orderId of someone else's order gives nothing
    assert await service.executions("bob", order_id=alice_all[0]["orderId"]) == []


async def test_self_trade_listed_once_per_side(service: EngineOrderService) -> None:
    await service.submit("alice", _limit("sell", "100.00", 3, "s1"))
    await service.submit("alice", _limit("buy", "100.00", 3, "b1"))
    sides = [e["side"] for e in await service.executions("alice")]
    assert sides == ["buy", "sell"]
    await service.submit("alice", _limit("sell", "100.00", 1, "s2"))
    await service.submit("alice", _limit("buy", "100.00", 1, "b2"))
    newest = await service.executions("alice", limit=3)  # the newest three records, in order
    assert [(e["side"], e["clientOrderId"]) for e in newest] == [
        ("sell", "s1"), ("buy", "b2"), ("sell", "s2"),
    ]  # fmt: skip


async def test_account_balances(service: EngineOrderService) -> None:
    await service.submit("alice", _limit("buy", "100.00", 10, "a1"))
    acct = await service.account("alice")
    assert acct["account"] == "alice"
    usd = acct["balances"]["USD"]
    assert usd == {"available": "99000.00", "reserved": "1000.00"}
    assert acct["balances"]["AAPL"] == {"available": 1000, "reserved": 0}
    assert (await service.account("bob"))["balances"]["USD"]["reserved"] == "0.00"
    assert (await service.account("nobody"))["balances"] == {}


async def test_rejections_come_back_as_events(service: EngineOrderService) -> None:
    events = await service.submit("alice", _limit("buy", "100.001", 1, "x1"))
    assert events[0]["event"] == "rejected" and events[0]["reason"] == "bad_price"
    events = await service.submit("alice", {"op": "cancel", "clientOrderId": "nope"})
    assert events[0]["reason"] == "unknown_order"
    events = await service.submit("alice", {"op": "bogus"})
    assert events[0]["reason"] == "malformed"
