"""Engine output: small immutable event values (docs/engine.md, "Events").

Every event carries ``seq`` (gap-free from 1 over the whole engine output), ``in_seq`` (the
input command that caused it) and ``ts`` (microseconds). Prices are integer ticks of the
event's ``symbol``; :mod:`engine.codec` turns events into the spec's JSON form. Order events
also carry ``symbol`` so that consumers need no lookup to format or route them.
"""

from __future__ import annotations

from typing import NamedTuple

# rejection reasons
UNKNOWN_SYMBOL = "unknown_symbol"
BAD_PRICE = "bad_price"
BAD_QTY = "bad_qty"
DUPLICATE_ORDER = "duplicate_order"
UNKNOWN_ORDER = "unknown_order"
INSUFFICIENT_FUNDS = "insufficient_funds"
RISK_MAX_QTY = "risk_max_qty"
RISK_MAX_NOTIONAL = "risk_max_notional"
RISK_PRICE_BAND = "risk_price_band"
RISK_MAX_OPEN_ORDERS = "risk_max_open_orders"
MALFORMED = "malformed"

# cancel reasons
USER = "user"
REASON_IOC = "ioc"
REASON_FOK = "fok"
MARKET_UNFILLED = "market_unfilled"


class Accepted(NamedTuple):
    seq: int
    in_seq: int
    ts: int
    order_id: int
    account: str
    client_order_id: str
    symbol: str
    side: str
    type: str
    price: int | None  # ticks; None for market orders
    qty: int
    tif: str


class Rejected(NamedTuple):
    seq: int
    in_seq: int
    ts: int
    account: str | None
    client_order_id: str | None
    reason: str
    message: str
    symbol: str | None = None


class Trade(NamedTuple):
    seq: int
    in_seq: int
    ts: int
    trade_id: int
    symbol: str
    price: int  # ticks
    qty: int
    aggressor: str
    buy_order_id: int
    sell_order_id: int
    buy_account: str
    sell_account: str
    buy_client_order_id: str
    sell_client_order_id: str


class Cancelled(NamedTuple):
    seq: int
    in_seq: int
    ts: int
    order_id: int
    account: str
    client_order_id: str
    symbol: str
    remaining: int
    reason: str


class Replaced(NamedTuple):
    seq: int
    in_seq: int
    ts: int
    order_id: int
    account: str
    client_order_id: str
    symbol: str
    price: int  # ticks
    qty: int  # the new open quantity
    priority_kept: bool


class Done(NamedTuple):
    seq: int
    in_seq: int
    ts: int
    order_id: int
    account: str
    client_order_id: str
    symbol: str


Event = Accepted | Rejected | Trade | Cancelled | Replaced | Done
