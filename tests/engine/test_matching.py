from __future__ import annotations

from typing import Any

from engine.commands import (
    Deposit,
)
from engine.events import (
    Accepted,
    Cancelled,
    Done,
    Trade,
)
from tests.engine.harness import USD, Harness, kinds, reasons


def test_price_time_priority_and_trade_at_resting_price(harness: Harness) -> None:
    harness.new("b", "s1", "sell", "10.00", 5)
    harness.new("b", "s2", "sell", "9.99", 5)
    harness.new("b", "s3", "sell", "9.99", 5)
    events = harness.new("a", "b1", "buy", "10.00", 12)
    assert kinds(events) == ["accepted", "trade", "done", "trade", "done", "trade", "done"]
    trades = [e for e in events if isinstance(e, Trade)]
    assert [(t.price, t.qty, t.sell_order_id) for t in trades] == [
        (999, 5, 2),
        (999, 5, 3),
        (1000, 2, 1),
    ]
    assert all(t.aggressor == "buy" and t.buy_order_id == 4 for t in trades)
    assert [t.trade_id for t in trades] == [1, 2, 3]
    assert isinstance(events[-1], Done) and events[-1].order_id == 4
    s1 = harness.engine.orders.get(1)
    assert s1 is not None and s1.status == "partially_filled" and s1.filled == 2
    assert s1.open_qty == 3
    book = harness.engine.book("ACME")
    assert book is not None and book.depth("sell", 5) == [(1000, 3)] and book.best_bid is None
    assert book.last_price == 1000


def test_price_improvement_refunds_the_buyer(harness: Harness) -> None:
    harness.new("b", "s1", "sell", "9.00", 10)
    harness.new("a", "b1", "buy", "10.00", 10)
    # a paid 90.00, not the 100.00 it reserved
    assert harness.balance("a", "USD") == ((1_000_000 - 90) * USD, 0)
    assert harness.balance("a", "ACME") == (10_010, 0)
    assert harness.balance("b", "USD") == ((1_000_000 + 90) * USD, 0)
    assert harness.balance("b", "ACME") == (9_990, 0)


def test_sell_aggressor_partially_fills_then_rests(harness: Harness) -> None:
    harness.new("a", "b1", "buy", "10.00", 4)
    events = harness.new("b", "s1", "sell", "10.00", 10)
    assert kinds(events) == ["accepted", "trade", "done"]
    trade = events[1]
    assert isinstance(trade, Trade) and trade.aggressor == "sell" and trade.qty == 4
    order = harness.engine.orders.by_client("b", "s1")
    assert order is not None and order.status == "partially_filled" and order.open_qty == 6
    assert harness.balance("b", "ACME") == (9_990, 6)
    book = harness.engine.book("ACME")
    assert book is not None and book.depth("sell", 1) == [(1000, 6)] and not book.is_crossed()


def test_ioc_cancels_the_rest(harness: Harness) -> None:
    harness.new("b", "s1", "sell", "10.00", 3)
    events = harness.new("a", "b1", "buy", "10.00", 5, tif="IOC")
    assert kinds(events) == ["accepted", "trade", "done", "cancelled"]
    cancelled = events[-1]
    assert isinstance(cancelled, Cancelled) and cancelled.reason == "ioc"
    assert cancelled.remaining == 2
    assert harness.balance("a", "USD") == ((1_000_000 - 30) * USD, 0)
    assert harness.engine.orders.open_orders("a") == []
    order = harness.engine.orders.by_client("a", "b1")
    assert order is not None and order.status == "cancelled" and order.filled == 3


def test_ioc_with_nothing_to_match(harness: Harness) -> None:
    events = harness.new("a", "b1", "buy", "10.00", 5, tif="IOC")
    assert kinds(events) == ["accepted", "cancelled"]
    assert harness.balance("a", "USD") == (1_000_000 * USD, 0)


def test_fok_all_or_nothing(harness: Harness) -> None:
    harness.new("b", "s1", "sell", "10.00", 3)
    harness.new("b", "s2", "sell", "10.01", 3)
    harness.new("b", "s3", "sell", "10.50", 10)
    events = harness.new("a", "f1", "buy", "10.01", 7, tif="FOK")
    assert kinds(events) == ["accepted", "cancelled"] and reasons(events) == ["fok"]
    assert harness.balance("a", "USD") == (1_000_000 * USD, 0)
    events = harness.new("a", "f2", "buy", "10.01", 6, tif="FOK")
    assert kinds(events) == ["accepted", "trade", "done", "trade", "done", "done"]


def test_fok_sell(harness: Harness) -> None:
    harness.new("a", "b1", "buy", "10.00", 3)
    events = harness.new("b", "f1", "sell", "10.00", 4, tif="FOK")
    assert reasons(events) == ["fok"]
    assert harness.balance("b", "ACME") == (10_000, 0)
    events = harness.new("b", "f2", "sell", "9.00", 3, tif="FOK")
    assert kinds(events) == ["accepted", "trade", "done", "done"]


def test_market_buy_limited_by_cash(make_harness: Any) -> None:
    h: Harness = make_harness()
    h.submit(Deposit("poor", "USD", "25"))
    h.new("b", "s1", "sell", "10.00", 1)
    h.new("b", "s2", "sell", "10.00", 5)
    events = h.new("poor", "m1", "buy", None, 5, type="market")
    assert kinds(events) == ["accepted", "trade", "done", "trade", "cancelled"]
    accepted = events[0]
    assert isinstance(accepted, Accepted) and accepted.price is None and accepted.tif == "IOC"
    assert [e.qty for e in events if isinstance(e, Trade)] == [1, 1]
    assert reasons(events) == ["market_unfilled"]
    assert h.balance("poor", "USD") == (5 * USD, 0)
    assert h.balance("poor", "ACME") == (2, 0)


def test_market_sell_empty_book_and_no_shares(harness: Harness) -> None:
    events = harness.new("a", "m1", "sell", None, 5, type="market")
    assert kinds(events) == ["accepted", "cancelled"] and reasons(events) == ["market_unfilled"]
    assert harness.balance("a", "ACME") == (10_000, 0)
    events = harness.new("a", "m2", "sell", None, 10_001, type="market")
    assert reasons(events) == ["insufficient_funds"]


def test_self_trade_settles(harness: Harness) -> None:
    harness.new("a", "s1", "sell", "10.00", 5)
    events = harness.new("a", "b1", "buy", "10.00", 5)
    assert kinds(events) == ["accepted", "trade", "done", "done"]
    assert harness.balance("a", "USD") == (1_000_000 * USD, 0)
    assert harness.balance("a", "ACME") == (10_000, 0)
    assert len(harness.engine.orders.executions("a")) == 2
