"""Trades tape: update records, bounded snapshot oldest first."""

from __future__ import annotations

from engine.events import Trade
from engine.instruments import Instrument
from gateway.marketdata.prices import PriceTexts
from gateway.marketdata.trades import TradeTape

INST = Instrument.define(symbol="X", tick="0.5", lot=1)


def trade(n: int) -> Trade:
    return Trade(n, n, 1_000 + n, n, "X", 200 + n, n, "buy" if n % 2 else "sell", 1, 2, "a", "b",
                 "c", "d")  # fmt: skip


def test_records_and_bounded_snapshot() -> None:
    tape = TradeTape(3, PriceTexts(INST.price_text))
    assert tape.take() is None and tape.snapshot() == {"trades": []}
    tape.add(trade(1))
    tape.add(trade(2))
    assert tape.take() == {
        "trades": [
            {"id": 1, "price": "100.5", "qty": 1, "side": "buy", "ts": 1_001},
            {"id": 2, "price": "101.0", "qty": 2, "side": "sell", "ts": 1_002},
        ]
    }
    assert tape.take() is None
    for n in range(3, 7):
        tape.add(trade(n))
    assert [t["id"] for t in tape.snapshot()["trades"]] == [4, 5, 6]
    assert [t["id"] for t in tape.recent(2)] == [5, 6]
    data = tape.take()
    assert data is not None and [t["id"] for t in data["trades"]] == [3, 4, 5, 6]


def test_published_snapshot_holds_only_taken_trades() -> None:
    tape = TradeTape(3, PriceTexts(INST.price_text))
    for n in range(1, 4):
        tape.add(trade(n))
    assert tape.published_snapshot() == {"trades": []}
    tape.take()
    tape.add(trade(4))
    tape.add(trade(5))
    assert [t["id"] for t in tape.published_snapshot()["trades"]] == [1, 2, 3]
    assert [t["id"] for t in tape.snapshot()["trades"]] == [3, 4, 5]
    assert tape.recent(0) == []
    tape.take()
    assert [t["id"] for t in tape.published_snapshot()["trades"]] == [3, 4, 5]
