"""Pre-trade risk checks, run after validation and before funds are reserved.

Per instrument (all optional): ``max_qty`` (shares per order), ``max_notional`` (price x qty
in cash units), ``band`` (a limit price more than ``band`` away from the last trade price, as
a fraction, is rejected; no band before the first trade). Per account: a cap on resting orders
(``EngineConfig.max_open_orders_per_account``), reason ``risk_max_open_orders``, an extension
of the spec: it applies to GTC limit orders (the only ones that can rest).

A market order has no price of its own: its notional is taken at the last trade price, or the
best opposite price when the symbol has not traded yet (no notional check when neither
exists: nothing can trade). The band does not apply to market orders.
"""

from __future__ import annotations

from engine.events import (
    RISK_MAX_NOTIONAL,
    RISK_MAX_OPEN_ORDERS,
    RISK_MAX_QTY,
    RISK_PRICE_BAND,
)
from engine.instruments import BAND_DECIMALS, Instrument
from engine.units import format_cash

_BAND_SCALE = 10**BAND_DECIMALS


def has_limits(inst: Instrument) -> bool:
    """Whether any per-instrument check applies (the engine skips :func:`check` if not)."""
    return inst.max_qty is not None or inst.max_notional is not None or inst.band is not None


def check(
    inst: Instrument,
    price: int | None,
    qty: int,
    last_price: int | None,
    reference_price: int | None,
    *,
    check_band: bool = True,
) -> tuple[str, str] | None:
    """``(reason, message)`` if the order breaks an instrument limit, else ``None``.

    ``price`` is the limit price in ticks (``None`` for a market order), ``last_price`` the
    last trade price and ``reference_price`` the price a market order is valued at.
    """
    max_qty = inst.max_qty
    if max_qty is not None and qty > max_qty:
        return RISK_MAX_QTY, f"qty {qty} is above the maximum {max_qty} for {inst.symbol}"
    max_notional = inst.max_notional
    if max_notional is not None:
        at = price if price is not None else reference_price
        if at is not None:
            notional = inst.notional(at, qty)
            if notional > max_notional:
                return (
                    RISK_MAX_NOTIONAL,
                    f"notional {format_cash(notional)} is above the maximum "
                    f"{format_cash(max_notional)} for {inst.symbol}",
                )
    band = inst.band
    if (
        check_band
        and band is not None
        and price is not None
        and last_price is not None
        and abs(price - last_price) * _BAND_SCALE > band * last_price
    ):
        return (
            RISK_PRICE_BAND,
            f"price {inst.price_text(price)} is outside the band of "
            f"{band / _BAND_SCALE:g} around the last trade {inst.price_text(last_price)}",
        )
    return None


def check_open_orders(limit: int | None, open_count: int) -> tuple[str, str] | None:
    """``(reason, message)`` if one more resting order would exceed the account's cap."""
    if limit is not None and open_count >= limit:
        return RISK_MAX_OPEN_ORDERS, f"the account already has {open_count} open orders"
    return None
