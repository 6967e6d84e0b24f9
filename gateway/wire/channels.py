"""Channel names of the client protocol (``book.AAPL``, ``candles.AAPL.1m``, ``orders``)."""

from __future__ import annotations

from typing import NamedTuple

BOOK = "book"
TRADES = "trades"
TICKER = "ticker"
CANDLES = "candles"
ORDERS = "orders"

RESOLUTIONS: dict[str, int] = {
    "1s": 1_000_000,
    "1m": 60_000_000,
    "5m": 300_000_000,
    "15m": 900_000_000,
    "1h": 3_600_000_000,
    "1d": 86_400_000_000,
}
"""Candle resolutions and their bucket width in microseconds."""

PUBLIC_KINDS = (BOOK, TRADES, TICKER, CANDLES)


class Channel(NamedTuple):
    """A parsed channel name. ``symbol`` is ``None`` for ``orders``; ``resolution`` only for
    candles. For ``orders`` the name a client subscribes to is ``orders``; internally it is
    ``orders.<account>`` (see :func:`orders_channel`)."""

    name: str
    kind: str
    symbol: str | None = None
    resolution: str | None = None


def parse_channel(name: object) -> Channel | None:
    """Parse a public channel name, or ``None`` when it is not one (symbol not checked)."""
    if type(name) is not str or len(name) > 64:
        return None
    parts = name.split(".")
    kind = parts[0]
    if kind == ORDERS and len(parts) == 1:
        return Channel(name, ORDERS)
    if kind in (BOOK, TRADES, TICKER) and len(parts) == 2 and parts[1]:
        return Channel(name, kind, parts[1])
    if kind == CANDLES and len(parts) == 3 and parts[1] and parts[2] in RESOLUTIONS:
        return Channel(name, kind, parts[1], parts[2])
    return None


def orders_channel(account: str) -> str:
    """The internal channel that carries one account's private ``orders`` stream."""
    return f"{ORDERS}.{account}"


def symbol_channels(symbol: str) -> list[str]:
    """Every public channel of a symbol."""
    return [f"{BOOK}.{symbol}", f"{TRADES}.{symbol}", f"{TICKER}.{symbol}"] + [
        f"{CANDLES}.{symbol}.{res}" for res in RESOLUTIONS
    ]
