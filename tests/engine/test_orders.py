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


def test_compact_forgets_finished_orders_and_keeps_resting_ones() -> None:
    m = OrderManager()
    orders = [make(i, "a" if i % 2 else "b") for i in range(1, 11)]
    for o in orders:
        m.add(o)
        o.open_qty = 0  # finished ...
    for i in (2, 5):  # ... but for two resting ones
        orders[i - 1].open_qty = 5
        orders[i - 1].level = Level(10)
        m.rest(orders[i - 1])
    assert m.compact(10, None, None) == 0 and len(m) == 10 and m.base_id == 0
    assert m.compact(10, 4, None) == 4  # ids <= 6 go, but 2 and 5 rest
    assert m.base_id == 7 and len(m) == 6
    assert [o.order_id for o in m.all_orders()] == [2, 5, 7, 8, 9, 10]
    assert m.get(2) is orders[1] and m.get(5) is orders[4] and m.get(7) is orders[6]
    assert m.get(1) is None and m.get(6) is None and m.get(11) is None
    assert m.by_client("b", "c2") is orders[1] and m.by_client("a", "c1") is None
    assert m.open_orders("b") == [orders[1]] and m.open_orders("a") == [orders[4]]
    # the old resting order 2 finishes: forgotten by the next compaction that moves the cutoff
    orders[1].level = None
    orders[1].open_qty = 0
    m.close(orders[1])
    assert m.compact(10, 4, None) == 0 and m.get(2) is orders[1]
    m.add(make(11, "a", "c11"))
    assert m.compact(11, 4, None) == 1 + 1  # order 2 and order 7
    assert m.get(2) is None and m.by_client("b", "c2") is None
    m.add(make(12, "b", "c2"))  # a forgotten order's client order id is free again
    assert m.by_client("b", "c2") is m.get(12) is not None
    assert [o.order_id for o in m.all_orders()] == [5, 8, 9, 10, 11, 12]
    assert len(m) == 6 and m.open_orders("a") == [orders[4]]


def test_compact_trims_executions_in_place() -> None:
    m = OrderManager()
    m.add(make(1, "a"))
    m.add(make(2, "b"))
    kept = m._executions["a"]
    trades = [Trade(i, 1, 1, i, "X", 10, 1, "buy", 1, 2, "a", "b", "c1", "c2") for i in range(5)]
    for t in trades:
        m.record(t)
    m.compact(2, None, 2)
    assert m._executions["a"] is kept and m.executions("a") == trades[-2:]
    assert m.executions("b") == trades[-2:] and len(m) == 2


def test_of_account_lists_retained_orders_by_id() -> None:
    from engine import Engine
    from engine.codec import decode_command

    engine = Engine(clock=lambda: 0)
    engine.submit(decode_command(b'{"op":"instrument","symbol":"X","tick":"1","lot":1}'))
    for acct in ("a", "b"):
        engine.submit(
            decode_command(
                b'{"op":"deposit","account":"%b","asset":"USD","amount":"1000"}' % acct.encode()
            )
        )
    for k, acct in enumerate(["a", "b", "a", "a"]):
        line = (
            b'{"op":"new","account":"%b","clientOrderId":"c%d","symbol":"X","side":"buy",'
            b'"type":"limit","price":"1","qty":1}'
        )
        engine.submit(decode_command(line % (acct.encode(), k)))
    assert [o.client_order_id for o in engine.orders.of_account("a")] == ["c0", "c2", "c3"]
    assert [o.order_id for o in engine.orders.of_account("b")] == [2]
    assert engine.orders.of_account("nobody") == []


def test_newest_executions_are_the_executions_reversed() -> None:
    from engine import Engine
    from engine.codec import decode_command

    engine = Engine(clock=lambda: 0)
    engine.submit(decode_command(b'{"op":"instrument","symbol":"X","tick":"1","lot":1}'))
    engine.submit(decode_command(b'{"op":"deposit","account":"a","asset":"USD","amount":"100"}'))
    engine.submit(decode_command(b'{"op":"deposit","account":"b","asset":"X","amount":10}'))
    line = b'{"op":"new","account":"%b","clientOrderId":"c%d","symbol":"X","side":"%b","qty":1,'
    for k in range(3):
        engine.submit(decode_command(line % (b"b", k, b"sell") + b'"price":"%d"}' % (k + 1)))
        engine.submit(decode_command(line % (b"a", k, b"buy") + b'"price":"%d"}' % (k + 1)))
    trades = engine.orders.executions("a")
    assert [t.price for t in trades] == [1, 2, 3]
    assert list(engine.orders.newest_executions("a")) == trades[::-1]
    assert list(engine.orders.newest_executions("nobody")) == []
