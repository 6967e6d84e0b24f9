"""Orders and the order manager: every accepted order by id and by (account, clientOrderId),
the open (resting) orders of each account, and each account's executions.

An :class:`Order` is a small mutable slotted object; while it rests it is also a node of its
price level's doubly linked list (``prev``/``next``/``level``, see :mod:`engine.book`).
Order ids are assigned 1, 2, 3, ... so the manager keeps them in a list indexed by id (8 bytes
per order instead of a dict entry).
"""

from __future__ import annotations

import sys
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

    ``open_orders`` lists resting orders only (an IOC or market order is never open between
    commands); to keep 1,000,000 resting orders small it walks the account's orders (O(orders
    the account ever placed)) and only a count of resting orders is kept per account. Client
    order ids are never reused by an account: the engine rejects a second order with an id the
    account has used (``duplicate_order``).
    """

    __slots__ = ("_by_client", "_by_id", "_executions", "_open")

    def __init__(self) -> None:
        self._by_id: list[Order | None] = [None]
        self._by_client: dict[str, dict[str, Order]] = {}
        self._open: dict[str, int] = {}  # account -> resting orders
        # account -> the fields of its trades as plain tuples (``Trade`` rebuilt on read):
        # a plain tuple of ints and strings is untracked by the cyclic collector
        self._executions: dict[str, list[tuple[Any, ...]]] = {}

    def __len__(self) -> int:
        return len(self._by_id) - 1

    def get(self, order_id: int) -> Order | None:
        """The order with this id, or ``None``."""
        if type(order_id) is not int or order_id <= 0:
            return None
        by_id = self._by_id
        return by_id[order_id] if order_id < len(by_id) else None

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

    def open_count(self, account: str) -> int:
        """How many orders the account has resting."""
        return self._open.get(account, 0)

    def executions(self, account: str) -> list[Trade]:
        """Trades the account took part in, oldest first (a self-trade appears twice: once as
        buyer, once as seller)."""
        return [_tuple_new(Trade, fields) for fields in self._executions.get(account, ())]

    def all_orders(self) -> list[Order]:
        """Every accepted order, by id."""
        return [o for o in self._by_id if o is not None]

    def accounts(self) -> list[str]:
        """Accounts that have placed an order, sorted."""
        return sorted(self._by_client)

    # -- writers (the engine) -------------------------------------------------------------

    def add(self, order: Order) -> None:
        """Register a newly accepted order (ids must arrive 1, 2, 3, ...)."""
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
