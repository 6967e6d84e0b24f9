"""Which orders rest, derived from events: scripted edge cases through the real engine, the
mirror compared with the engine's book after every command."""

from __future__ import annotations

import pytest

from engine.commands import (
    CancelOrder,
    Command,
    DefineInstrument,
    Deposit,
    NewOrder,
    ReplaceOrder,
)
from engine.core import Engine
from gateway.marketdata.l2book import L2Book
from gateway.marketdata.publisher import Publisher, PublisherConfig

BUY, SELL = "buy", "sell"


def lim(acct: str, coid: str, side: str, price: str, qty: int, tif: str = "GTC") -> NewOrder:
    return NewOrder(acct, coid, "X", side, "limit", price, qty, tif)


SCRIPTS: dict[str, list[Command]] = {
    "rest_and_partial_fill": [
        lim("a", "s1", SELL, "10.00", 5),
        lim("a", "s2", SELL, "10.01", 5),
        lim("b", "b1", BUY, "10.01", 7),  # takes 5 @10.00 and 2 @10.01; fully filled
        lim("b", "b2", BUY, "10.02", 10),  # takes 3 @10.01, rests 7 @10.02
    ],
    "ioc_fok_market": [
        lim("a", "s1", SELL, "10.00", 5),
        lim("a", "s2", SELL, "10.05", 5),
        lim("b", "i1", BUY, "10.00", 8, "IOC"),  # 5 filled, 3 cancelled: never rests
        lim("b", "f1", BUY, "10.05", 50, "FOK"),  # cannot fill: cancelled, no trade
        lim("a", "s3", SELL, "10.06", 5),
        NewOrder("b", "m1", "X", BUY, "market", None, 7, "IOC"),  # sweeps two levels
    ],
    "replace": [
        lim("a", "s1", SELL, "10.10", 5),
        lim("a", "s2", SELL, "10.10", 5),
        lim("b", "b1", BUY, "10.00", 10),
        ReplaceOrder("b", "b1", qty=4),  # smaller: keeps priority, level shrinks
        ReplaceOrder("b", "b1", price="10.02"),  # moves level
        ReplaceOrder("a", "s2", price="10.02", qty=6),  # crosses: trades 4, rests 2 @10.02
        ReplaceOrder("a", "s1", qty=9),  # larger: back of the level
        CancelOrder("a", "s2"),
        CancelOrder("a", "s2"),  # unknown now: rejected, nothing changes
    ],
    "self_trade_and_done": [
        lim("a", "s1", SELL, "10.00", 5),
        lim("a", "b1", BUY, "10.00", 5),
        lim("a", "s2", SELL, "9.99", 3),
        lim("b", "b2", BUY, "10.00", 1),
        lim("b", "b3", BUY, "9.98", 1),
        lim("b", "b4", BUY, "9.97", 1),
        lim("a", "s3", SELL, "9.97", 5),  # sweeps the bids, rests 2 @9.97... after 3 fills
    ],
}


@pytest.mark.parametrize("name", list(SCRIPTS))
@pytest.mark.parametrize("depth", [1, 2, 50])
def test_mirror_equals_engine_book_after_every_command(name: str, depth: int) -> None:
    engine = Engine(clock=lambda: 1)
    pub = Publisher(
        PublisherConfig(epoch="r", book_depth=depth), sink=lambda env: None, clock=lambda: 0,
        instrument_lookup=engine.instruments.get,
    )  # fmt: skip
    setup: list[Command] = [DefineInstrument("X", "0.01", 1)]
    for acct in ("a", "b"):
        setup += [Deposit(acct, "USD", "1000000"), Deposit(acct, "X", 1000)]
    for cmd in setup:
        assert engine.submit(cmd) == []
    for cmd in SCRIPTS[name]:
        pub.on_events(engine.submit(cmd))
        mirror = pub.book("X")
        book = engine.book("X")
        assert isinstance(mirror, L2Book) and book is not None
        for side, is_bid in ((BUY, True), (SELL, False)):
            assert mirror.depth_levels(is_bid, 100) == book.depth(side, 100), cmd
    assert len(pub._resting) == sum(len(engine.orders.open_orders(a)) for a in "ab")
