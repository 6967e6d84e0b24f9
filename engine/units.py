"""Exact decimal strings <-> scaled integers.

The engine never touches floats: prices are integer ticks, cash is an integer count of
``10**-CASH_DECIMALS`` units, quantities are integer lots. These helpers are the only place
where decimal text is read or written.
"""

from __future__ import annotations

CASH_DECIMALS = 8
"""Cash (and notional) amounts are integers in units of 10**-8 of the currency."""

CASH_SCALE = 10**CASH_DECIMALS

_DIGITS = frozenset("0123456789")


def parse_decimal(text: object, decimals: int) -> int | None:
    """Parse a plain decimal string into an integer count of ``10**-decimals``.

    Accepts ``"12"``, ``"12.5"``, ``"0.05"``, ``"12.500"`` (trailing zeros past the scale are
    fine). Returns ``None`` for anything else: signs, exponents, blanks, floats, digits past
    the scale that are not zero, or a non-string.
    """
    if type(text) is not str or not text or len(text) > 40:
        return None
    whole, dot, frac = text.partition(".")
    if not whole or not _DIGITS.issuperset(whole):
        return None
    if dot:
        if not frac or not _DIGITS.issuperset(frac):
            return None
        if len(frac) > decimals:
            extra = frac[decimals:]
            if extra.strip("0"):
                return None
            frac = frac[:decimals]
    scale: int = 10**decimals
    return int(whole) * scale + (int(frac) * 10 ** (decimals - len(frac)) if frac else 0)


def decimals_of(text: str) -> int:
    """Number of digits after the point in a plain decimal string (``"0.050"`` -> 3)."""
    _, _, frac = text.partition(".")
    return len(frac)


def format_scaled(units: int, decimals: int) -> str:
    """Format ``units * 10**-decimals`` with exactly ``decimals`` digits after the point."""
    if decimals == 0:
        return str(units)
    sign = "-" if units < 0 else ""
    units = -units if units < 0 else units
    scale = 10**decimals
    return f"{sign}{units // scale}.{units % scale:0{decimals}d}"


def format_cash(units: int) -> str:
    """Format a cash amount: at least two decimals, trailing zeros past them dropped."""
    text = format_scaled(units, CASH_DECIMALS)
    whole, _, frac = text.partition(".")
    frac = frac.rstrip("0")
    if len(frac) < 2:
        frac = frac.ljust(2, "0")
    return f"{whole}.{frac}"


def parse_cash(text: object) -> int | None:
    """Parse a cash amount (decimal string) into cash units, or ``None``."""
    return parse_decimal(text, CASH_DECIMALS)
