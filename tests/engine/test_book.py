from __future__ import annotations

import random

from engine.book import OrderBook
from engine.commands import BUY, GTC, LIMIT, SELL
from engine.orders import Order

_ids = iter(range(1, 10**9))


def order(side: str, price: int, qty: int = 10, account: str = "a") -> Order:
    oid = next(_ids)
    return Order(oid, account, f"c{oid}", "X", side, LIMIT, GTC, price, qty, 0)


def test_empty_book() -> None:
    book = OrderBook("X")
    assert book.best_bid is None and book.best_ask is None
    assert book.depth(BUY, 5) == [] and book.depth(SELL, 5) == []
    assert list(book.levels(BUY)) == []
    assert not book.is_crossed()


def test_add_tracks_best_and_depth() -> None:
    book = OrderBook("X")
    for p in (100, 102, 101, 102):
        book.add(order(BUY, p))
    for p in (105, 103, 104):
        book.add(order(SELL, p, 5))
    assert book.best_bid == 102 and book.best_ask == 103
    assert book.depth(BUY, 2) == [(102, 20), (101, 10)]
    assert book.depth(BUY, 1) == [(102, 20)]
    assert book.depth(SELL, 10) == [(103, 5), (104, 5), (105, 5)]
    assert [lv.price for lv in book.levels(BUY)] == [102, 101, 100]
    assert [lv.price for lv in book.levels(SELL)] == [103, 104, 105]
    assert book.order_count() == 7


def test_fifo_within_level_and_remove_middle() -> None:
    book = OrderBook("X")
    a, b, c = order(BUY, 100), order(BUY, 100), order(BUY, 100)
    for o in (a, b, c):
        book.add(o)
    level = book.bids[100]
    assert [o.order_id for o in level.orders()] == [a.order_id, b.order_id, c.order_id]
    book.remove(b)
    assert [o.order_id for o in level.orders()] == [a.order_id, c.order_id]
    assert level.qty == 20 and level.count == 2
    assert b.level is None and b.prev is None and b.next is None
    book.remove(a)
    assert level.head is c and level.tail is c and c.prev is None
    book.remove(c)
    assert 100 not in book.bids and book.best_bid is None


def test_removing_best_level_falls_back_to_next() -> None:
    book = OrderBook("X")
    o1, o2, o3 = order(SELL, 10), order(SELL, 12), order(SELL, 11)
    for o in (o1, o2, o3):
        book.add(o)
    book.remove(o1)
    assert book.best_ask == 11
    book.remove(o3)
    assert book.best_ask == 12
    # a level re-created after being emptied is found again
    o4 = order(SELL, 10)
    book.add(o4)
    assert book.best_ask == 10
    book.remove(o4)
    assert book.best_ask == 12


def test_depth_partial_and_zero() -> None:
    book = OrderBook("X")
    for p in range(1, 50):
        book.add(order(SELL, p))
    assert book.depth(SELL, 0) == []
    assert book.depth(SELL, 3) == [(1, 10), (2, 10), (3, 10)]


def test_is_crossed_detects_bad_state() -> None:
    book = OrderBook("X")
    book.add(order(BUY, 10))
    book.add(order(SELL, 10))
    assert book.is_crossed()


def test_random_churn_matches_reference_model() -> None:
    rnd = random.Random(7)
    book = OrderBook("X")
    live: list[Order] = []
    for _ in range(5000):
        if live and rnd.random() < 0.45:
            o = live.pop(rnd.randrange(len(live)))
            book.remove(o)
        else:
            side = BUY if rnd.random() < 0.5 else SELL
            o = order(side, rnd.randint(1, 60) if side == BUY else rnd.randint(61, 120))
            book.add(o)
            live.append(o)
        bids = [o.price for o in live if o.side == BUY and o.price is not None]
        asks = [o.price for o in live if o.side == SELL and o.price is not None]
        assert book.best_bid == (max(bids) if bids else None)
        assert book.best_ask == (min(asks) if asks else None)
    # heaps stay bounded by the compaction rule
    assert len(book._bid_heap) <= 2 * len(book.bids) + 65
    assert len(book._ask_heap) <= 2 * len(book.asks) + 65
    for side in (BUY, SELL):
        expect: dict[int, list[int]] = {}
        for o in sorted(live, key=lambda o: o.order_id):
            if o.side == side:
                assert o.price is not None
                expect.setdefault(o.price, []).append(o.order_id)
        got = {lv.price: [o.order_id for o in lv.orders()] for lv in book.levels(side)}
        assert got == expect
        for lv in book.levels(side):
            assert lv.qty == 10 * lv.count


def test_can_fill_counts_only_crossing_liquidity() -> None:
    book = OrderBook("X")
    for p, q in ((100, 3), (101, 4), (140, 50)):
        book.add(order(SELL, p, q))
    book.add(order(BUY, 90, 5))
    assert book.can_fill(BUY, 101, 7) and not book.can_fill(BUY, 101, 8)
    assert not book.can_fill(BUY, 99, 1)
    assert book.can_fill(BUY, 10_000, 57)  # a wide range: scans the levels
    assert not book.can_fill(BUY, 10_000, 58)
    assert book.can_fill(SELL, 90, 5) and not book.can_fill(SELL, 90, 6)
    assert not book.can_fill(SELL, 91, 1) and not book.can_fill(SELL, 1, 6)
    assert book.can_fill(SELL, 1, 5)
    assert not OrderBook("Y").can_fill(BUY, 100, 1)


def test_level_knows_its_book_and_what_a_share_reserves() -> None:
    book = OrderBook("X", "EUR", 1_000_000)
    book.add(order(BUY, 250))
    book.add(order(SELL, 260))
    bid, ask = book.bids[250], book.asks[260]
    assert (bid.book, bid.side, bid.asset, bid.unit) == (book, BUY, "EUR", 250 * 1_000_000)
    assert (ask.book, ask.side, ask.asset, ask.unit) == (book, SELL, "X", 1)
