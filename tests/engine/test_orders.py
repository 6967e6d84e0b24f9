from __future__ import annotations

import pytest

from engine.book import Level
from engine.commands import GTC, LIMIT
from engine.events import Trade
from engine.orders import CANCELLED, FILLED, NEW, PARTIALLY_FILLED, Order, OrderManager


def make(oid: int, account: str = "a", coid: str | None = None) -> Order:
    return Order(oid, account, coid or f"c{oid}", "X", "buy", LIMIT, GTC, 10, 5, 100)


def test_new_order_fields() -> None:
    o = make(1)
    assert (o.qty, o.open_qty, o.filled, o.status, o.is_open) == (5, 5, 0, NEW, True)
    assert o.prev is None and o.next is None and o.level is None
    o.open_qty, o.filled = 2, 3
    assert (o.status, o.is_open) == (PARTIALLY_FILLED, True)
    o.open_qty = 0
    assert (o.status, o.is_open) == (CANCELLED, False)
    o.filled = 5
    assert o.status == FILLED
    assert "id=1" in repr(o)
    assert not hasattr(o, "__dict__")


def test_lookups() -> None:
    m = OrderManager()
    orders = [make(1, "a", "x"), make(2, "b", "x"), make(3, "a", "y")]
    for o in orders:
        m.add(o)
    assert len(m) == 3
    assert m.get(2) is orders[1] and m.get(4) is None and m.get(0) is None
    assert m.get("1") is None  # type: ignore[arg-type]
    assert m.by_client("a", "x") is orders[0] and m.by_client("b", "x") is orders[1]
    assert m.by_client("a", "z") is None and m.by_client("c", "x") is None
    assert m.all_orders() == orders and m.accounts() == ["a", "b"]


def test_open_orders_by_id() -> None:
    m = OrderManager()
    orders = [make(i) for i in range(1, 5)]
    for o in orders:
        m.add(o)
        m.rest(o)
        o.level = Level(10)  # resting (normally set by the book)
    orders[1].level = None
    m.close(orders[1])
    assert m.open_orders("a") == [orders[0], orders[2], orders[3]]
    assert m.open_count("a") == 3 and m.open_count("b") == 0 and m.open_orders("b") == []
    with pytest.raises(ValueError):
        m.close(make(9, "b"))


def test_executions_recorded_for_both_accounts() -> None:
    m = OrderManager()
    t = Trade(1, 1, 1, 1, "X", 10, 1, "buy", 1, 2, "a", "b", "c1", "c2")
    m.record(t)
    assert m.executions("a") == [t] and m.executions("b") == [t]
    m.executions("a").clear()  # a copy
    assert m.executions("a") == [t]


def test_executions_are_trades_kept_untracked_by_the_gc() -> None:
    import gc

    m = OrderManager()
    t = Trade(1, 1, 1, 1, "X", 10, 1, "buy", 1, 2, "a", "b", "c1", "c2")
    m.record(t)
    gc.collect()  # a plain tuple of ints and strings is untracked by a collection
    assert not any(gc.is_tracked(fields) for fields in m._executions["a"])
    (got,) = m.executions("b")
    assert type(got) is Trade and got == t and got.sell_client_order_id == "c2"
