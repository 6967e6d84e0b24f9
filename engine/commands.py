"""Engine input: small immutable command values (docs/engine.md, "Commands").

Field values are kept as they arrive on the wire (prices and cash as decimal strings) and are
validated by the engine, so that a bad value becomes a ``rejected`` event with its reason
rather than an exception. ``ts`` is microseconds since the Unix epoch, or ``None`` for the
sequencer to stamp.
"""

from __future__ import annotations

from typing import NamedTuple

BUY = "buy"
SELL = "sell"
LIMIT = "limit"
MARKET = "market"
GTC = "GTC"
IOC = "IOC"
FOK = "FOK"


class DefineInstrument(NamedTuple):
    """``op: instrument``: defines a symbol before any order on it."""

    symbol: str
    tick: str
    lot: int
    currency: str = "USD"
    max_qty: int | None = None
    max_notional: str | None = None
    band: str | None = None
    ts: int | None = None


class Deposit(NamedTuple):
    """``op: deposit``: credits ``amount`` of ``asset`` (a currency or a symbol)."""

    account: str
    asset: str
    amount: str | int
    ts: int | None = None


class NewOrder(NamedTuple):
    """``op: new``: a limit or market order."""

    account: str
    client_order_id: str
    symbol: str
    side: str
    type: str
    price: str | None
    qty: int
    tif: str = GTC
    ts: int | None = None


class CancelOrder(NamedTuple):
    """``op: cancel``: cancels the open rest of an order."""

    account: str
    client_order_id: str
    ts: int | None = None


class ReplaceOrder(NamedTuple):
    """``op: replace``: amends the price and/or open quantity of an open limit order."""

    account: str
    client_order_id: str
    price: str | None = None
    qty: int | None = None
    ts: int | None = None


class Malformed(NamedTuple):
    """An input line that is not a valid command; the engine answers ``rejected`` with
    ``reason`` (``malformed``, or ``bad_price``/``bad_qty`` for a field of the wrong type)."""

    message: str
    account: str | None = None
    client_order_id: str | None = None
    ts: int | None = None
    reason: str = "malformed"


Command = DefineInstrument | Deposit | NewOrder | CancelOrder | ReplaceOrder | Malformed
