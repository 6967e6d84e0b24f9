"""The publisher on seeded command flows through the real engine: the client-side book equals
the engine's top D after every update, candles and ticker equal recomputations from the trade
events, seq is gap-free, conflation reaches the same state, orders streams stay private, and
the same input gives the same bytes."""

from __future__ import annotations

import zlib
from collections import defaultdict
from typing import Any

import pytest

from engine.events import Event, Trade
from engine.instruments import Instrument
from gateway.marketdata.publisher import PublisherConfig
from gateway.wire.channels import RESOLUTIONS
from gateway.wire.envelope import Envelope

from .flows import ClientBook, Flow, run_flow

COMMANDS = 2_500  # after the setup commands (3 symbols x 6 accounts: 27 of them)


def checksum(bids: list[tuple[str, int]], asks: list[tuple[str, int]]) -> int:
    text = ",".join(f"{p}:{q}" for p, q in bids[:10]) + "|"
    return zlib.crc32((text + ",".join(f"{p}:{q}" for p, q in asks[:10])).encode())


def engine_top(flow: Flow, symbol: str, depth: int) -> tuple[list[Any], list[Any]]:
    book = flow.engine.book(symbol)
    inst = flow.engine.instruments[symbol]
    assert book is not None
    return (
        [(inst.price_text(p), q) for p, q in book.depth("buy", depth)],
        [(inst.price_text(p), q) for p, q in book.depth("sell", depth)],
    )


@pytest.mark.parametrize(("seed", "depth"), [(1, 50), (2, 5), (3, 1), (4, 10)])
def test_client_book_equals_engine_top_after_every_update(seed: int, depth: int) -> None:
    clients: dict[str, ClientBook] = {}
    late: dict[str, ClientBook] = {}  # joined mid-stream from a snapshot
    checked = [0]

    def after(flow: Flow, i: int, events: list[Event]) -> None:
        for env in flow.envelopes:
            if not env.channel.startswith("book."):
                continue
            sym = env.channel[5:]
            data = env.data()
            for books in (clients, late):
                if sym in books:
                    books[sym].apply(data)
            client = clients.setdefault(sym, ClientBook(data))
            bids, asks = client.sorted()
            assert len(bids) <= depth and len(asks) <= depth
            assert (bids, asks) == engine_top(flow, sym, depth), i
            assert data["checksum"] == checksum(bids, asks)
            if sym in late:
                assert late[sym].sorted() == (bids, asks)
            checked[0] += 1
        flow.envelopes.clear()
        if i % 500 == 250:
            for sym in flow.pub.instruments:
                snap = flow.pub.snapshot(f"book.{sym}")
                assert snap is not None and snap.seq == flow.pub.seq(f"book.{sym}")
                late[sym] = ClientBook(snap.data())
                assert late[sym].sorted() == engine_top(flow, sym, depth)

    run_flow(seed, COMMANDS, PublisherConfig(epoch="t", book_depth=depth), after=after)
    assert checked[0] > 500 and len(late) == 3


def trades_of(events: list[Event]) -> dict[str, list[Trade]]:
    out: dict[str, list[Trade]] = defaultdict(list)
    for ev in events:
        if type(ev) is Trade:
            out[ev.symbol].append(ev)
    return out


def recompute_candles(trades: list[Trade], width_us: int, inst: Instrument) -> list[Any]:
    buckets: dict[int, list[Trade]] = {}
    for tr in trades:
        buckets.setdefault((tr.ts - tr.ts % width_us) // 1000, []).append(tr)
    return [
        {
            "t": t,
            "o": inst.price_text(b[0].price),
            "h": inst.price_text(max(x.price for x in b)),
            "l": inst.price_text(min(x.price for x in b)),
            "c": inst.price_text(b[-1].price),
            "v": sum(x.qty for x in b),
            "n": len(b),
        }
        for t, b in sorted(buckets.items())
    ]


def by_channel(envelopes: list[Envelope]) -> dict[str, list[Envelope]]:
    out: dict[str, list[Envelope]] = defaultdict(list)
    for env in envelopes:
        out[env.channel].append(env)
    return out


@pytest.fixture(scope="module")
def plain() -> Flow:
    return run_flow(7, COMMANDS, PublisherConfig(epoch="p", book_depth=20))


def test_candles_equal_recomputation_from_trades(plain: Flow) -> None:
    trades = trades_of(plain.events)
    chans = by_channel(plain.envelopes)
    assert sum(len(t) for t in trades.values()) > 200
    closed: dict[tuple[str, str], list[Any]] = defaultdict(list)
    for sym, res, candle in plain.closed:
        closed[(sym, res)].append(candle)
    for sym, inst in plain.pub.instruments.items():
        for res, width in RESOLUTIONS.items():
            want = recompute_candles(trades[sym], width, inst)
            latest: dict[int, Any] = {}
            for env in chans[f"candles.{sym}.{res}"]:
                for c in env.data()["candles"]:
                    latest[c["t"]] = c
            assert [latest[t] for t in sorted(latest)] == want
            snap = plain.pub.snapshot(f"candles.{sym}.{res}")
            assert snap is not None and snap.data()["candles"] == want[-300:]
            assert closed[(sym, res)] == want[:-1]
        assert len(closed[(sym, "1s")]) > 10


def test_ticker_matches_trades_and_book(plain: Flow) -> None:
    trades = trades_of(plain.events)
    chans = by_channel(plain.envelopes)
    for sym, inst in plain.pub.instruments.items():
        last = chans[f"ticker.{sym}"][-1].data()
        prices = [t.price for t in trades[sym]]  # one UTC day: the whole run is one session
        assert last["open"] == inst.price_text(prices[0])
        assert last["last"] == inst.price_text(prices[-1])
        assert last["high"] == inst.price_text(max(prices))
        assert last["low"] == inst.price_text(min(prices))
        assert last["volume"] == sum(t.qty for t in trades[sym])
        cash = sum(inst.notional(t.price, t.qty) for t in trades[sym])
        assert last["turnover"] == plain.pub.snapshot(f"ticker.{sym}").data()["turnover"]  # type: ignore[union-attr]
        whole, _, frac = last["turnover"].partition(".")
        assert int(whole) * 10**8 + int(frac.ljust(8, "0")) == cash
        book = plain.engine.book(sym)
        assert book is not None
        bid, ask = book.depth("buy", 1), book.depth("sell", 1)
        assert last["bid"] == (inst.price_text(bid[0][0]) if bid else None)
        assert last["ask"] == (inst.price_text(ask[0][0]) if ask else None)


def test_trades_channel_and_seq_gap_free(plain: Flow) -> None:
    trades = trades_of(plain.events)
    chans = by_channel(plain.envelopes)
    for channel, envs in chans.items():
        assert [e.seq for e in envs] == list(range(1, len(envs) + 1)), channel
        assert all(e.epoch == "p" and e.type == "update" for e in envs)
        assert all(b'"ts":' in e.payload for e in envs)
    for sym in plain.pub.instruments:
        got = [t for e in chans[f"trades.{sym}"] for t in e.data()["trades"]]
        assert [t["id"] for t in got] == [t.trade_id for t in trades[sym]]
        assert [t["side"] for t in got] == [t.aggressor for t in trades[sym]]
        snap = plain.pub.snapshot(f"trades.{sym}")
        assert snap is not None and snap.data()["trades"] == got[-50:]
        assert snap.seq == chans[f"trades.{sym}"][-1].seq


def test_orders_streams_are_private(plain: Flow) -> None:
    chans = by_channel(plain.envelopes)
    accounts = {f"acct{a}" for a in range(6)}
    own_orders: dict[str, set[int]] = defaultdict(set)
    for ev in plain.events:
        account = getattr(ev, "account", None)
        if account is not None and hasattr(ev, "order_id"):
            own_orders[account].add(ev.order_id)  # type: ignore[union-attr]
    kinds: set[str] = set()
    for account in accounts:
        envs = chans[f"orders.{account}"]
        assert envs and [e.seq for e in envs] == list(range(1, len(envs) + 1))
        for env in envs:
            assert b'"ch":"orders"' in env.payload
            data = env.data()
            kinds.add(data["event"])
            assert data["account"] == account
            assert data.get("orderId") is None or data["orderId"] in own_orders[account]
            others = accounts - {account}
            assert not others & {v for v in data.values() if isinstance(v, str)}
        snap = plain.pub.snapshot(f"orders.{account}")
        assert snap is not None and snap.seq == envs[-1].seq
        assert all(o["account"] == account for o in snap.data()["open"])
    assert kinds >= {"accepted", "trade", "cancelled", "replaced", "done", "rejected"}


def test_self_trade_gives_two_records_for_the_account() -> None:
    from engine.events import Accepted, Done

    from .test_publisher import make

    pub, out = make()
    pub.on_events([Accepted(1, 1, 5, 1, "a", "s", "AAPL", "sell", "limit", 100, 3, "GTC")])
    pub.on_events(
        [
            Accepted(2, 2, 6, 2, "a", "b", "AAPL", "buy", "limit", 100, 3, "GTC"),
            Trade(3, 2, 6, 1, "AAPL", 100, 3, "buy", 2, 1, "a", "a", "b", "s"),
            Done(4, 2, 6, 2, "a", "b", "AAPL"),
            Done(5, 2, 6, 1, "a", "s", "AAPL"),
        ]
    )
    recs = [e.data() for e in out if e.channel == "orders.a" and e.data()["event"] == "trade"]
    assert [(r["side"], r["orderId"], r["liquidity"]) for r in recs] == [
        ("buy", 2, "taker"),
        ("sell", 1, "maker"),
    ]


CONFLATE = {"book": 250, "ticker": 100, "candles": 500, "trades": 1_000}


def test_conflation_reaches_the_same_state(plain: Flow) -> None:
    mid: dict[str, Envelope] = {}

    def after(flow: Flow, i: int, events: list[Event]) -> None:
        if i == 1_200:
            for ch in flow.pub.channels():
                if not ch.startswith("orders."):
                    snap = flow.pub.snapshot(ch)
                    assert snap is not None
                    mid[ch] = snap

    cfg = PublisherConfig(epoch="p", book_depth=20, conflate_ms=CONFLATE)
    conf = run_flow(7, COMMANDS, cfg, after=after)
    a, b = by_channel(plain.envelopes), by_channel(conf.envelopes)
    assert a.keys() == b.keys()
    for ch in a:
        if ch.startswith("orders."):  # never conflated: identical bytes
            assert [e.payload for e in a[ch]] == [e.payload for e in b[ch]]
        elif ch.startswith("trades."):  # concatenated lists
            flat = [[t for e in envs for t in e.data()["trades"]] for envs in (a[ch], b[ch])]
            assert flat[0] == flat[1]
            assert len(b[ch]) < len(a[ch])
            tail = mid[ch].data()["trades"] + [
                t for e in b[ch] if e.seq > mid[ch].seq for t in e.data()["trades"]
            ]
            assert tail[-50:] == flat[1][-50:]
        elif ch.startswith("book."):
            books = [ClientBook(), ClientBook()]
            for book, envs in zip(books, (a[ch], b[ch]), strict=True):
                for env in envs:
                    book.apply(env.data())
                    assert env.data()["checksum"] == checksum(*book.sorted())
            assert books[0].sorted() == books[1].sorted()
            assert len(b[ch]) < len(a[ch])
            resumed = ClientBook(mid[ch].data())
            for env in b[ch]:
                if env.seq > mid[ch].seq:
                    resumed.apply(env.data())
            assert resumed.sorted() == books[1].sorted()
        elif ch.startswith("ticker."):
            assert a[ch][-1].data() == b[ch][-1].data()
        else:
            states: list[dict[int, Any]] = [{}, {}]
            for state, envs in zip(states, (a[ch], b[ch]), strict=True):
                for env in envs:
                    for c in env.data()["candles"]:
                        state[c["t"]] = c
            assert states[0] == states[1], ch
        snaps = conf.pub.snapshot(ch), plain.pub.snapshot(ch)
        assert snaps[0] is not None and snaps[1] is not None
        assert snaps[0].data() == snaps[1].data()  # after flush_all: the same state
        assert snaps[0].seq == b[ch][-1].seq


def test_same_input_same_bytes() -> None:
    cfg = PublisherConfig(epoch="d", book_depth=10, conflate_ms=CONFLATE)
    runs = [run_flow(11, 1_200, cfg) for _ in range(2)]
    assert [e.payload for e in runs[0].envelopes] == [e.payload for e in runs[1].envelopes]
    assert len(runs[0].envelopes) > 1_000
