"""Matching: an incoming (or re-priced) order against the opposite side of its book.

Price-time priority: the best level first, within it the oldest order first; every trade is
at the resting order's price. Each fill settles the resting order's wallet at once and the
incoming order's wallet once for all its fills, after the loop:

* buyer: a limit buy consumes ``limit x q`` of its reserved cash and gets ``(limit - price) x
  q`` back (price improvement); a market buy pays ``price x q`` from available cash, filling
  whole lots only while available cash covers them; the buyer is credited ``q`` shares;
* seller: ``q`` reserved shares are consumed; ``price x q`` cash is credited.

The caller (:class:`engine.core.Engine`) has validated the order, reserved its funds and
emitted ``accepted`` (or ``replaced``); it rests, finishes or cancels what is left. These
loops touch the book's levels, the orders' links and the wallets' dicts directly, and keep
the event and trade counters in locals: this is the engine's hot path. The executions lists
keep each trade's fields as a plain tuple (the argument the ``Trade`` event is built from):
the cyclic collector untracks tuples of plain values, so a long trading history costs the
collector nothing (a ``Trade`` namedtuple stays tracked forever).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from engine.book import OrderBook
from engine.commands import BUY, SELL
from engine.events import Done, Event, Trade
from engine.instruments import Instrument
from engine.orders import Order
from engine.wallet import Wallet

if TYPE_CHECKING:
    from engine.core import Engine

_tuple_new = tuple.__new__  # builds an event without the NamedTuple's Python-level __new__


def match_buy(
    engine: Engine,
    order: Order,
    book: OrderBook,
    inst: Instrument,
    wallet: Wallet,
    out: list[Event],
    in_seq: int,
    ts: int,
) -> None:
    """Match a buy against the asks while they cross (``order.price``; ``None``: market)."""
    asks = book.asks
    limit = order.price
    market = limit is None
    remaining = order.open_qty
    cpt = inst.cash_per_tick
    lot = inst.lot
    ccy = inst.currency
    symbol = order.symbol
    oid, account, coid = order.order_id, order.account, order.client_order_id
    sq = engine._sq
    seq = sq.out_seq
    trade_id = engine._next_trade_id
    orders = engine.orders
    executions = orders._executions  # every account that placed an order has a list
    my_executions = executions[account].append
    opened = orders._open
    wallets = engine.wallets._wallets
    b_avail = wallet.avail
    b_res = wallet.reserved
    append = out.append
    afford = 0
    price = 0
    spent = 0  # cash of the fills; the buyer's side is settled once, after the loop
    while remaining:
        best = book.best_ask
        if best is None or (not market and best > limit):  # type: ignore[operator]
            break
        if market:
            afford = (b_avail.get(ccy, 0) - spent) // (best * cpt * lot) * lot
            if not afford:
                break
        price = best
        level = asks[price]
        resting = level.head
        while resting is not None:
            q = resting.open_qty
            if q > remaining:
                q = remaining
            if market:
                if q > afford:
                    q = afford
                afford -= q
            notional = price * q * cpt
            spent += notional
            # seller
            other = resting.account
            seller = wallets[other]
            seller.reserved[symbol] -= q
            s_avail = seller.avail
            try:
                s_avail[ccy] += notional
            except KeyError:
                s_avail[ccy] = notional
            # orders and level
            remaining -= q
            left = resting.open_qty - q
            resting.open_qty = left
            resting.filled += q
            level.qty -= q
            seq += 1
            fields = (
                seq,
                in_seq,
                ts,
                trade_id,
                symbol,
                price,
                q,
                BUY,
                oid,
                resting.order_id,
                account,
                other,
                coid,
                resting.client_order_id,
            )
            trade_id += 1
            append(_tuple_new(Trade, fields))
            my_executions(fields)  # a plain tuple: the collector untracks it
            executions[other].append(fields)
            nxt = resting.next
            if left:
                break  # the aggressor is done (or out of cash) with the resting order
            level.head = nxt
            if nxt is None:
                level.tail = None
            else:
                nxt.prev = None
            resting.next = resting.level = None
            level.count -= 1
            opened[other] -= 1
            seq += 1
            append(
                _tuple_new(
                    Done,
                    (
                        seq,
                        in_seq,
                        ts,
                        resting.order_id,
                        other,
                        resting.client_order_id,
                        symbol,
                    ),
                )
            )
            if not remaining or (market and not afford):
                break
            resting = nxt
        if not level.count:
            book.drop_level(SELL, price)
    sq.out_seq = seq
    filled = order.open_qty - remaining
    if filled:
        # buyer: a market buy pays from available cash; a limit buy consumes its reservation
        # (limit x filled) and gets the price improvement back
        if market:
            b_avail[ccy] -= spent
        else:
            used = limit * filled * cpt  # type: ignore[operator]
            b_res[ccy] -= used
            if used != spent:  # the buyer reserved cash, so it has a ccy balance
                b_avail[ccy] += used - spent
        try:
            b_avail[symbol] += filled
        except KeyError:
            b_avail[symbol] = filled
        engine._next_trade_id = trade_id
        book.last_price = price
        order.open_qty = remaining
        order.filled += filled


def match_sell(
    engine: Engine,
    order: Order,
    book: OrderBook,
    inst: Instrument,
    wallet: Wallet,
    out: list[Event],
    in_seq: int,
    ts: int,
) -> None:
    """Match a sell against the bids while they cross (``order.price``; ``None``: market).
    The order's shares were reserved when it was accepted."""
    bids = book.bids
    limit = order.price
    market = limit is None
    remaining = order.open_qty
    cpt = inst.cash_per_tick
    ccy = inst.currency
    symbol = order.symbol
    oid, account, coid = order.order_id, order.account, order.client_order_id
    sq = engine._sq
    seq = sq.out_seq
    trade_id = engine._next_trade_id
    orders = engine.orders
    executions = orders._executions  # every account that placed an order has a list
    my_executions = executions[account].append
    opened = orders._open
    wallets = engine.wallets._wallets
    s_avail = wallet.avail
    s_res = wallet.reserved
    append = out.append
    price = 0
    proceeds = 0  # the seller's side is settled once, after the loop
    while remaining:
        best = book.best_bid
        if best is None or (not market and best < limit):  # type: ignore[operator]
            break
        price = best
        level = bids[price]
        resting = level.head
        while resting is not None:
            q = resting.open_qty
            if q > remaining:
                q = remaining
            notional = price * q * cpt
            proceeds += notional
            # buyer: it reserved cash at its own price, which is the trade price
            other = resting.account
            buyer = wallets[other]
            buyer.reserved[ccy] -= notional
            b_avail = buyer.avail
            try:
                b_avail[symbol] += q
            except KeyError:
                b_avail[symbol] = q
            # orders and level
            remaining -= q
            left = resting.open_qty - q
            resting.open_qty = left
            resting.filled += q
            level.qty -= q
            seq += 1
            fields = (
                seq,
                in_seq,
                ts,
                trade_id,
                symbol,
                price,
                q,
                SELL,
                resting.order_id,
                oid,
                other,
                account,
                resting.client_order_id,
                coid,
            )
            trade_id += 1
            append(_tuple_new(Trade, fields))
            my_executions(fields)  # a plain tuple: the collector untracks it
            executions[other].append(fields)
            nxt = resting.next
            if left:
                break
            level.head = nxt
            if nxt is None:
                level.tail = None
            else:
                nxt.prev = None
            resting.next = resting.level = None
            level.count -= 1
            opened[other] -= 1
            seq += 1
            append(
                _tuple_new(
                    Done,
                    (
                        seq,
                        in_seq,
                        ts,
                        resting.order_id,
                        other,
                        resting.client_order_id,
                        symbol,
                    ),
                )
            )
            if not remaining:
                break
            resting = nxt
        if not level.count:
            book.drop_level(BUY, price)
    sq.out_seq = seq
    filled = order.open_qty - remaining
    if filled:
        s_res[symbol] -= filled
        try:
            s_avail[ccy] += proceeds
        except KeyError:
            s_avail[ccy] = proceeds
        engine._next_trade_id = trade_id
        book.last_price = price
        order.open_qty = remaining
        order.filled += filled
