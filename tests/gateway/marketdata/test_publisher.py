"""Publisher facade: hand-written event sequences (engine-driven properties live in
test_properties.py)."""

from __future__ import annotations

from typing import Any

from engine.events import Accepted, Cancelled, Done, Trade
from engine.instruments import Instrument
from gateway.envelope import Envelope
from gateway.marketdata.publisher import Publisher, PublisherConfig

AAPL = Instrument.define(symbol="AAPL", tick="0.01", lot=1)


def make(**cfg: Any) -> tuple[Publisher, list[Envelope]]:
    out: list[Envelope] = []
    pub = Publisher(PublisherConfig(epoch="e1", **cfg), sink=out.append, clock=lambda: 0)
    pub.add_instrument(AAPL)
    return pub, out


def by_channel(out: list[Envelope], channel: str) -> list[Any]:
    return [e.data() for e in out if e.channel == channel]


def test_rest_trade_cancel_flow() -> None:
    pub, out = make()
    pub.on_events([Accepted(1, 1, 1000, 1, "a", "c1", "AAPL", "sell", "limit", 10000, 10, "GTC")])
    pub.on_events(
        [
            Accepted(2, 2, 2000, 2, "b", "c2", "AAPL", "buy", "limit", 10001, 4, "GTC"),
            Trade(3, 2, 2000, 1, "AAPL", 10000, 4, "buy", 2, 1, "b", "a", "c2", "c1"),
            Done(4, 2, 2000, 2, "b", "c2", "AAPL"),
        ]
    )
    pub.on_events([Cancelled(5, 3, 3000, 1, "a", "c1", "AAPL", 6, "user")])
    books = by_channel(out, "book.AAPL")
    assert [b["asks"] for b in books] == [[["100.00", 10]], [["100.00", 6]], [["100.00", 0]]]
    assert all(b["bids"] == [] for b in books)  # the buy never rested
    assert by_channel(out, "trades.AAPL") == [
        {"trades": [{"id": 1, "price": "100.00", "qty": 4, "side": "buy", "ts": 2000}]}
    ]
    ticker = by_channel(out, "ticker.AAPL")[-1]
    assert ticker["last"] == "100.00" and ticker["volume"] == 4 and ticker["turnover"] == "400.00"
    assert ticker["bid"] is None and ticker["ask"] is None
    candle = by_channel(out, "candles.AAPL.1m")[0]["candles"][0]
    assert candle == {"t": 0, "o": "100.00", "h": "100.00", "l": "100.00", "c": "100.00",
                      "v": 4, "n": 1}  # fmt: skip
    snap = pub.snapshot("book.AAPL")
    assert snap is not None and snap.type == "snapshot" and snap.seq == 3
    assert snap.data()["asks"] == []
    # orders: a's stream has accepted, its own fill, cancelled; b's accepted, fill, done
    a = [e for e in out if e.channel == "orders.a"]
    assert [e.seq for e in a] == [1, 2, 3]
    assert [d["event"] for d in (e.data() for e in a)] == ["accepted", "trade", "cancelled"]
    assert all(b'"ch":"orders"' in e.payload for e in a)
    assert b'"b"' not in b"".join(e.payload for e in a)


def test_unknown_channel_snapshot_is_none() -> None:
    pub, _ = make()
    assert pub.snapshot("book.MSFT") is None
    assert pub.snapshot("nonsense") is None
    orders = pub.snapshot("orders.nobody")
    assert orders is not None and orders.seq == 0 and orders.data() == {"open": []}
