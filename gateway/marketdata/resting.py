"""Which orders rest on the book, and where: derived from engine events alone.

The events do not say "rested", so the mirror follows each order from ``accepted`` (or
``replaced``) through the command's trades: at the end of the command an order that is still
open (not ``done``, not ``cancelled``), has a limit price and an open quantity rests at that
price. Consequences applied to the :class:`~gateway.marketdata.l2book.L2Book` levels:

* ``trade``: the resting side's level at the trade price loses ``qty``; both orders' open
  quantities shrink.
* ``cancelled`` of a resting order: its level loses the open rest (an IOC/FOK/market rest that
  never rested changes nothing).
* ``replaced``: the order leaves its old level; it rests again (new price, new open qty) at the
  end of the command unless it trades away or is cancelled in between.
* ``done``: the order is forgotten (its level already lost the traded quantity).

This works in distributed mode, where the publisher only sees the event stream, and replays
deterministically. The mirror must see the event stream from the engine's start (or from a
state it was restored from).
"""

from __future__ import annotations

from engine.events import Accepted, Cancelled, Done, Replaced, Trade
from gateway.marketdata.l2book import L2Book, Side


class _Order:
    """An open order: its book side, level key (``-ticks`` for bids) and open quantity."""

    __slots__ = ("key", "open", "resting", "side", "sign")

    def __init__(self, side: Side, sign: int, price: int | None, open_qty: int) -> None:
        self.side = side
        self.sign = sign
        self.key = None if price is None else sign * price
        self.open = open_qty
        self.resting = False

    def take(self) -> None:
        """Remove a resting order's open rest from its level."""
        if self.open > 0 and self.key is not None:
            self.side.add(self.key, -self.open)


class RestingOrders:
    """Open orders of every symbol by order id, and the ones the current command touched."""

    __slots__ = ("_new", "_orders")

    def __init__(self) -> None:
        self._orders: dict[int, _Order] = {}
        self._new: list[int] = []

    def __len__(self) -> int:
        return len(self._orders)

    def accepted(self, ev: Accepted, book: L2Book) -> None:
        if ev.side == "buy":
            self._orders[ev.order_id] = _Order(book.bids, -1, ev.price, ev.qty)
        else:
            self._orders[ev.order_id] = _Order(book.asks, 1, ev.price, ev.qty)
        self._new.append(ev.order_id)

    def trade(self, ev: Trade, book: L2Book) -> None:
        qty = ev.qty
        if ev.aggressor == "buy":
            book.asks.add(ev.price, -qty)
            resting, aggressor = ev.sell_order_id, ev.buy_order_id
        else:
            book.bids.add(-ev.price, -qty)
            resting, aggressor = ev.buy_order_id, ev.sell_order_id
        orders = self._orders
        o = orders.get(resting)
        if o is not None:
            o.open -= qty
        o = orders.get(aggressor)
        if o is not None:
            o.open -= qty

    def cancelled(self, ev: Cancelled) -> None:
        o = self._orders.pop(ev.order_id, None)
        if o is not None and o.resting:
            o.take()

    def replaced(self, ev: Replaced) -> None:
        o = self._orders.get(ev.order_id)
        if o is None:
            return
        if o.resting:
            o.take()
            o.resting = False
        o.key = o.sign * ev.price
        o.open = ev.qty
        self._new.append(ev.order_id)

    def done(self, ev: Done) -> None:
        o = self._orders.pop(ev.order_id, None)
        if o is not None and o.resting:
            o.take()

    def end_command(self) -> None:
        """Rest what the command left open (the remainder of GTC limit orders)."""
        new = self._new
        if not new:
            return
        orders = self._orders
        for order_id in new:
            o = orders.get(order_id)
            if o is None or o.resting:
                continue
            key = o.key
            if key is not None and o.open > 0:
                o.resting = True
                o.side.add(key, o.open)
            else:
                del orders[order_id]
        new.clear()
