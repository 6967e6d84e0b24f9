from __future__ import annotations

from engine import risk
from engine.events import RISK_MAX_NOTIONAL, RISK_MAX_OPEN_ORDERS, RISK_MAX_QTY, RISK_PRICE_BAND
from engine.instruments import Instrument


def inst(**limits: int | None) -> Instrument:
    return Instrument.define(symbol="X", tick="0.01", lot=1, **limits)  # type: ignore[arg-type]


def reason(found: tuple[str, str] | None) -> str | None:
    return None if found is None else found[0]


def test_no_limits() -> None:
    plain = inst()
    assert not risk.has_limits(plain)
    assert risk.check(plain, 10**9, 10**9, 1, None) is None


def test_max_qty() -> None:
    i = inst(max_qty=10)
    assert risk.has_limits(i)
    assert risk.check(i, 100, 10, None, None) is None
    assert reason(risk.check(i, 100, 11, None, None)) == RISK_MAX_QTY


def test_max_notional_limit_and_market() -> None:
    i = inst(max_notional=100 * 10**8)  # 100.00 cash
    assert risk.check(i, 1000, 10, None, None) is None  # 10.00 x 10 = 100
    found = risk.check(i, 1001, 10, None, None)
    assert reason(found) == RISK_MAX_NOTIONAL and found is not None and "100.10" in found[1]
    # market: valued at the reference price; none -> no check
    assert reason(risk.check(i, None, 11, None, 1000)) == RISK_MAX_NOTIONAL
    assert risk.check(i, None, 10**6, None, None) is None


def test_band() -> None:
    i = inst(band=100_000_000)  # 0.1
    assert risk.check(i, 1, 1, None, None) is None  # no trade yet: no band
    assert risk.check(i, 1100, 1, 1000, None) is None
    assert risk.check(i, 900, 1, 1000, None) is None
    assert reason(risk.check(i, 1101, 1, 1000, None)) == RISK_PRICE_BAND
    assert reason(risk.check(i, 899, 1, 1000, None)) == RISK_PRICE_BAND
    assert risk.check(i, 899, 1, 1000, None, check_band=False) is None
    assert risk.check(i, None, 1, 1000, 5000) is None  # market orders have no band


def test_open_orders_cap() -> None:
    assert risk.check_open_orders(None, 10**6) is None
    assert risk.check_open_orders(2, 1) is None
    assert reason(risk.check_open_orders(2, 2)) == RISK_MAX_OPEN_ORDERS
