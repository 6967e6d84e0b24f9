"""The ticker of one symbol: session statistics from trades, best bid/ask from the book.

Session: the UTC day of the event time (``ts``). The first trade whose UTC day is later than the
current session's starts a new session (open = its price, volume and turnover restart); until
then the previous session's values stay. Before the first trade ``last``, ``open``, ``high``,
``low``, ``change`` and ``changePct`` are ``null``, ``volume`` is 0 and ``turnover`` ``"0.00"``.

``change`` = last - open as a price string; ``changePct`` = 100 * change / open with two
decimals, rounded half away from zero (``"-1.25"``); ``turnover`` = sum of price x qty as a
cash decimal string (``engine.units.format_cash``); ``bid``/``ask`` the best prices or ``null``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from engine.instruments import Instrument
from engine.units import CASH_DECIMALS, format_scaled

DAY_US = 86_400_000_000
_CASH_SCALE = 10**CASH_DECIMALS


def cash_text(units: int) -> str:
    """``engine.units.format_cash`` for a non-negative amount (a turnover), in one division:
    at least two decimals, trailing zeros past them dropped."""
    whole, frac = divmod(units, _CASH_SCALE)
    if not frac:
        return f"{whole}.00"
    text = f"{frac:0{CASH_DECIMALS}d}".rstrip("0")
    return f"{whole}.{text}" if len(text) >= 2 else f"{whole}.{text}0"


class Ticker:
    """Session values of one symbol (prices in ticks, turnover in cash units)."""

    __slots__ = (
        "_changes",
        "_inst",
        "_session",
        "_texts",
        "ask",
        "bid",
        "day",
        "dirty",
        "high",
        "last",
        "low",
        "open",
        "turnover",
        "volume",
    )

    def __init__(self, instrument: Instrument, texts: Mapping[int, str] | None = None) -> None:
        self._inst = instrument
        self._texts = texts
        self.day = -1
        self.open: int | None = None
        self.high = 0
        self.low = 0
        self.last = 0
        self.volume = 0
        self.turnover = 0
        self.bid: int | None = None
        self.ask: int | None = None
        self.dirty = False
        self._session: dict[str, Any] | None = None  # rendered session values (cache)
        # change (ticks) -> (change text, change % text) for the session's open (cache)
        self._changes: dict[int, tuple[str, str]] = {}

    def trade(self, ticks: int, qty: int, ts: int) -> None:
        day = ts // DAY_US
        if day > self.day or self.open is None:
            self.day = max(day, self.day)
            self.open = self.high = self.low = ticks
            self.volume = 0
            self.turnover = 0
            self._changes.clear()
        elif ticks > self.high:
            self.high = ticks
        elif ticks < self.low:
            self.low = ticks
        self.last = ticks
        self.dirty = True
        self._session = None
        self.volume += qty
        self.turnover += self._inst.notional(ticks, qty)

    def quote(self, bid: int | None, ask: int | None) -> bool:
        """Set the best bid/ask; whether they changed."""
        if bid == self.bid and ask == self.ask:
            return False
        self.bid = bid
        self.ask = ask
        self.dirty = True
        return True

    def take(self) -> dict[str, Any] | None:
        """The update ``data`` when something changed since the last one, else ``None``."""
        if not self.dirty:
            return None
        self.dirty = False
        return self.render()

    def render(self) -> dict[str, Any]:
        texts = self._texts
        pt = texts.__getitem__ if texts is not None else self._inst.price_text
        session = self._session
        if session is None:
            session = self._session = self._render_session(pt)
        out = session.copy()
        bid = self.bid
        ask = self.ask
        out["bid"] = None if bid is None else pt(bid)
        out["ask"] = None if ask is None else pt(ask)
        return out

    def _render_session(self, pt: Callable[[int], str]) -> dict[str, Any]:
        inst = self._inst
        out: dict[str, Any]
        if self.open is None:
            out = {
                "last": None,
                "open": None,
                "high": None,
                "low": None,
                "volume": 0,
                "turnover": "0.00",
                "change": None,
                "changePct": None,
            }
        else:
            open_ = self.open
            change = self.last - open_
            texts = self._changes.get(change)
            if texts is None:
                if len(self._changes) >= 4_096:
                    self._changes.clear()
                texts = self._changes[change] = (
                    format_scaled(change * inst.tick_units, inst.price_decimals),
                    change_pct(change, open_),
                )
            out = {
                "last": pt(self.last),
                "open": pt(open_),
                "high": pt(self.high),
                "low": pt(self.low),
                "volume": self.volume,
                "turnover": cash_text(self.turnover),
                "change": texts[0],
                "changePct": texts[1],
            }
        return out


def change_pct(change: int, open_: int) -> str:
    """``100 * change / open`` with two decimals, rounded half away from zero."""
    num = abs(change) * 10_000
    hundredths, rem = divmod(num, open_)
    if rem * 2 >= open_:
        hundredths += 1
    return format_scaled(-hundredths if change < 0 else hundredths, 2)
