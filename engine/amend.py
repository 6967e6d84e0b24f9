"""Amending resting orders: ``cancel`` and ``replace`` (looked up by account and
clientOrderId; only a resting order can be amended, anything else is ``unknown_order``).

``replace`` takes a new ``price`` and/or ``qty`` (the new open quantity). The same price with a
qty no larger keeps time priority (``priorityKept``); anything else takes the order out of its
level and puts it at the back of its (new) level, and a new price that crosses the book
matches at once. The ordered qty (filled + the new open qty) must stay within 64 bits, as a
new order's qty does (else ``bad_qty``). Risk limits and funds are checked against the new
values (the band only when the price changes) and the reservation is adjusted by the
difference.

These are the :class:`~engine.core.Engine`'s handlers; they work on its internals.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from engine import messages, risk
from engine.commands import BUY, CancelOrder, ReplaceOrder
from engine.events import (
    INSUFFICIENT_FUNDS,
    MALFORMED,
    UNKNOWN_ORDER,
    USER,
    Cancelled,
    Event,
    Replaced,
)
from engine.matching import match_buy, match_sell
from engine.orders import Order

if TYPE_CHECKING:
    from engine.core import Engine

_MAX_INT = 2**63 - 1
_tuple_new = tuple.__new__


def _open_order(
    engine: Engine, cmd: CancelOrder | ReplaceOrder, in_seq: int, ts: int
) -> Order | list[Event]:
    account, coid = cmd.account, cmd.client_order_id
    if type(account) is not str or type(coid) is not str:
        return engine._reject(in_seq, ts, account, coid, MALFORMED, messages.ids_required())
    clients = engine._by_client.get(account)
    order = None if clients is None else clients.get(coid)
    if order is None:
        return engine._reject(in_seq, ts, account, coid, UNKNOWN_ORDER, messages.no_order(coid))
    if order.level is None:
        return engine._reject(
            in_seq,
            ts,
            account,
            coid,
            UNKNOWN_ORDER,
            messages.not_open(coid, order.status),
            order.symbol,
        )
    return order


def cancel(engine: Engine, cmd: CancelOrder, in_seq: int, ts: int) -> list[Event]:
    """``cancel``: the open rest of a resting order is released and ``cancelled`` (``user``)."""
    account, coid, _ = cmd
    try:
        order = engine._by_client[account][coid]
    except (KeyError, TypeError):  # unknown (or unhashable) account or clientOrderId
        order = None
    exact = type(account) is str and type(coid) is str  # (str subclasses are malformed)
    level = None if order is None or not exact else order.level
    if level is None:
        found = _open_order(engine, cmd, in_seq, ts)
        assert type(found) is list
        return found
    assert order is not None
    open_qty = order.open_qty
    level.book.remove(order)  # type: ignore[union-attr]
    account = order.account
    engine._open_map[account] -= 1
    # release what the open rest reserved (a bid: price x cash_per_tick per share)
    asset = level.asset
    amount = level.unit * open_qty
    wallet = engine._wallet_map[account]
    wallet.reserved[asset] -= amount
    avail = wallet.avail
    try:
        avail[asset] += amount
    except KeyError:
        avail[asset] = amount
    order.open_qty = 0
    sq = engine._sq
    seq = sq.out_seq = sq.out_seq + 1
    return [
        _tuple_new(
            Cancelled,
            (seq, in_seq, ts, order.order_id, account, coid, order.symbol, open_qty, USER),
        )
    ]


def replace(engine: Engine, cmd: ReplaceOrder, in_seq: int, ts: int) -> list[Event]:
    """``replace``: see the module docstring."""
    account, coid, price_text, new_qty, _ = cmd
    try:
        order = engine._by_client[account][coid]
    except (KeyError, TypeError):
        order = None
    if (
        order is None
        or order.level is None
        or type(account) is not str  # (str subclasses are malformed)
        or type(coid) is not str
    ):
        found = _open_order(engine, cmd, in_seq, ts)
        assert type(found) is list
        return found
    account, coid, symbol = order.account, order.client_order_id, order.symbol
    inst, book, limited = engine._markets[symbol]
    old_price = order.price
    assert old_price is not None
    if price_text is None and new_qty is None:
        return engine._reject(
            in_seq, ts, account, coid, MALFORMED, messages.replace_needs_change(), symbol
        )
    price = old_price
    if price_text is not None:
        new_price = None
        if type(price_text) is str:  # (a str subclass is not a price: bad_price)
            try:
                new_price = inst._ticks_memo[price_text]
            except KeyError:
                new_price = inst.ticks(price_text)
        if new_price is None:
            return engine._reject_price(in_seq, ts, account, coid, price_text, inst)
        price = new_price
    old_qty = order.open_qty
    qty = old_qty if new_qty is None else new_qty
    # the ordered qty (filled + the new open qty) stays a 64-bit integer, as a new order's
    if type(qty) is not int or qty <= 0 or qty % inst.lot or qty > _MAX_INT - order.filled:
        return engine._reject_qty(in_seq, ts, account, coid, qty, inst)
    if limited:
        failed = risk.check(inst, price, qty, book.last_price, None, check_band=price != old_price)
        if failed is not None:
            return engine._reject(in_seq, ts, account, coid, failed[0], failed[1], symbol)
    wallet = engine._wallet_map[account]
    buy = order.side == BUY
    if buy:
        asset = inst.currency
        delta = (price * qty - old_price * old_qty) * inst.cash_per_tick
    else:
        asset = symbol
        delta = qty - old_qty
    if delta:
        avail = wallet.avail
        reserved = wallet.reserved
        try:
            have = avail[asset]
        except KeyError:
            have = 0
        if delta > 0:
            if have < delta:
                return engine._reject(
                    in_seq,
                    ts,
                    account,
                    coid,
                    INSUFFICIENT_FUNDS,
                    messages.insufficient(delta, have, asset, inst, more=True),
                    symbol,
                )
        elif reserved[asset] < -delta:
            raise ValueError(f"release of {-delta} {asset} exceeds the reserved amount")
        avail[asset] = have - delta
        reserved[asset] += delta
    keep = price == old_price and qty <= old_qty
    level = order.level
    assert level is not None
    if keep:
        level.qty -= old_qty - qty
    else:  # leave the level (its open quantity is still old_qty here)
        book.remove(order)
        order.price = price
    order.open_qty = qty
    order.qty = order.filled + qty
    sq = engine._sq
    seq = sq.out_seq = sq.out_seq + 1
    out: list[Event] = [
        _tuple_new(
            Replaced, (seq, in_seq, ts, order.order_id, account, coid, symbol, price, qty, keep)
        )
    ]
    if keep:
        return out
    if buy:
        best = book.best_ask
        if best is not None and best <= price:
            match_buy(engine, order, book, inst, wallet, out, in_seq, ts)
    else:
        best = book.best_bid
        if best is not None and best >= price:
            match_sell(engine, order, book, inst, wallet, out, in_seq, ts)
    if order.open_qty:
        book.add(order)
    else:
        engine._open_map[account] -= 1
        engine._done(order, out, in_seq, ts)
    return out
