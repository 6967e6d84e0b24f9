"""Orders and the order manager: every accepted order by id and by (account, clientOrderId),
the open (resting) orders of each account, and each account's executions.

An :class:`Order` is a small mutable slotted object; while it rests it is also a node of its
price level's doubly linked list (``prev``/``next``/``level``, see :mod:`engine.book`).
Order ids are assigned 1, 2, 3, ... so the manager keeps them in a list indexed by id (8 bytes
per order instead of a dict entry).

Retention (:meth:`OrderManager.compact`, run by the engine every ``compact_every_orders``
orders): finished orders (filled or cancelled, not resting) older than the newest
``finished_orders_max`` order ids are forgotten, and each account's executions are trimmed to
its newest ``executions_per_account_max``. The list then holds ids from ``_base`` on; the few
older orders that still rest live in ``_old_open`` (resting orders are never forgotten).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from engine.events import Trade

_tuple_new = tuple.__new__

if TYPE_CHECKING:
    from engine.book import Level

NEW = "new"
PARTIALLY_FILLED = "partially_filled"
FILLED = "filled"
CANCELLED = "cancelled"
REJECTED = "rejected"


class Order:
    """One order. ``price`` is in ticks (``None`` for market orders); ``qty`` is the ordered
    quantity (after a replace: ``filled`` plus the new open quantity), ``open_qty`` what is
    still working, ``filled`` what has traded. ``ts`` is the time it was accepted (us)."""

    __slots__ = (
        "account",
        "client_order_id",
        "filled",
        "level",
        "next",
        "open_qty",
        "order_id",
        "prev",
        "price",
        "qty",
        "side",
        "symbol",
        "tif",
        "ts",
        "type",
    )

    def __init__(
        self,
        order_id: int,
        account: str,
        client_order_id: str,
        symbol: str,
        side: str,
        type: str,
        tif: str,
        price: int | None,
        qty: int,
        ts: int,
    ) -> None:
        self.order_id = order_id
        self.account = account
        self.client_order_id = client_order_id
        self.symbol = symbol
        self.side = side
        self.type = type
        self.tif = tif
        self.price = price
        self.qty = qty
        self.open_qty = qty
        self.filled = 0
        self.ts = ts
        self.prev: Order | None = None
        self.next: Order | None = None
        self.level: Level | None = None

    @property
    def status(self) -> str:
        """``new`` / ``partially_filled`` while working, then ``filled`` or ``cancelled``.
        Derived (not stored, to keep orders small): ``qty`` is always ``filled + open_qty +
        the cancelled rest``."""
        if self.open_qty:
            return PARTIALLY_FILLED if self.filled else NEW
        return FILLED if self.filled == self.qty else CANCELLED

    @property
    def is_open(self) -> bool:
        """Still working (resting in a book, or being matched)."""
        return self.open_qty > 0

    def __repr__(self) -> str:
        return (
            f"Order(id={self.order_id}, {self.account}/{self.client_order_id}, {self.symbol} "
            f"{self.side} {self.type} {self.tif} price={self.price} qty={self.qty} "
            f"open={self.open_qty} filled={self.filled} {self.status})"
        )


class OrderManager:
    """Order lookups. The engine is the only writer; everything here is read-only for others.

    The manager holds the *retained* orders: every resting order, and the finished ones that
    :meth:`compact` has not forgotten yet (all of them without retention). ``get``,
    ``by_client``, ``all_orders`` and ``len()`` see retained orders only.

    ``open_orders`` lists resting orders only (an IOC or market order is never open between
    commands); to keep 1,000,000 resting orders small it walks the account's retained orders
    and only a count of resting orders is kept per account. The engine rejects a second order
    with a client order id that one of the account's retained orders has
    (``duplicate_order``); once an order is forgotten its id may be used again.
    """

    __slots__ = ("_base", "_by_client", "_by_id", "_executions", "_old_open", "_open")

    def __init__(self) -> None:
        # _by_id[i] is the order with id _base + i (index 0 of a fresh manager: id 0, None);
        # the engine keeps a bound ``append`` of this list: it is only ever mutated in place
        self._by_id: list[Order | None] = [None]
        self._base = 0
        self._old_open: dict[int, Order] = {}  # id -> a resting order with an id below _base
        self._by_client: dict[str, dict[str, Order]] = {}
        self._open: dict[str, int] = {}  # account -> resting orders
        # account -> the fields of its trades as plain tuples (``Trade`` rebuilt on read):
        # a plain tuple of ints and strings is untracked by the cyclic collector
        self._executions: dict[str, list[tuple[Any, ...]]] = {}

    def __len__(self) -> int:
        """Retained orders."""
        return len(self._by_id) + len(self._old_open) - (self._base == 0)

    def get(self, order_id: int) -> Order | None:
        """The retained order with this id, or ``None``."""
        if type(order_id) is not int or order_id <= 0:
            return None
        i = order_id - self._base
        if i < 0:
            return self._old_open.get(order_id)
        by_id = self._by_id
        return by_id[i] if i < len(by_id) else None

    def by_client(self, account: str, client_order_id: str) -> Order | None:
        """The order ``account`` placed with ``client_order_id``, or ``None``."""
        clients = self._by_client.get(account)
        return None if clients is None else clients.get(client_order_id)

    def open_orders(self, account: str) -> list[Order]:
        """The account's resting orders, by order id."""
        if not self._open.get(account):
            return []
        clients = self._by_client.get(account)
        return [] if clients is None else [o for o in clients.values() if o.level is not None]

    def of_account(self, account: str) -> list[Order]:
        """The account's retained orders (open and finished), by order id."""
        clients = self._by_client.get(account)
        return [] if clients is None else list(clients.values())

    def open_count(self, account: str) -> int:
        """How many orders the account has resting."""
        return self._open.get(account, 0)

    def executions(self, account: str) -> list[Trade]:
        """Trades the account took part in, oldest first (a self-trade appears twice: once as
        buyer, once as seller)."""
        return [_tuple_new(Trade, fields) for fields in self._executions.get(account, ())]

    def newest_executions(self, account: str) -> Iterator[Trade]:
        """:meth:`executions` newest first, built one at a time (a query that wants the newest
        few does not build all of them)."""
        for fields in reversed(self._executions.get(account, ())):
            yield _tuple_new(Trade, fields)

    def all_orders(self) -> list[Order]:
        """Every retained order, by id."""
        return [*self._old_open.values(), *(o for o in self._by_id if o is not None)]

    @property
    def base_id(self) -> int:
        """The lowest order id the id list still covers: every finished order below it has
        been forgotten (0 until the first eviction)."""
        return self._base

    def accounts(self) -> list[str]:
        """Accounts that have placed an order, sorted."""
        return sorted(self._by_client)

    # -- writers (the engine) -------------------------------------------------------------

    def add(self, order: Order) -> None:
        """Register a newly accepted order (ids must arrive 1, 2, 3, ..., each one at
        ``base_id + len`` of the id list)."""
        self._by_id.append(order)
        account = order.account = sys.intern(order.account)
        clients = self._by_client.get(account)
        if clients is None:
            clients = self._by_client[account] = {}
            self._executions[account] = []
        clients[order.client_order_id] = order

    def rest(self, order: Order) -> None:
        """The order now rests in its book."""
        opened = self._open
        opened[order.account] = opened.get(order.account, 0) + 1

    def close(self, order: Order) -> None:
        """The order left its book (filled or cancelled); call once per ``rest``."""
        opened = self._open
        count = opened.get(order.account, 0)
        if count <= 0:
            raise ValueError(f"{order.account!r} has no resting order to close")
        opened[order.account] = count - 1

    def record(self, trade: Trade) -> None:
        """Remember a trade for both accounts' executions."""
        ex = self._executions
        fields = tuple(trade)
        for account in (trade.buy_account, trade.sell_account):
            found = ex.get(account)
            if found is None:
                ex[account] = [fields]
            else:
                found.append(fields)

    def compact(
        self,
        newest_id: int,
        finished_orders_max: int | None,
        executions_per_account_max: int | None,
    ) -> int:
        """Forget finished orders with ids ``<= newest_id - finished_orders_max`` and trim
        every account's executions to its newest ``executions_per_account_max`` (``None``:
        keep all). Resting orders are kept, however old. Lists are mutated in place (the
        engine holds bound methods of them). Returns how many orders were forgotten.

        Only the manager's state and the arguments decide what goes, so a replay of the same
        commands compacts identically. The cost is O(ids passed since the last compaction +
        old resting orders + accounts)."""
        evicted = 0
        if finished_orders_max is not None:
            cutoff = newest_id - finished_orders_max  # forget finished ids <= cutoff
            base = self._base
            k = cutoff + 1 - base  # ids base .. cutoff leave the list
            if k > 0:
                by_client = self._by_client
                old_open = self._old_open
                # older resting orders that have finished since the last compaction
                done = [o for o in old_open.values() if o.level is None]
                for finished in done:
                    del old_open[finished.order_id]
                    del by_client[finished.account][finished.client_order_id]
                evicted = len(done)
                by_id = self._by_id
                for o in by_id[:k]:
                    if o is None:
                        continue  # id 0
                    if o.level is not None:
                        old_open[o.order_id] = o  # still resting: kept, by id
                    else:
                        del by_client[o.account][o.client_order_id]
                        evicted += 1
                del by_id[:k]
                self._base = base + k
        n = executions_per_account_max
        if n is not None:
            for trades in self._executions.values():
                if len(trades) > n:
                    del trades[:-n]
        return evicted
