"""The order book of one symbol: price levels of FIFO order queues.

Each side is a dict ``price (ticks) -> Level``; a level is a doubly linked list of its
orders (``head`` is the oldest) with its total open quantity and order count, so adding an
order, cancelling one and filling the head of a level are O(1). The best price of each side
is cached; it is recomputed from a heap of the side's prices with lazy deletion (a price is
dropped from the heap when it reaches the top and its level no longer exists) when the best
level empties. Walking levels in price order sorts the side's prices (O(L log L));
``depth(side, n)`` takes the ``n`` best with a partial sort.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from heapq import heappop, heappush

from engine.commands import BUY, SELL
from engine.orders import Order

_object_new = object.__new__


class Level:
    """One price level: a FIFO queue of resting orders. ``book`` and ``side`` say where it
    lives; ``asset`` and ``unit`` what a resting order's open share reserves (a bid:
    ``unit = price x cash_per_tick`` of the currency; an ask: one share of the symbol), so a
    cancel or a fill needs no instrument lookup."""

    __slots__ = ("asset", "book", "count", "head", "price", "qty", "side", "tail", "unit")

    def __init__(
        self,
        price: int,
        book: OrderBook | None = None,
        side: str = BUY,
        asset: str = "",
        unit: int = 1,
    ) -> None:
        self.price = price
        self.head: Order | None = None
        self.tail: Order | None = None
        self.qty = 0
        self.count = 0
        self.book = book
        self.side = side
        self.asset = asset
        self.unit = unit

    def orders(self) -> Iterator[Order]:
        """The level's orders, oldest (first to fill) first."""
        node = self.head
        while node is not None:
            yield node
            node = node.next

    def __repr__(self) -> str:
        return f"Level(price={self.price}, qty={self.qty}, count={self.count})"


class OrderBook:
    """Bids and asks of one symbol. ``best_bid`` / ``best_ask`` are ticks or ``None``;
    ``last_price`` is the price of the last trade (ticks) or ``None``.

    The engine keeps the book uncrossed between commands: it matches an incoming order before
    it rests. The book itself only stores; it does not match.
    """

    __slots__ = (
        "_ask_heap",
        "_bid_heap",
        "asks",
        "best_ask",
        "best_bid",
        "bids",
        "cash_per_tick",
        "currency",
        "last_price",
        "symbol",
    )

    def __init__(self, symbol: str, currency: str = "USD", cash_per_tick: int = 1) -> None:
        self.symbol = symbol
        self.currency = currency  # what a bid reserves: price x cash_per_tick per share
        self.cash_per_tick = cash_per_tick
        self.bids: dict[int, Level] = {}
        self.asks: dict[int, Level] = {}
        self._bid_heap: list[int] = []  # negated prices
        self._ask_heap: list[int] = []
        self.best_bid: int | None = None
        self.best_ask: int | None = None
        self.last_price: int | None = None

    # -- writers ----------------------------------------------------------------------------

    def add(self, order: Order) -> None:
        """Append a resting order (``order.price`` set) at the back of its level."""
        price = order.price
        assert price is not None
        buy = order.side == BUY
        levels = self.bids if buy else self.asks
        level = levels.get(price)
        if level is not None:
            tail = level.tail
            order.level = level
            order.prev = tail
            order.next = None
            if tail is None:
                level.head = order
            else:
                tail.next = order
            level.tail = order
            level.qty += order.open_qty
            level.count += 1
            return
        # a new level holding just this order (Level.__init__, inlined)
        level = levels[price] = _object_new(Level)
        level.price = price
        level.book = self
        level.head = level.tail = order
        level.qty = order.open_qty
        level.count = 1
        order.level = level
        order.prev = order.next = None
        if buy:
            level.side = BUY
            level.asset = self.currency
            level.unit = price * self.cash_per_tick
            heap = self._bid_heap
            heappush(heap, -price)
            if len(heap) > 2 * len(levels) + 64:
                self._bid_heap = [-p for p in levels]
                heapq.heapify(self._bid_heap)
            best = self.best_bid
            if best is None or price > best:
                self.best_bid = price
        else:
            level.side = SELL
            level.asset = self.symbol
            level.unit = 1
            heap = self._ask_heap
            heappush(heap, price)
            if len(heap) > 2 * len(levels) + 64:
                self._ask_heap = list(levels)
                heapq.heapify(self._ask_heap)
            best = self.best_ask
            if best is None or price < best:
                self.best_ask = price

    def remove(self, order: Order) -> None:
        """Unlink a resting order (its ``open_qty`` leaves the level's total)."""
        level = order.level
        assert level is not None
        prev = order.prev
        nxt = order.next
        if prev is None:
            level.head = nxt
        else:
            prev.next = nxt
        if nxt is None:
            level.tail = prev
        else:
            nxt.prev = prev
        order.prev = order.next = order.level = None
        level.qty -= order.open_qty
        level.count -= 1
        if level.count == 0:
            self.drop_level(order.side, level.price)

    def drop_level(self, side: str, price: int) -> None:
        """Remove an empty level and refresh the cached best price (the heap's top, popping
        prices whose level is gone)."""
        if side == BUY:
            levels = self.bids
            del levels[price]
            if price == self.best_bid:
                heap = self._bid_heap
                while heap:
                    if -heap[0] in levels:
                        self.best_bid = -heap[0]
                        return
                    heappop(heap)
                self.best_bid = None
        else:
            levels = self.asks
            del levels[price]
            if price == self.best_ask:
                heap = self._ask_heap
                while heap:
                    if heap[0] in levels:
                        self.best_ask = heap[0]
                        return
                    heappop(heap)
                self.best_ask = None

    # -- readers ----------------------------------------------------------------------------

    def best(self, side: str) -> int | None:
        """Best price of a side (highest bid, lowest ask), or ``None``."""
        return self.best_bid if side == BUY else self.best_ask

    def side_levels(self, side: str) -> dict[int, Level]:
        return self.bids if side == BUY else self.asks

    def level(self, side: str, price: int) -> Level | None:
        return self.side_levels(side).get(price)

    def levels(self, side: str) -> Iterator[Level]:
        """The side's levels, best first."""
        levels = self.side_levels(side)
        for price in sorted(levels, reverse=side == BUY):
            yield levels[price]

    def depth(self, side: str, n: int) -> list[tuple[int, int]]:
        """The ``n`` best levels of a side as ``(price ticks, total qty)``, best first."""
        levels = self.side_levels(side)
        if n <= 0 or not levels:
            return []
        if n == 1:
            best = self.best_bid if side == BUY else self.best_ask
            assert best is not None
            return [(best, levels[best].qty)]
        pick = heapq.nlargest if side == BUY else heapq.nsmallest
        return [(p, levels[p].qty) for p in pick(n, levels)]

    def can_fill(self, side: str, price: int | None, qty: int) -> bool:
        """Whether an incoming ``side`` order limited at ``price`` would find ``qty`` on the
        opposite side (the FOK check). Walks the crossing prices tick by tick from the best
        when that range is smaller than the side, else scans the side's levels."""
        assert price is not None
        need = qty
        if side == BUY:
            levels = self.asks
            best = self.best_ask
            if best is None or best > price:
                return False
            if price - best < len(levels):
                get = levels.get
                for p in range(best, price + 1):
                    level = get(p)
                    if level is not None:
                        need -= level.qty
                        if need <= 0:
                            return True
                return False
            for level_price, level in levels.items():
                if level_price <= price:
                    need -= level.qty
                    if need <= 0:
                        return True
        else:
            levels = self.bids
            best = self.best_bid
            if best is None or best < price:
                return False
            if best - price < len(levels):
                get = levels.get
                for p in range(best, price - 1, -1):
                    level = get(p)
                    if level is not None:
                        need -= level.qty
                        if need <= 0:
                            return True
                return False
            for level_price, level in levels.items():
                if level_price >= price:
                    need -= level.qty
                    if need <= 0:
                        return True
        return False

    def is_crossed(self) -> bool:
        """True if the best bid is at or above the best ask (never true at rest)."""
        bid, ask = self.best_bid, self.best_ask
        return bid is not None and ask is not None and bid >= ask

    def order_count(self) -> int:
        return sum(lv.count for lv in self.bids.values()) + sum(
            lv.count for lv in self.asks.values()
        )

    def __repr__(self) -> str:
        return (
            f"OrderBook({self.symbol!r}, bid={self.best_bid}, ask={self.best_ask}, "
            f"levels={len(self.bids)}/{len(self.asks)})"
        )
