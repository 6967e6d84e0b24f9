"""Private orders streams: one message per event of the account, execution records of its
own side only, wire channel ``orders``, snapshots from the open_orders callable."""

from __future__ import annotations

from typing import Any

import orjson

from engine.events import Accepted, Rejected, Replaced, Trade
from engine.instruments import Instrument
from gateway.marketdata.orders import OrderStreams, execution_record
from gateway.wire.envelope import Envelope

INST = {"AAPL": Instrument.define(symbol="AAPL", tick="0.01", lot=1)}
TRADE = Trade(9, 4, 50, 3, "AAPL", 12_345, 7, "sell", 11, 12, "alice", "bob", "a-1", "b-1")


def streams(open_orders: Any = None) -> tuple[OrderStreams, list[Envelope]]:
    out: list[Envelope] = []
    return OrderStreams("ep", out.append, INST, lambda: 42, open_orders), out


def test_execution_records_show_only_the_own_side() -> None:
    buy = execution_record(TRADE, "buy", INST)
    sell = execution_record(TRADE, "sell", INST)
    assert buy == {
        "event": "trade", "seq": 9, "inSeq": 4, "account": "alice", "tradeId": 3, "orderId": 11,
        "clientOrderId": "a-1", "symbol": "AAPL", "side": "buy", "price": "123.45", "qty": 7,
        "liquidity": "maker", "ts": 50,
    }  # fmt: skip
    assert sell["account"] == "bob" and sell["orderId"] == 12 and sell["liquidity"] == "taker"
    assert "alice" not in sell.values() and "a-1" not in sell.values() and 11 not in sell.values()
    assert "bob" not in buy.values() and "b-1" not in buy.values() and 12 not in buy.values()


def test_each_account_gets_its_own_stream() -> None:
    s, out = streams()
    s.on_event(Accepted(1, 1, 10, 11, "alice", "a-1", "AAPL", "buy", "limit", 12_345, 7, "GTC"))
    s.on_event(TRADE)
    s.on_event(Rejected(10, 5, 60, None, None, "malformed", "bad json"))  # no account: nowhere
    s.on_event(Rejected(11, 6, 70, "bob", "b-2", "unknown_symbol", "no", "MSFT"))
    s.on_event(Replaced(12, 7, 80, 11, "alice", "a-1", "AAPL", 12_300, 3, False))
    by: dict[str, list[Envelope]] = {}
    for env in out:
        by.setdefault(env.channel, []).append(env)
    assert sorted(by) == ["orders.alice", "orders.bob"]
    assert [e.seq for e in by["orders.alice"]] == [1, 2, 3]
    assert [e.data()["event"] for e in by["orders.alice"]] == ["accepted", "trade", "replaced"]
    assert [e.data()["event"] for e in by["orders.bob"]] == ["trade", "rejected"]
    assert all(e.payload.startswith(b'{"type":"update","ch":"orders","epoch":"ep"') for e in out)
    assert [e.ts for e in by["orders.bob"]] == [50, 70]
    assert b"alice" not in b"".join(e.payload for e in by["orders.bob"])
    assert sorted(s.channels()) == ["orders.alice", "orders.bob"]


def test_self_trade_gives_both_records() -> None:
    s, out = streams()
    s.on_event(TRADE._replace(sell_account="alice", sell_client_order_id="a-2"))
    assert [(e.seq, e.data()["side"], e.data()["orderId"]) for e in out] == [
        (1, "buy", 11),
        (2, "sell", 12),
    ]


def test_snapshot_lists_open_orders() -> None:
    calls: list[str] = []

    def open_orders(account: str) -> list[dict[str, Any]]:
        calls.append(account)
        return [{"orderId": 1, "account": account}]

    s, _ = streams(open_orders)
    snap = s.stream("carol").snapshot()
    assert snap.payload.startswith(b'{"type":"snapshot","ch":"orders"')
    assert (snap.channel, snap.seq, snap.ts) == ("orders.carol", 0, 42)
    assert snap.data() == {"open": [{"orderId": 1, "account": "carol"}]}
    assert s.stream("carol").snapshot() is snap and calls == ["carol"]  # cached per seq
    empty, _ = streams()
    assert empty.stream("dave").snapshot().data() == {"open": []}


def test_records_equal_the_codec_rendering() -> None:
    from engine.codec import event_to_json
    from engine.events import Cancelled, Done, Event

    events: list[Event] = [
        Accepted(1, 1, 10, 11, "alice", "a-1", "AAPL", "buy", "limit", 12_345, 7, "GTC"),
        Accepted(2, 2, 11, 12, "bob", 'b-"1\\', "AAPL", "sell", "market", None, 7, "IOC"),
        Accepted(3, 3, 12, 13, "bob", "b-3", "MSFT", "sell", "limit", 250, 1, "GTC"),  # unknown
        TRADE,
        TRADE._replace(aggressor="buy", sell_account="alice", sell_client_order_id="a-2"),
        Cancelled(4, 5, 60, 11, "alice", "a-1", "AAPL", 3, "user"),
        Replaced(5, 6, 70, 12, "bob", "b-1", "AAPL", 12_300, 3, True),
        Done(6, 7, 80, 11, "alice", "a-1", "AAPL"),
        Rejected(7, 8, 90, "bob", "b-9", "bad_price", "off tick", "AAPL"),
    ]
    s, out = streams()
    want: list[dict[str, Any]] = []
    for ev in events:
        s.on_event(ev)
        if isinstance(ev, Trade):
            want += [execution_record(ev, "buy", INST), execution_record(ev, "sell", INST)]
        else:
            want.append(event_to_json(ev, INST))
    assert [e.data() for e in out] == want
    # the same bytes, key order included (replay output stays byte-identical)
    assert all(
        e.payload.endswith(b'"data":' + orjson.dumps(w) + b"}")
        for e, w in zip(out, want, strict=True)
    )


def test_template_records_escape_like_orjson() -> None:
    """Account, client order id and symbol strings with quotes, backslashes, control and
    non-ASCII characters: the byte templates give orjson's bytes for the codec's dicts."""
    from engine.codec import event_to_json
    from engine.events import Cancelled, Done, Event

    odd_account, odd_coid = 'al"ice\\', "c\n\t\x01-é€😀"
    inst = dict(INST) | {'A"B': Instrument.define(symbol='A"B', tick="0.5", lot=2)}
    events: list[Event] = [
        Accepted(1, 1, 10, 11, odd_account, odd_coid, 'A"B', "buy", "limit", 3, 2, "FOK"),
        Accepted(2, 2, 11, 12, odd_account, "x", "NOPE", "sell", "limit", 250, 1, "GTC"),
        Cancelled(3, 3, 12, 11, odd_account, odd_coid, 'A"B', 2, "fok"),
        Done(4, 4, 13, 12, odd_account, "x", "NOPE"),
        Trade(5, 5, 14, 1, 'A"B', 7, 2, "buy", 13, 14, odd_account, "bob", odd_coid, "b\\"),
        Trade(6, 5, 14, 2, "NOPE", 9, 1, "sell", 15, 16, "bob", odd_account, "q", odd_coid),
    ]
    out: list[Envelope] = []
    s = OrderStreams("ep", out.append, inst, lambda: 0)
    want: list[bytes] = []
    for ev in events:
        s.on_event(ev)
        if isinstance(ev, Trade):
            for side in ("buy", "sell"):
                rec = execution_record(ev, side, inst)
                if ev.symbol not in inst:  # the codec shows plain ticks
                    assert rec["price"] == str(ev.price)
                want.append(orjson.dumps(rec))
        else:
            want.append(orjson.dumps(event_to_json(ev, inst)))
    assert [e.payload[e.payload.index(b'"data":') + 7 : -1] for e in out] == want
    assert [e.channel for e in out][:4] == [f"orders.{odd_account}"] * 4


def test_a_rejection_for_an_empty_account_goes_nowhere() -> None:
    """Fuzz finding (tests/fuzz/fuzz_orders.py): the engine rejects ``"account": ""`` as
    malformed with the empty account in the event; its record went to ``orders.``, a stream
    no client can subscribe to and ``Publisher.snapshot`` has no snapshot for."""
    from engine import Engine

    engine = Engine()
    events = engine.submit_line(b'{"op":"replace","account":"","clientOrderId":"o0","qty":6}')
    assert [(type(e), getattr(e, "account", None)) for e in events] == [(Rejected, "")]
    s, out = streams()
    for ev in events:
        s.on_event(ev)
    s.event(events[0])
    s.on_event(Rejected(2, 2, 20, "", "x", "unknown_symbol", "no", "AAPL"))
    assert out == [] and s.channels() == []
    s.on_event(Rejected(3, 3, 30, "bob", "x", "unknown_symbol", "no", "AAPL"))
    assert [e.channel for e in out] == ["orders.bob"]
