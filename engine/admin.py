"""Administrative commands: validation of instrument definitions and deposits.

Each function returns the validated value or a ``(reason, message)`` rejection; the engine
(:mod:`engine.core`) turns a rejection into a ``rejected`` event and applies a value.
"""

from __future__ import annotations

from collections.abc import Mapping, Set

from engine.commands import DefineInstrument, Deposit
from engine.events import BAD_PRICE, BAD_QTY, MALFORMED, UNKNOWN_SYMBOL
from engine.instruments import BAND_DECIMALS, Instrument
from engine.units import CASH_SCALE, parse_cash, parse_decimal

Rejection = tuple[str, str]


def is_text(value: str) -> bool:
    """Whether a string is Unicode text that UTF-8 (and so the JSON output) can carry: no lone
    surrogate, which only a command built in process can hold (a JSON line cannot)."""
    if value.isascii():
        return True
    try:
        value.encode()
    except UnicodeEncodeError:
        return False
    return True


def build_instrument(
    cmd: DefineInstrument, instruments: Mapping[str, Instrument], currencies: Set[str]
) -> Instrument | Rejection:
    """The instrument ``cmd`` defines. Errors: ``tick``/``maxNotional`` -> ``bad_price``,
    ``lot``/``maxQty`` -> ``bad_qty``, anything else (a bad ``band``, a symbol that is also a
    currency) -> ``malformed``. Whether the symbol already exists is the caller's check."""
    symbol = cmd.symbol
    if type(symbol) is not str or not symbol or not is_text(symbol):
        return MALFORMED, "field 'symbol' must be a non-empty string"
    currency = cmd.currency
    if type(currency) is not str or not currency or not is_text(currency):
        return MALFORMED, "field 'currency' must be a non-empty string"
    if symbol in currencies or currency in instruments or symbol == currency:
        return MALFORMED, f"symbol {symbol!r} clashes with a currency of the same name"
    lot = cmd.lot
    if type(lot) is not int or lot <= 0:
        return BAD_QTY, "field 'lot' must be a positive integer"
    max_qty = cmd.max_qty
    if max_qty is not None and (type(max_qty) is not int or max_qty <= 0):
        return BAD_QTY, "field 'maxQty' must be a positive integer"
    max_notional = None
    if cmd.max_notional is not None:
        max_notional = parse_cash(cmd.max_notional)
        if max_notional is None or max_notional <= 0:
            return BAD_PRICE, "field 'maxNotional' must be a positive decimal string"
    band = None
    if cmd.band is not None:
        band = parse_decimal(cmd.band, BAND_DECIMALS)
        if band is None:
            return MALFORMED, "field 'band' must be a decimal fraction such as \"0.1\""
    tick = cmd.tick
    try:
        if type(tick) is not str:
            raise ValueError(tick)
        return Instrument.define(
            symbol=symbol,
            tick=tick,
            lot=lot,
            currency=currency,
            max_qty=max_qty,
            max_notional=max_notional,
            band=band,
        )
    except ValueError:
        return BAD_PRICE, f"field 'tick' must be a positive decimal string, not {tick!r}"


def deposit_units(
    cmd: Deposit, instruments: Mapping[str, Instrument], currencies: Set[str]
) -> int | Rejection:
    """The amount ``cmd`` credits, in cash units (a currency: a decimal string, or an int of
    whole units) or shares (a symbol: a positive int). A bad amount is ``bad_qty``, an
    unknown asset ``unknown_symbol``."""
    account, asset, amount = cmd.account, cmd.asset, cmd.amount
    if type(account) is not str or not account or not is_text(account):
        return MALFORMED, "field 'account' must be a string"
    if type(asset) is not str or not asset or not is_text(asset):
        return MALFORMED, "field 'asset' must be a string"
    if asset in currencies:
        if type(amount) is str:
            units = parse_cash(amount)
        elif type(amount) is int:
            units = amount * CASH_SCALE
        else:
            units = None
        if units is None or units <= 0:
            return BAD_QTY, f"bad cash amount {amount!r}"
        return units
    if asset in instruments:
        if type(amount) is not int or amount <= 0:
            return BAD_QTY, f"a share deposit needs a positive integer amount, not {amount!r}"
        return amount
    return UNKNOWN_SYMBOL, f"unknown asset {asset!r}"
