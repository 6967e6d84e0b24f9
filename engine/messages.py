"""The texts of rejections, in the API's own terms.

A ``rejected`` event's ``message`` reaches clients as it is (the REST error, the private
``orders`` channel, ``quotegate replay``'s output), so it speaks the language of the JSON
commands: their field names (``price``, ``qty``, ``side``, ``clientOrderId``), values as the
client wrote them (JSON spelling: ``"10.001"``, ``null``), prices and cash as decimal strings
and shares as integers. Never the engine's internal integers (ticks, 10**-8 cash units) and
never Python's spelling of a value (``None``, ``'x'``). Every rejection text is built here.
"""

from __future__ import annotations

from engine.instruments import Instrument
from engine.units import format_cash


def shown(value: object) -> str:
    """A client's value as its JSON spelling: ``"AAPL"``, ``null``, ``true``, ``1.5``."""
    if value is None:
        return "null"
    if value is True or value is False:
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, int | float):
        return repr(value)
    return f"a {type(value).__name__}"


def bad_price(text: object, inst: Instrument) -> str:
    if text is None:
        return f"a limit order needs a price: a decimal string on the tick {inst.tick}"
    return f"price {shown(text)} is not a positive multiple of the tick {inst.tick}"


def bad_qty(qty: object, inst: Instrument) -> str:
    if qty is None:
        return f"qty is required: a positive integer multiple of the lot {inst.lot}"
    return f"qty {shown(qty)} is not a positive integer multiple of the lot {inst.lot}"


def market_with_price() -> str:
    return "a market order has no price: leave price out, or use type limit"


def unknown_symbol(symbol: object) -> str:
    return f"unknown symbol {shown(symbol)}"


def bad_side(side: object) -> str:
    return f'side must be "buy" or "sell", not {shown(side)}'


def bad_type(otype: object) -> str:
    return f'type must be "limit" or "market", not {shown(otype)}'


def bad_tif(tif: object) -> str:
    return f'tif must be "GTC", "IOC" or "FOK", not {shown(tif)}'


def ids_required() -> str:
    return "account and clientOrderId are required (non-empty strings)"


def duplicate(coid: object) -> str:
    return f"clientOrderId {shown(coid)} was already used by this account"


def no_order(coid: object) -> str:
    return f"no order with clientOrderId {shown(coid)} for this account"


def not_open(coid: object, status: str) -> str:
    return f"the order with clientOrderId {shown(coid)} is {status}, not open"


def replace_needs_change() -> str:
    return "replace needs a new price and/or qty"


def insufficient(need: int, have: int, asset: str, inst: Instrument, *, more: bool = False) -> str:
    """``need`` and ``have`` in the engine's units of ``asset``: 10**-8 of a currency, or
    shares of ``inst``'s symbol; shown as the API writes them (cash as a decimal string)."""
    extra = " more" if more else ""
    if asset == inst.symbol:
        return f"needs {need}{extra} {asset} shares, {have} available"
    return f"needs {format_cash(need)}{extra} {asset}, {format_cash(have)} available"
