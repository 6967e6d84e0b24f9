"""``Engine.state_hash``: a digest of everything that makes up the engine's state.

sha256 over the ``repr`` of: the counters (``in_seq``, ``out_seq``, next order id, next trade
id, and for retention the order manager's ``base_id`` and the order id of the next
compaction); per symbol (sorted) the instrument's fields, the last trade price and every level
in price order with its qty, count and FIFO of order ids; every retained order's fields by id
(resting orders, and finished ones not yet forgotten); every wallet (sorted accounts and
assets). O(state): for tests, replay checks and snapshots.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping

from engine.book import OrderBook
from engine.commands import BUY, SELL
from engine.instruments import Instrument
from engine.orders import Order
from engine.wallet import Wallets


def state_hash(
    counters: tuple[int, ...],
    instruments: Mapping[str, Instrument],
    books: Mapping[str, OrderBook],
    orders: Iterable[Order],
    wallets: Wallets,
) -> str:
    """Hex sha256 of the canonical serialisation described above."""
    h = hashlib.sha256()
    upd = h.update
    upd(repr(("counters", *counters)).encode())
    for symbol in sorted(instruments):
        i = instruments[symbol]
        upd(repr((symbol, i.tick, i.lot, i.currency, i.max_qty, i.max_notional, i.band)).encode())
        book = books[symbol]
        upd(repr(("last", book.last_price)).encode())
        for side in (BUY, SELL):
            for level in book.levels(side):
                ids = [o.order_id for o in level.orders()]
                upd(repr((side, level.price, level.qty, level.count, ids)).encode())
    for o in orders:
        fields = (
            o.order_id,
            o.account,
            o.client_order_id,
            o.symbol,
            o.side,
            o.type,
            o.tif,
            o.price,
            o.qty,
            o.open_qty,
            o.filled,
            o.status,
            o.ts,
        )
        upd(repr(fields).encode())
    for account in wallets.accounts():
        upd(repr((account, wallets.balances(account))).encode())
    return h.hexdigest()
