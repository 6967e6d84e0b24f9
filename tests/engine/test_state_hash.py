from __future__ import annotations

from engine.book import OrderBook
from engine.commands import BUY, GTC, LIMIT
from engine.instruments import Instrument
from engine.orders import Order
from engine.state_hash import state_hash
from engine.wallet import Wallets


def _state(order_qty: int, balance: int) -> str:
    inst = Instrument.define(symbol="X", tick="1", lot=1)
    book = OrderBook("X")
    order = Order(1, "a", "c", "X", BUY, LIMIT, GTC, 5, order_qty, 0)
    book.add(order)
    wallets = Wallets()
    wallets.get("a").credit("USD", balance)
    return state_hash((1, 1, 2, 1), {"X": inst}, {"X": book}, [order], wallets)


def test_same_state_same_hash() -> None:
    assert _state(3, 10) == _state(3, 10)
    assert len(_state(3, 10)) == 64


def test_any_difference_changes_the_hash() -> None:
    base = _state(3, 10)
    assert _state(4, 10) != base
    assert _state(3, 11) != base


def test_fifo_order_is_part_of_the_state() -> None:
    def hashed(ids: list[int]) -> str:
        inst = Instrument.define(symbol="X", tick="1", lot=1)
        book = OrderBook("X")
        orders = {i: Order(i, "a", f"c{i}", "X", BUY, LIMIT, GTC, 5, 1, 0) for i in (1, 2)}
        for i in ids:
            book.add(orders[i])
        return state_hash((0,), {"X": inst}, {"X": book}, orders.values(), Wallets())

    assert hashed([1, 2]) != hashed([2, 1])
