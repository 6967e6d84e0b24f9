"""Amending resting orders: ``cancel`` and ``replace`` (looked up by account and
clientOrderId; only a resting order can be amended, anything else is ``unknown_order``).

``replace`` takes a new ``price`` and/or ``qty`` (the new open quantity). The same price with a
qty no larger keeps time priority (``priorityKept``); anything else takes the order out of its
level and puts it at the back of its (new) level, and a new price that crosses the book
matches at once. Risk limits and funds are checked against the new values (the band only when
the price changes) and the reservation is adjusted by the difference.

These are the :class:`~engine.core.Engine`'s handlers; they work on its internals.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from engine import risk
from engine.commands import BUY, CancelOrder, ReplaceOrder
from engine.events import (
    BAD_PRICE,
    BAD_QTY,
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
        return engine._reject(
            in_seq, ts, account, coid, MALFORMED, "account and clientOrderId are required"
        )
    clients = engine._by_client.get(account)
    order = None if clients is None else clients.get(coid)
    if order is None:
        return engine._reject(
            in_seq, ts, account, coid, UNKNOWN_ORDER, f"no order {coid!r} for this account"
        )
    if order.level is None:
        return engine._reject(
            in_seq,
            ts,
            account,
            coid,
            UNKNOWN_ORDER,
            f"order {coid!r} is {order.status}, not open",
            order.symbol,
        )
    return order


def cancel(engine: Engine, cmd: CancelOrder, in_seq: int, ts: int) -> list[Event]:
    """``cancel``: the open rest of a resting order is released and ``cancelled`` (``user``)."""
    account, coid, _ = cmd
    clients = engine._by_client.get(account) if type(account) is str else None
    order = clients.get(coid) if clients is not None and type(coid) is str else None
    if order is None or order.level is None:
        found = _open_order(engine, cmd, in_seq, ts)
        assert type(found) is list
        return found
    engine._markets[order.symbol][1].remove(order)
    engine._open_map[order.account] -= 1
    # release what the open rest reserved
    open_qty = order.open_qty
    wallet = engine._wallet_map[order.account]
    if order.side == BUY:
        inst = engine.instruments[order.symbol]
        asset = inst.currency
        amount = order.price * open_qty * inst.cash_per_tick  # type: ignore[operator]
    else:
        asset = order.symbol
        amount = open_qty
    wallet.reserved[asset] -= amount
    avail = wallet.avail
    avail[asset] = avail.get(asset, 0) + amount
    order.open_qty = 0
    sq = engine._sq
    seq = sq.out_seq = sq.out_seq + 1
    return [
        _tuple_new(
            Cancelled,
            (
                seq,
                in_seq,
                ts,
                order.order_id,
                order.account,
                coid,
                order.symbol,
                open_qty,
                USER,
            ),
        )
    ]


def replace(engine: Engine, cmd: ReplaceOrder, in_seq: int, ts: int) -> list[Event]:
    """``replace``: see the module docstring."""
    found = _open_order(engine, cmd, in_seq, ts)
    if type(found) is list:
        return found
    assert isinstance(found, Order)
    order = found
    account, coid, symbol = order.account, order.client_order_id, order.symbol
    inst = engine.instruments[symbol]
    old_price = order.price
    assert old_price is not None
    if cmd.price is None and cmd.qty is None:
        return engine._reject(
            in_seq, ts, account, coid, MALFORMED, "replace needs price and/or qty", symbol
        )
    price = old_price
    if cmd.price is not None:
        new_price = inst.ticks(cmd.price)
        if new_price is None:
            return engine._reject(
                in_seq,
                ts,
                account,
                coid,
                BAD_PRICE,
                f"price {cmd.price!r} is not a positive multiple of the tick {inst.tick}",
                symbol,
            )
        price = new_price
    old_qty = order.open_qty
    qty = old_qty if cmd.qty is None else cmd.qty
    if type(qty) is not int or qty <= 0 or qty % inst.lot or qty > _MAX_INT:
        return engine._reject(
            in_seq,
            ts,
            account,
            coid,
            BAD_QTY,
            f"qty {qty!r} is not a positive multiple of the lot {inst.lot}",
            symbol,
        )
    book, limited = engine._markets[symbol][1:]
    if limited:
        failed = risk.check(inst, price, qty, book.last_price, None, check_band=price != old_price)
        if failed is not None:
            return engine._reject(in_seq, ts, account, coid, failed[0], failed[1], symbol)
    wallet = engine.wallets.get(account)
    if order.side == BUY:
        asset = inst.currency
        cpt = inst.cash_per_tick
        delta = price * qty * cpt - old_price * old_qty * cpt
    else:
        asset = symbol
        delta = qty - old_qty
    if delta > 0 and not wallet.reserve(asset, delta):
        return engine._reject(
            in_seq,
            ts,
            account,
            coid,
            INSUFFICIENT_FUNDS,
            f"needs {delta} more {asset} units, {wallet.available(asset)} available",
            symbol,
        )
    if delta < 0:
        wallet.release(asset, -delta)
    keep = price == old_price and qty <= old_qty
    if keep:
        level = order.level
        assert level is not None
        level.qty -= old_qty - qty
        order.open_qty = qty
    else:
        book.remove(order)
        order.price = price
        order.open_qty = qty
    order.qty = order.filled + qty
    sq = engine._sq
    seq = sq.out_seq = sq.out_seq + 1
    out: list[Event] = [
        Replaced(seq, in_seq, ts, order.order_id, account, coid, symbol, price, qty, keep)
    ]
    if keep:
        return out
    if order.side == BUY:
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
        engine.orders.close(order)
        engine._done(order, out, in_seq, ts)
    return out
