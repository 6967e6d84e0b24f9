"""Instruments: tick and lot grid, currency, risk limits, and price text <-> ticks."""

from __future__ import annotations

from dataclasses import dataclass, field

from engine.units import CASH_DECIMALS, decimals_of, format_scaled, parse_decimal

BAND_DECIMALS = 9
_MEMO_LIMIT = 65_536


@dataclass(frozen=True, slots=True, kw_only=True)
class Instrument:
    """A tradable symbol. Prices are integer ticks inside the engine.

    ``price_decimals`` is the number of decimals of the tick (``"0.05"`` -> 2) and
    ``tick_units`` the tick in units of ``10**-price_decimals`` (``"0.05"`` -> 5), so a
    price of ``n`` ticks is ``n * tick_units * 10**-price_decimals``.
    """

    symbol: str
    tick: str
    lot: int
    currency: str = "USD"
    max_qty: int | None = None
    max_notional: int | None = None  # cash units
    band: int | None = None  # fraction in units of 10**-BAND_DECIMALS
    price_decimals: int = 0
    tick_units: int = 1
    cash_per_tick: int = 1  # cash units per (tick * 1 share)
    _ticks_memo: dict[str, int | None] = field(default_factory=dict, repr=False, compare=False)
    _text_memo: dict[int, str] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def define(
        cls,
        *,
        symbol: str,
        tick: str,
        lot: int,
        currency: str = "USD",
        max_qty: int | None = None,
        max_notional: int | None = None,
        band: int | None = None,
    ) -> Instrument:
        """Build an instrument from validated fields (see ``Engine`` for validation)."""
        price_decimals = decimals_of(tick)
        tick_units = parse_decimal(tick, price_decimals)
        if tick_units is None or tick_units <= 0 or price_decimals > CASH_DECIMALS:
            raise ValueError(f"bad tick {tick!r}")
        return cls(
            symbol=symbol,
            tick=tick,
            lot=lot,
            currency=currency,
            max_qty=max_qty,
            max_notional=max_notional,
            band=band,
            price_decimals=price_decimals,
            tick_units=tick_units,
            cash_per_tick=tick_units * 10 ** (CASH_DECIMALS - price_decimals),
        )

    def ticks(self, price: object) -> int | None:
        """Ticks of a price string, or ``None`` if malformed, not positive or off the grid."""
        if type(price) is not str:
            return None
        memo = self._ticks_memo
        found = memo.get(price, -1)
        if found != -1:
            return found
        units = parse_decimal(price, self.price_decimals)
        result = None
        if units is not None and units > 0 and units % self.tick_units == 0:
            result = units // self.tick_units
        if len(memo) >= _MEMO_LIMIT:
            memo.clear()
        memo[price] = result
        return result

    def price_text(self, ticks: int) -> str:
        """The canonical decimal string of a price in ticks (as many decimals as the tick)."""
        memo = self._text_memo
        text = memo.get(ticks)
        if text is None:
            text = format_scaled(ticks * self.tick_units, self.price_decimals)
            if len(memo) >= _MEMO_LIMIT:
                memo.clear()
            memo[ticks] = text
        return text

    def notional(self, ticks: int, qty: int) -> int:
        """Cash units of ``qty`` shares at ``ticks``."""
        return ticks * qty * self.cash_per_tick
