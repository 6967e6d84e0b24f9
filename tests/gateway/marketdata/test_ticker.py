"""Ticker: session values from trades (UTC day of the event time), bid/ask from the book."""

from __future__ import annotations

import random

import pytest

from engine.instruments import Instrument
from engine.units import format_cash
from gateway.marketdata.ticker import DAY_US, Ticker, change_pct

INST = Instrument.define(symbol="X", tick="0.05", lot=1)
DAY0 = 19_000 * DAY_US


def test_empty_ticker() -> None:
    t = Ticker(INST)
    assert t.take() is None
    assert t.render() == {
        "last": None, "open": None, "high": None, "low": None, "volume": 0,
        "turnover": "0.00", "change": None, "changePct": None, "bid": None, "ask": None,
    }  # fmt: skip
    assert t.quote(10, None) is True
    assert t.quote(10, None) is False
    data = t.take()
    assert data is not None and data["bid"] == "0.50" and data["ask"] is None
    assert t.take() is None


@pytest.mark.parametrize("seed", range(5))
def test_session_values_match_the_trades(seed: int) -> None:
    rng = random.Random(seed)
    t = Ticker(INST)
    ts = DAY0
    session: list[tuple[int, int]] = []
    session_day = ts // DAY_US
    for _ in range(1_000):
        ts += rng.choice([1, 1_000_000, 3_600_000_000, DAY_US // 2])
        ticks, qty = rng.randrange(1_000, 3_000), rng.randrange(1, 50)
        if ts // DAY_US != session_day:
            session = []
        session_day = ts // DAY_US
        session.append((ticks, qty))
        t.trade(ticks, qty, ts)
        data = t.take()
        assert data is not None
        prices = [p for p, _ in session]
        assert data["open"] == INST.price_text(prices[0])
        assert data["last"] == INST.price_text(prices[-1])
        assert data["high"] == INST.price_text(max(prices))
        assert data["low"] == INST.price_text(min(prices))
        assert data["volume"] == sum(q for _, q in session)
        assert data["turnover"] == format_cash(sum(INST.notional(p, q) for p, q in session))
        change = prices[-1] - prices[0]
        sign = "-" if change < 0 else ""
        assert data["change"] == f"{sign}{INST.price_text(abs(change)) if change else '0.00'}"
        pct = round(abs(change) * 100 / prices[0], 6)  # float only to cross-check rounding
        assert abs(float(data["changePct"]) - (-pct if change < 0 else pct)) <= 0.005 + 1e-9


def test_change_pct_rounds_half_away_from_zero() -> None:
    assert change_pct(1, 8) == "12.50"
    assert change_pct(1, 3) == "33.33"
    assert change_pct(2, 3) == "66.67"
    assert change_pct(-2, 3) == "-66.67"
    assert change_pct(-1, 80_000) == "0.00"
    assert change_pct(0, 7) == "0.00"
    assert change_pct(1, 20_000) == "0.01"  # 0.005 rounds up


def test_cash_text_equals_format_cash() -> None:
    from gateway.marketdata.ticker import cash_text

    rng = random.Random(3)
    values = [0, 1, 10, 99, 100, 10**6, 10**8, 10**8 + 1, 12_345_678_900, 5 * 10**7, 10**20]
    values += [rng.randrange(0, 10 ** rng.randrange(1, 20)) for _ in range(5_000)]
    for v in values:
        assert cash_text(v) == format_cash(v), v
