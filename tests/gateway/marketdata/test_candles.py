"""Candle rings: buckets by event time, bounded ring, closed buckets, changed buckets."""

from __future__ import annotations

import random
from typing import Any

import pytest

from engine.instruments import Instrument
from gateway.marketdata.candles import CandleSeries, CandleSet
from gateway.marketdata.prices import PriceTexts
from gateway.wire.channels import RESOLUTIONS

INST = Instrument.define(symbol="X", tick="0.01", lot=1)
TEXTS = PriceTexts(INST.price_text)
T0 = 1_700_000_000_000_000


def recompute(trades: list[tuple[int, int, int]], width_us: int) -> list[dict[str, Any]]:
    """Independent OHLCV from (ticks, qty, ts) trades."""
    buckets: dict[int, list[tuple[int, int]]] = {}
    for ticks, qty, ts in trades:
        buckets.setdefault(ts // width_us * width_us // 1000, []).append((ticks, qty))
    out = []
    for t in sorted(buckets):
        items = buckets[t]
        prices = [p for p, _ in items]
        out.append(
            {
                "t": t,
                "o": INST.price_text(prices[0]),
                "h": INST.price_text(max(prices)),
                "l": INST.price_text(min(prices)),
                "c": INST.price_text(prices[-1]),
                "v": sum(q for _, q in items),
                "n": len(items),
            }
        )
    return out


@pytest.mark.parametrize("res", list(RESOLUTIONS))
@pytest.mark.parametrize("seed", range(4))
def test_ring_equals_recomputation(res: str, seed: int) -> None:
    rng = random.Random(seed)
    width = RESOLUTIONS[res]
    series = CandleSeries(width, 64, TEXTS)
    trades: list[tuple[int, int, int]] = []
    closed: list[dict[str, Any]] = []
    updates: dict[int, dict[str, Any]] = {}
    ts = T0
    for _ in range(2_000):
        ts += rng.choice([0, 1, 1_000, 400_000, 5_000_000, width // 3, width * 2])
        trade = (rng.randrange(9_000, 11_000), rng.randrange(1, 100), ts)
        trades.append(trade)
        done = series.trade(*trade)
        if done is not None:
            closed.append(done)
        data = series.take()
        assert data is not None and len(data["candles"]) == 1
        updates[data["candles"][0]["t"]] = data["candles"][0]
    want = recompute(trades, width)
    assert series.latest(1_000) == want[-64:]
    assert series.latest(5) == want[-5:]
    assert len(series) == min(64, len(want))
    assert closed == want[:-1]  # every bucket but the newest closed, in order
    assert series.newest() == want[-1]
    assert [updates[t] for t in sorted(updates)] == want  # the latest update of each bucket


def test_conflated_take_carries_changed_buckets_oldest_first() -> None:
    series = CandleSeries(RESOLUTIONS["1s"], 10, TEXTS)
    assert series.take() is None and series.latest(10) == [] and series.newest() is None
    series.trade(100, 1, T0)
    series.trade(105, 2, T0 + 10)
    series.trade(99, 3, T0 + 1_000_000)
    data = series.take()
    assert data == {
        "candles": [
            {"t": T0 // 1000, "o": "1.00", "h": "1.05", "l": "1.00", "c": "1.05", "v": 3, "n": 2},
            {"t": T0 // 1000 + 1000, "o": "0.99", "h": "0.99", "l": "0.99", "c": "0.99", "v": 3,
             "n": 1},
        ]
    }  # fmt: skip
    assert series.take() is None


def test_late_trade_updates_its_bucket_when_still_in_the_ring() -> None:
    series = CandleSeries(RESOLUTIONS["1s"], 3, TEXTS)
    for k in range(5):
        series.trade(100 + k, 1, T0 + k * 1_000_000)
    series.take()
    series.trade(50, 2, T0 + 3 * 1_000_000 + 5)  # bucket 3: still held
    data = series.take()
    assert data is not None
    assert data["candles"] == [
        {"t": T0 // 1000 + 3000, "o": "1.03", "h": "1.03", "l": "0.50", "c": "0.50", "v": 3,
         "n": 2}
    ]  # fmt: skip
    series.trade(50, 2, T0)  # bucket 0: overwritten long ago, not reflected
    assert series.take() is None
    assert [c["t"] for c in series.latest(10)] == [T0 // 1000 + k * 1000 for k in (2, 3, 4)]


def test_ring_size_must_be_positive() -> None:
    with pytest.raises(ValueError):
        CandleSeries(1_000_000, 0, TEXTS)


@pytest.mark.parametrize("seed", range(4))
def test_candle_set_equals_separate_series(seed: int) -> None:
    """A CandleSet's coarser series catch up lazily (CandleSet.sync): every closed candle and
    every read between trades (take, latest, newest) equals separately updated series."""
    rng = random.Random(seed)
    widths = list(RESOLUTIONS.values())
    alone = [CandleSeries(w, 16, TEXTS) for w in widths]
    together = CandleSet([CandleSeries(w, 16, TEXTS) for w in widths])
    ts = T0
    for _ in range(3_000):
        # mostly forward, sometimes backwards (an older bucket, maybe no longer in the ring)
        ts += rng.choice([0, 1, 1_000, 400_000, 5_000_000, 70_000_000, -3_000_000, -900_000_000])
        trade = (rng.randrange(9_000, 11_000), rng.randrange(1, 100), ts)
        want = [(k, c) for k, s in enumerate(alone) if (c := s.trade(*trade)) is not None]
        assert (together.trade(*trade) or []) == want
        k = rng.randrange(len(widths))
        read = rng.random()
        if read < 0.2:
            for a, b in zip(alone, together.series, strict=True):
                assert a.take() == b.take()
        elif read < 0.4:
            assert together.series[k].take() == alone[k].take()
        elif read < 0.5:
            assert together.series[k].newest() == alone[k].newest()
        elif read < 0.6:
            assert together.series[k].latest(5) == alone[k].latest(5)
    for a, b in zip(alone, together.series, strict=True):
        assert a.latest(16) == b.latest(16) and a.take() == b.take()


def test_candle_set_widths_must_nest() -> None:
    with pytest.raises(ValueError):
        CandleSet([CandleSeries(2_000_000, 4, TEXTS), CandleSeries(3_000_000, 4, TEXTS)])
    with pytest.raises(ValueError):
        CandleSet([])
