"""Publisher facade: hand-written event sequences (engine-driven properties live in
test_properties.py)."""

from __future__ import annotations

from typing import Any

import pytest

from engine.events import Accepted, Cancelled, Done, Trade
from engine.instruments import Instrument
from gateway.marketdata.publisher import Publisher, PublisherConfig, parse_conflate_ms
from gateway.wire.envelope import Envelope

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


def test_config_validation_and_conflation_parsing() -> None:
    assert parse_conflate_ms("") == {}
    assert parse_conflate_ms("book=100, ticker=5,candles=0") == {
        "book": 100,
        "ticker": 5,
        "candles": 0,
    }
    for bad in ("book", "orders=10", "book=-1", "book=x", "trades=1.5"):
        with pytest.raises(ValueError):
            parse_conflate_ms(bad)
    for kwargs in (
        {"book_depth": 0},
        {"candle_ring_size": 0},
        {"trades_snapshot_max": -1},
        {"conflate_ms": {"orders": 10}},
        {"conflate_ms": {"book": -5}},
    ):
        with pytest.raises(ValueError):
            PublisherConfig(**kwargs)
    assert PublisherConfig(conflate_ms={"book": 100}).interval_us("book") == 100_000
    assert PublisherConfig().interval_us("candles") == 0


def test_channels_instruments_and_lookup() -> None:
    msft = Instrument.define(symbol="MSFT", tick="0.05", lot=10)
    out: list[Envelope] = []
    pub = Publisher(
        PublisherConfig(epoch="z"),
        sink=out.append,
        clock=lambda: 99,
        instrument_lookup={"MSFT": msft}.get,
    )
    assert pub.channels() == [] and pub.epoch == "z"
    pub.on_events([Accepted(1, 1, 5, 1, "a", "c", "MSFT", "buy", "limit", 2_000, 10, "GTC")])
    pub.on_events([Accepted(2, 2, 6, 2, "a", "d", "NOPE", "buy", "limit", 1, 10, "GTC")])
    assert list(pub.instruments) == ["MSFT"]
    assert pub.channels() == [
        "book.MSFT", "trades.MSFT", "ticker.MSFT", "candles.MSFT.1s", "candles.MSFT.1m",
        "candles.MSFT.5m", "candles.MSFT.15m", "candles.MSFT.1h", "candles.MSFT.1d", "orders.a",
    ]  # fmt: skip
    assert pub.seq("orders.a") == 2  # the unknown symbol's order still reaches the account
    assert pub.seq("book.MSFT") == 1 and pub.seq("book.NOPE") is None
    book = pub.snapshot("book.MSFT")
    assert book is not None and book.data()["bids"] == [["100.00", 10]]
    trades = pub.snapshot("trades.MSFT")
    assert trades is not None and (trades.seq, trades.ts) == (0, 99)  # clock: no update yet
    pub.add_instrument(msft)  # idempotent: keeps the state
    assert pub.seq("book.MSFT") == 1


def test_conflated_book_snapshot_stays_at_the_published_state() -> None:
    pub, out = make(conflate_ms={"book": 1})  # 1 ms
    pub.on_events([Accepted(1, 1, 1_000, 1, "a", "c1", "AAPL", "sell", "limit", 10_000, 5, "GTC")])
    pub.on_events([Accepted(2, 2, 1_100, 2, "a", "c2", "AAPL", "sell", "limit", 10_001, 5, "GTC")])
    pub.on_events([Accepted(3, 3, 1_200, 3, "a", "c3", "AAPL", "sell", "limit", 10_002, 5, "GTC")])
    books = by_channel(out, "book.AAPL")
    assert books == [{"bids": [], "asks": [["100.00", 5]], "checksum": books[0]["checksum"]}]
    snap = pub.snapshot("book.AAPL")
    assert snap is not None and snap.seq == 1 and snap.data()["asks"] == [["100.00", 5]]
    pub.flush_due(1_999)
    assert len(by_channel(out, "book.AAPL")) == 1
    pub.flush_due(2_000)
    books = by_channel(out, "book.AAPL")
    assert books[1]["asks"] == [["100.01", 5], ["100.02", 5]]
    assert [e.ts for e in out if e.channel == "book.AAPL"] == [1_000, 1_200]
    snap = pub.snapshot("book.AAPL")
    assert snap is not None and snap.seq == 2 and len(snap.data()["asks"]) == 3


def test_first_event_of_a_looked_up_symbol_renders_its_prices() -> None:
    msft = Instrument.define(symbol="MSFT", tick="0.05", lot=10)
    out: list[Envelope] = []
    pub = Publisher(PublisherConfig(), sink=out.append, clock=lambda: 0,
                    instrument_lookup={"MSFT": msft}.get)  # fmt: skip
    pub.on_events([Accepted(1, 1, 5, 1, "a", "c", "MSFT", "buy", "limit", 2_000, 10, "GTC")])
    assert out[0].channel == "orders.a" and out[0].data()["price"] == "100.00"


def test_failing_callbacks_do_not_stall_the_streams() -> None:
    def closed(symbol: str, res: str, candle: dict[str, Any]) -> None:
        raise RuntimeError("archive down")

    out: list[Envelope] = []
    fail = [True]

    def sink(env: Envelope) -> None:
        if fail[0] and env.channel.startswith("orders."):
            raise RuntimeError("bus down")
        out.append(env)

    pub = Publisher(PublisherConfig(epoch="e"), sink=sink, clock=lambda: 0,
                    on_candle_closed=closed)  # fmt: skip
    pub.add_instrument(AAPL)
    with pytest.raises(RuntimeError):
        pub.on_events([Accepted(1, 1, 1, 1, "a", "c1", "AAPL", "sell", "limit", 100, 5, "GTC")])
    fail[0] = False
    assert [e.channel for e in out] == ["book.AAPL", "ticker.AAPL"]  # the rest still went out
    for k in range(3):  # trades in three 1s buckets: two closed candles hit the failing archive
        ts, oid, coid = 2_000_000 * (k + 1), 2 + k, f"b{k}"
        buy = Accepted(oid, oid, ts, oid, "b", coid, "AAPL", "buy", "limit", 100, 1, "GTC")
        fill = Trade(10 + k, oid, ts, 1 + k, "AAPL", 100, 1, "buy", oid, 1, "b", "a", coid, "c1")
        pub.on_events([buy, fill, Done(20 + k, oid, ts, oid, "b", coid, "AAPL")])
    assert pub.callback_errors == 2
    assert [e.seq for e in out if e.channel == "candles.AAPL.1s"] == [1, 2, 3]
    assert [e.seq for e in out if e.channel == "book.AAPL"] == [1, 2, 3, 4]


def test_flush_due_skips_a_stream_that_published_since_it_was_held() -> None:
    pub, out = make(conflate_ms={"book": 1})  # 1 ms
    for k, ts in enumerate((1_000, 1_100, 2_100, 2_200), start=1):  # publish, hold, due, hold
        pub.on_events([Accepted(k, k, ts, k, "a", f"c{k}", "AAPL", "sell", "limit", 100 + k, 1,
                                "GTC")])  # fmt: skip
    assert [e.ts for e in out if e.channel == "book.AAPL"] == [1_000, 2_100]
    pub.flush_due(2_500)  # the first hold's due time (2,000) has passed, the second's not
    assert [e.ts for e in out if e.channel == "book.AAPL"] == [1_000, 2_100]
    pub.flush_due(3_100)
    assert [e.ts for e in out if e.channel == "book.AAPL"] == [1_000, 2_100, 2_200]
    snap = pub.snapshot("book.AAPL")
    assert snap is not None and snap.seq == 3 and len(snap.data()["asks"]) == 4
    pub.flush_all()  # nothing left
    assert pub.seq("book.AAPL") == 3


def test_conflation_builds_no_snapshot_nobody_asked_for() -> None:
    # A conflated book or trades stream used to cache ("freeze") its snapshot before each
    # interval's first pending change: at a low event rate, one snapshot build per command.
    pub, out = make(conflate_ms={"book": 100, "trades": 100})
    streams = [pub._streams["book.AAPL"], pub._streams["trades.AAPL"]]
    for k in range(1, 40):
        ts = k * 30_000  # 30 ms apart: some publish at once, some wait for flush_due
        pub.flush_due(ts)
        pub.on_events([Accepted(k, k, ts, k, "a", f"c{k}", "AAPL", "sell", "limit", 100 + k, 1,
                                "GTC")])  # fmt: skip
        assert all(s._cache is None for s in streams)
    published = [level for b in by_channel(out, "book.AAPL") for level in b["asks"]]
    snap = pub.snapshot("book.AAPL")  # built when asked: the published state only
    assert snap is not None and snap.seq == pub.seq("book.AAPL")
    assert snap.data()["asks"] == published and len(published) < 39
