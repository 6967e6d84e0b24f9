"""Coverage-guided fuzzing of the market-data publisher behind the engine (atheris).

The command lines of :mod:`fuzz_gen` run through an engine (tiny or default retention) and
each command's events through a :class:`~gateway.marketdata.publisher.Publisher` with a depth,
ring and snapshot sizes and a conflation chosen by the input. Checked:

* nothing raises; every channel's ``seq`` is gap-free from 1; every envelope's JSON parses;
* without conflation, after every command: the L2 book a client rebuilds from the first book
  update plus the updates equals the engine's own top-D book, every update's checksum matches
  it, and a snapshot taken then is the same book; the ticker's last/open/high/low/volume/
  turnover equal a recomputation from the trade events (UTC-day sessions) and its bid/ask the
  engine's best prices;
* with conflation, after ``flush_all``: the same book, checksums on every update;
* a late joiner at a command chosen by the input: the book snapshot (at the published state,
  its seq the last update's) plus the later updates gives the same book, and the trades
  snapshot is the tail of what the updates published; every trade is published once, in order;
* at the end, when trade times never went backwards: each resolution's candles equal a
  recomputation from the trades.

    .venv/bin/python tests/fuzz/fuzz_publisher.py -max_total_time=600 -max_len=2048 /tmp/corpus
"""

from __future__ import annotations

import contextlib
from collections import defaultdict
from typing import Any

try:
    import atheris
except ImportError:  # replay-only mode
    atheris = None

with (
    atheris.instrument_imports(include=["gateway.marketdata"])
    if atheris
    else contextlib.nullcontext()
):
    import fuzz_checks  # puts the repo root on sys.path
    import fuzz_gen

    from engine import Engine
    from engine.events import Trade
    from gateway.marketdata.publisher import Publisher, PublisherConfig
    from gateway.marketdata.ticker import DAY_US, cash_text
    from gateway.wire.channels import RESOLUTIONS
    from gateway.wire.envelope import Envelope
    from tests.gateway.marketdata.flows import ClientBook, open_orders_of
    from tests.gateway.marketdata.test_publisher_engine import checksum, recompute_candles

DEPTHS = (1, 2, 3, 5, 50)
CONFLATE = ({}, {"book": 100, "ticker": 250, "candles": 250}, {"book": 1, "trades": 2_000})


class TickerModel:
    """The ticker recomputed from trade events (see gateway/marketdata/ticker.py)."""

    def __init__(self) -> None:
        self.day = -1
        self.open: int | None = None
        self.high = self.low = self.last = self.volume = self.turnover = 0

    def trade(self, ev: Trade, notional: int) -> None:
        day = ev.ts // DAY_US
        if day > self.day or self.open is None:
            self.day = max(day, self.day)
            self.open = self.high = self.low = ev.price
            self.volume = self.turnover = 0
        self.high = max(self.high, ev.price)
        self.low = min(self.low, ev.price)
        self.last = ev.price
        self.volume += ev.qty
        self.turnover += notional


def engine_top(engine: Engine, symbol: str, depth: int) -> tuple[list[Any], list[Any]]:
    book = engine.book(symbol)
    inst = engine.instruments[symbol]
    assert book is not None
    return (
        [(inst.price_text(p), q) for p, q in book.depth("buy", depth)],
        [(inst.price_text(p), q) for p, q in book.depth("sell", depth)],
    )


def test_one_input(data: bytes) -> None:
    lines = fuzz_gen.command_lines(data)
    knobs = fuzz_gen.Reader(data[-4:])
    depth = knobs.pick(DEPTHS)
    conflate = knobs.pick(CONFLATE)
    small = knobs.chance(100)
    tiny = knobs.chance(128)
    config = PublisherConfig(
        epoch="f",
        book_depth=depth,
        trades_snapshot_max=2 if small else 50,
        candles_snapshot_max=1 if small else 300,
        candle_ring_size=2 if small else 1000,
        conflate_ms=conflate,
    )
    engine = fuzz_checks.publisher_engine(tiny=tiny)
    out: list[Envelope] = []
    pub = Publisher(
        config,
        sink=out.append,
        clock=lambda: 0,
        open_orders=open_orders_of(engine),
        instrument_lookup=engine.instruments.get,
    )
    seqs: dict[str, int] = {}
    clients: dict[str, ClientBook] = {}
    tickers: dict[str, TickerModel] = defaultdict(TickerModel)
    trades: dict[str, list[Trade]] = defaultdict(list)
    monotonic = True
    candle_updates: dict[str, dict[int, Any]] = defaultdict(dict)
    late: dict[str, ClientBook] = {}
    published: dict[str, list[int]] = defaultdict(list)  # trade ids in the trades updates

    def consume() -> None:
        for env in out:
            assert env.seq == seqs.get(env.channel, 0) + 1, env.channel
            seqs[env.channel] = env.seq
            payload = env.data()
            if env.channel.startswith("book."):
                sym = env.channel[5:]
                client = clients.setdefault(sym, ClientBook())
                client.apply(payload)
                assert payload["checksum"] == checksum(*client.sorted())
                if sym in late:
                    late[sym].apply(payload)
                    assert payload["checksum"] == checksum(*late[sym].sorted())
            elif env.channel.startswith("trades."):
                published[env.channel[7:]] += [t["id"] for t in payload["trades"]]
            elif env.channel.startswith("candles."):
                for c in payload["candles"]:
                    candle_updates[env.channel][c["t"]] = c
        out.clear()

    join_at = data[0] % len(lines) if data else 0
    for i, line in enumerate(lines):
        if i == join_at:  # late joiners: a snapshot now (at the published state), then updates
            for sym in pub.instruments:
                snap = pub.snapshot(f"book.{sym}")
                assert snap is not None and snap.seq == seqs.get(f"book.{sym}", 0)
                data_ = snap.data()
                late[sym] = ClientBook(data_)
                assert data_["checksum"] == checksum(*late[sym].sorted())
                assert late[sym].sorted() == clients.get(sym, ClientBook()).sorted()
                tsnap = pub.snapshot(f"trades.{sym}")
                assert tsnap is not None and tsnap.seq == seqs.get(f"trades.{sym}", 0)
                got = [t["id"] for t in tsnap.data()["trades"]]
                want = published[sym][len(published[sym]) - len(got) :] if got else []
                assert got == want, (sym, got, published[sym])
        events = fuzz_gen.submit(engine, line)
        if conflate and events:
            pub.flush_due(events[0].ts)
        pub.on_events(events)
        for ev in events:
            if type(ev) is Trade:
                prev = trades[ev.symbol]
                if prev and ev.ts < prev[-1].ts:
                    monotonic = False
                prev.append(ev)
                notional = engine.instruments[ev.symbol].notional(ev.price, ev.qty)
                tickers[ev.symbol].trade(ev, notional)
        consume()
        if conflate:
            continue
        for sym in pub.instruments:
            top = engine_top(engine, sym, depth)
            assert clients.get(sym, ClientBook()).sorted() == top, sym
            snap = pub.snapshot(f"book.{sym}")
            assert snap is not None and ClientBook(snap.data()).sorted() == top
            ticker = pub.snapshot(f"ticker.{sym}")
            assert ticker is not None
            got = ticker.data()
            model = tickers[sym]
            inst = engine.instruments[sym]
            if model.open is None:
                assert got["last"] is None and got["volume"] == 0
            else:
                want = {
                    "last": inst.price_text(model.last),
                    "open": inst.price_text(model.open),
                    "high": inst.price_text(model.high),
                    "low": inst.price_text(model.low),
                    "volume": model.volume,
                    "turnover": cash_text(model.turnover),
                }
                assert {k: got[k] for k in want} == want, (sym, got, want)
            bids, asks = engine_top(engine, sym, 1)
            assert got["bid"] == (bids[0][0] if bids else None)
            assert got["ask"] == (asks[0][0] if asks else None)

    pub.flush_all()
    consume()
    for sym in pub.instruments:
        top = engine_top(engine, sym, depth)
        assert clients.get(sym, ClientBook()).sorted() == top
        if sym in late:
            assert late[sym].sorted() == top
        assert published[sym] == [t.trade_id for t in trades[sym]]
        if not monotonic or small:
            continue
        inst = engine.instruments[sym]
        for res, width in RESOLUTIONS.items():
            want = recompute_candles(trades[sym], width, inst)
            got = candle_updates[f"candles.{sym}.{res}"]
            assert [got[t] for t in sorted(got)] == want, (sym, res)
            snap = pub.snapshot(f"candles.{sym}.{res}")
            assert snap is not None and snap.data()["candles"] == want[-300:]


if __name__ == "__main__":
    fuzz_checks.fuzz_main(test_one_input, atheris)
