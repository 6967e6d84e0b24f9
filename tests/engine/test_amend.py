from __future__ import annotations

from typing import Any

import orjson

from engine.codec import order_to_json
from engine.commands import Deposit
from engine.events import (
    Cancelled,
    Done,
    Replaced,
    Trade,
)
from tests.engine.harness import USD, Harness, kinds, reasons


def test_cancel_releases_and_unknown_order(harness: Harness) -> None:
    harness.new("b", "s1", "sell", "10.00", 7)
    assert harness.balance("b", "ACME") == (9_993, 7)
    (ev,) = harness.cancel("b", "s1")
    assert isinstance(ev, Cancelled) and ev.reason == "user" and ev.remaining == 7
    assert harness.balance("b", "ACME") == (10_000, 0)
    assert reasons(harness.cancel("b", "s1")) == ["unknown_order"]
    assert reasons(harness.cancel("b", "nope")) == ["unknown_order"]
    assert reasons(harness.cancel("a", "s1")) == ["unknown_order"]  # another account's id
    book = harness.engine.book("ACME")
    assert book is not None and book.best_ask is None


def test_replace_smaller_keeps_priority(harness: Harness) -> None:
    harness.new("a", "b1", "buy", "10.00", 10)
    harness.new("b", "b2", "buy", "10.00", 10)
    (ev,) = harness.replace("a", "b1", qty=4)
    assert isinstance(ev, Replaced) and ev.priority_kept and ev.qty == 4 and ev.price == 1000
    assert harness.balance("a", "USD") == ((1_000_000 - 40) * USD, 40 * USD)
    events = harness.new("b", "s1", "sell", "10.00", 4)
    assert [e.buy_order_id for e in events if isinstance(e, Trade)] == [1]
    order = harness.engine.orders.get(1)
    assert order is not None and order.qty == 4 and order.status == "filled"


def test_replace_larger_or_new_price_goes_to_the_back(harness: Harness) -> None:
    harness.new("a", "b1", "buy", "10.00", 10)
    harness.new("b", "b2", "buy", "10.00", 10)
    (ev,) = harness.replace("a", "b1", qty=12)
    assert isinstance(ev, Replaced) and not ev.priority_kept
    book = harness.engine.book("ACME")
    assert book is not None
    assert [o.order_id for o in book.bids[1000].orders()] == [2, 1]
    assert book.depth("buy", 1) == [(1000, 22)]
    (ev,) = harness.replace("b", "b2", price="9.99")
    assert isinstance(ev, Replaced) and not ev.priority_kept and ev.qty == 10
    assert book.depth("buy", 5) == [(1000, 12), (999, 10)]
    assert harness.balance("b", "USD") == ((1_000_000 - 99.9) * USD, 99.9 * USD)


def test_replace_crossing_price_matches_at_once(harness: Harness) -> None:
    harness.new("b", "s1", "sell", "10.05", 5)
    harness.new("a", "b1", "buy", "10.00", 8)
    events = harness.replace("a", "b1", price="10.10")
    assert kinds(events) == ["replaced", "trade", "done"]
    trade = events[1]
    assert isinstance(trade, Trade) and trade.price == 1005 and trade.qty == 5
    order = harness.engine.orders.by_client("a", "b1")
    assert order is not None and order.open_qty == 3 and order.price == 1010
    assert harness.balance("a", "USD") == (
        (1_000_000 * USD - 5025 * USD // 100 - 3030 * USD // 100),
        3030 * USD // 100,
    )
    events = harness.replace("a", "b1", price="10.10", qty=3)
    assert kinds(events) == ["replaced"]
    harness.new("b", "s2", "sell", "10.10", 3)
    assert order.status == "filled" and harness.balance("a", "USD")[1] == 0


def test_replace_fully_filled_on_cross(harness: Harness) -> None:
    harness.new("b", "s1", "sell", "10.05", 10)
    harness.new("a", "b1", "buy", "10.00", 8)
    events = harness.replace("a", "b1", price="10.05")
    assert kinds(events) == ["replaced", "trade", "done"]
    done = events[-1]
    assert isinstance(done, Done) and done.order_id == 2
    assert harness.engine.orders.open_orders("a") == []


def test_replace_rejections(harness: Harness) -> None:
    harness.new("a", "b1", "buy", "10.00", 8)
    assert reasons(harness.replace("a", "nope", qty=1)) == ["unknown_order"]
    assert reasons(harness.replace("a", "b1")) == ["malformed"]
    assert reasons(harness.replace("a", "b1", price="x")) == ["bad_price"]
    assert reasons(harness.replace("a", "b1", qty=0)) == ["bad_qty"]
    assert reasons(harness.replace("a", "b1", price="100000.00", qty=100)) == ["insufficient_funds"]
    harness.new("b", "s1", "sell", "10.00", 10_000)
    assert reasons(harness.replace("b", "s1", qty=10_001)) == ["insufficient_funds"]
    order = harness.engine.orders.by_client("a", "b1")
    assert order is not None and order.status == "filled"
    assert reasons(harness.replace("a", "b1", qty=1)) == ["unknown_order"]


def test_replace_keeps_the_ordered_qty_within_64_bits(make_harness: Any) -> None:
    # found while fuzzing (tests/fuzz, the REST-view check): a partly filled order replaced
    # to an open qty of 2**63 - 1 had an ordered qty (filled + open) beyond 64 bits, which
    # GET /v1/order and the orders channel could not write as JSON
    h = make_harness(tick="0.00000001")
    big = 2**63 - 1
    h.submit(Deposit("a", "USD", "100000000000"))
    h.submit(Deposit("b", "ACME", big - 10_000))
    assert kinds(h.new("a", "b1", "buy", "0.00000001", big)) == ["accepted"]
    assert kinds(h.new("b", "s1", "sell", "0.00000001", 5)) == ["accepted", "trade", "done"]
    assert reasons(h.replace("a", "b1", qty=big)) == ["bad_qty"]
    assert reasons(h.replace("a", "b1", qty=big - 4)) == ["bad_qty"]
    (ev,) = h.replace("a", "b1", qty=big - 5)
    assert isinstance(ev, Replaced) and ev.qty == big - 5 and ev.priority_kept
    order = h.engine.orders.by_client("a", "b1")
    assert order is not None and (order.qty, order.filled, order.open_qty) == (big, 5, big - 5)
    orjson.dumps(order_to_json(order, h.engine.instruments["ACME"]))
