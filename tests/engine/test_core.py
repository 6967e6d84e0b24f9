from __future__ import annotations

from typing import Any

from engine import Engine, EngineConfig
from engine.codec import encode_event
from engine.commands import (
    CancelOrder,
    Command,
    DefineInstrument,
    Deposit,
    Malformed,
    NewOrder,
    ReplaceOrder,
)
from engine.events import (
    Accepted,
    Cancelled,
    Done,
    Event,
    Rejected,
    Replaced,
    Trade,
)
from engine.units import CASH_SCALE
from tests.engine.harness import Harness, kinds

USD = CASH_SCALE


def reasons(events: list[Event]) -> list[str]:
    return [e.reason for e in events if isinstance(e, Rejected | Cancelled)]


def test_resting_order_and_accepted_fields(harness: Harness) -> None:
    (ev,) = harness.new("a", "c1", "buy", "10.50", 3)
    assert isinstance(ev, Accepted)
    assert (ev.order_id, ev.account, ev.client_order_id, ev.symbol) == (1, "a", "c1", "ACME")
    assert (ev.side, ev.type, ev.price, ev.qty, ev.tif) == ("buy", "limit", 1050, 3, "GTC")
    book = harness.engine.book("ACME")
    assert book is not None and book.depth("buy", 5) == [(1050, 3)]
    order = harness.engine.orders.by_client("a", "c1")
    assert order is harness.engine.orders.get(1)
    assert order is not None and order.status == "new" and order.open_qty == 3
    assert harness.engine.orders.open_orders("a") == [order]
    # 10.50 x 3 reserved
    assert harness.balance("a", "USD") == (1_000_000 * USD - 3150 * USD // 100, 3150 * USD // 100)


def test_price_time_priority_and_trade_at_resting_price(harness: Harness) -> None:
    harness.new("b", "s1", "sell", "10.00", 5)
    harness.new("b", "s2", "sell", "9.99", 5)
    harness.new("b", "s3", "sell", "9.99", 5)
    events = harness.new("a", "b1", "buy", "10.00", 12)
    assert kinds(events) == ["accepted", "trade", "done", "trade", "done", "trade", "done"]
    trades = [e for e in events if isinstance(e, Trade)]
    assert [(t.price, t.qty, t.sell_order_id) for t in trades] == [
        (999, 5, 2),
        (999, 5, 3),
        (1000, 2, 1),
    ]
    assert all(t.aggressor == "buy" and t.buy_order_id == 4 for t in trades)
    assert [t.trade_id for t in trades] == [1, 2, 3]
    assert isinstance(events[-1], Done) and events[-1].order_id == 4
    s1 = harness.engine.orders.get(1)
    assert s1 is not None and s1.status == "partially_filled" and s1.filled == 2
    assert s1.open_qty == 3
    book = harness.engine.book("ACME")
    assert book is not None and book.depth("sell", 5) == [(1000, 3)] and book.best_bid is None
    assert book.last_price == 1000


def test_price_improvement_refunds_the_buyer(harness: Harness) -> None:
    harness.new("b", "s1", "sell", "9.00", 10)
    harness.new("a", "b1", "buy", "10.00", 10)
    # a paid 90.00, not the 100.00 it reserved
    assert harness.balance("a", "USD") == ((1_000_000 - 90) * USD, 0)
    assert harness.balance("a", "ACME") == (10_010, 0)
    assert harness.balance("b", "USD") == ((1_000_000 + 90) * USD, 0)
    assert harness.balance("b", "ACME") == (9_990, 0)


def test_sell_aggressor_partially_fills_then_rests(harness: Harness) -> None:
    harness.new("a", "b1", "buy", "10.00", 4)
    events = harness.new("b", "s1", "sell", "10.00", 10)
    assert kinds(events) == ["accepted", "trade", "done"]
    trade = events[1]
    assert isinstance(trade, Trade) and trade.aggressor == "sell" and trade.qty == 4
    order = harness.engine.orders.by_client("b", "s1")
    assert order is not None and order.status == "partially_filled" and order.open_qty == 6
    assert harness.balance("b", "ACME") == (9_990, 6)
    book = harness.engine.book("ACME")
    assert book is not None and book.depth("sell", 1) == [(1000, 6)] and not book.is_crossed()


def test_ioc_cancels_the_rest(harness: Harness) -> None:
    harness.new("b", "s1", "sell", "10.00", 3)
    events = harness.new("a", "b1", "buy", "10.00", 5, tif="IOC")
    assert kinds(events) == ["accepted", "trade", "done", "cancelled"]
    cancelled = events[-1]
    assert isinstance(cancelled, Cancelled) and cancelled.reason == "ioc"
    assert cancelled.remaining == 2
    assert harness.balance("a", "USD") == ((1_000_000 - 30) * USD, 0)
    assert harness.engine.orders.open_orders("a") == []
    order = harness.engine.orders.by_client("a", "b1")
    assert order is not None and order.status == "cancelled" and order.filled == 3


def test_ioc_with_nothing_to_match(harness: Harness) -> None:
    events = harness.new("a", "b1", "buy", "10.00", 5, tif="IOC")
    assert kinds(events) == ["accepted", "cancelled"]
    assert harness.balance("a", "USD") == (1_000_000 * USD, 0)


def test_fok_all_or_nothing(harness: Harness) -> None:
    harness.new("b", "s1", "sell", "10.00", 3)
    harness.new("b", "s2", "sell", "10.01", 3)
    harness.new("b", "s3", "sell", "10.50", 10)
    events = harness.new("a", "f1", "buy", "10.01", 7, tif="FOK")
    assert kinds(events) == ["accepted", "cancelled"] and reasons(events) == ["fok"]
    assert harness.balance("a", "USD") == (1_000_000 * USD, 0)
    events = harness.new("a", "f2", "buy", "10.01", 6, tif="FOK")
    assert kinds(events) == ["accepted", "trade", "done", "trade", "done", "done"]


def test_fok_sell(harness: Harness) -> None:
    harness.new("a", "b1", "buy", "10.00", 3)
    events = harness.new("b", "f1", "sell", "10.00", 4, tif="FOK")
    assert reasons(events) == ["fok"]
    assert harness.balance("b", "ACME") == (10_000, 0)
    events = harness.new("b", "f2", "sell", "9.00", 3, tif="FOK")
    assert kinds(events) == ["accepted", "trade", "done", "done"]


def test_market_buy_limited_by_cash(make_harness: Any) -> None:
    h: Harness = make_harness()
    h.submit(Deposit("poor", "USD", "25"))
    h.new("b", "s1", "sell", "10.00", 1)
    h.new("b", "s2", "sell", "10.00", 5)
    events = h.new("poor", "m1", "buy", None, 5, type="market")
    assert kinds(events) == ["accepted", "trade", "done", "trade", "cancelled"]
    accepted = events[0]
    assert isinstance(accepted, Accepted) and accepted.price is None and accepted.tif == "IOC"
    assert [e.qty for e in events if isinstance(e, Trade)] == [1, 1]
    assert reasons(events) == ["market_unfilled"]
    assert h.balance("poor", "USD") == (5 * USD, 0)
    assert h.balance("poor", "ACME") == (2, 0)


def test_market_sell_empty_book_and_no_shares(harness: Harness) -> None:
    events = harness.new("a", "m1", "sell", None, 5, type="market")
    assert kinds(events) == ["accepted", "cancelled"] and reasons(events) == ["market_unfilled"]
    assert harness.balance("a", "ACME") == (10_000, 0)
    events = harness.new("a", "m2", "sell", None, 10_001, type="market")
    assert reasons(events) == ["insufficient_funds"]


def test_market_order_with_price_rejected(harness: Harness) -> None:
    assert reasons(harness.new("a", "m1", "buy", "1.00", 1, type="market")) == ["bad_price"]


def test_cancel_releases_and_unknown_order(harness: Harness) -> None:
    harness.new("b", "s1", "sell", "10.00", 7)
    assert harness.balance("b", "ACME") == (9_993, 7)
    (ev,) = harness.cancel("b", "s1")
    assert isinstance(ev, Cancelled) and ev.reason == "user" and ev.remaining == 7
    assert harness.balance("b", "ACME") == (10_000, 0)
    assert reasons(harness.cancel("b", "s1")) == ["unknown_order"]
    assert reasons(harness.cancel("b", "nope")) == ["unknown_order"]
    assert reasons(harness.cancel("a", "s1")) == ["unknown_order"]  # another account's id
    book = harness.engine.book("ACME")
    assert book is not None and book.best_ask is None


def test_rejections(harness: Harness) -> None:
    h = harness
    assert reasons(h.new("a", "x1", "buy", "10.00", 1, symbol="NOPE")) == ["unknown_symbol"]
    assert reasons(h.new("a", "x2", "buy", "10.001", 1)) == ["bad_price"]
    assert reasons(h.new("a", "x3", "buy", "-1", 1)) == ["bad_price"]
    assert reasons(h.new("a", "x4", "buy", "0", 1)) == ["bad_price"]
    assert reasons(h.new("a", "x5", "buy", "10.00", 0)) == ["bad_qty"]
    assert reasons(h.new("a", "x6", "buy", "10.00", -3)) == ["bad_qty"]
    assert reasons(h.new("a", "x7", "up", "10.00", 1)) == ["malformed"]
    assert reasons(h.new("a", "x8", "buy", "10.00", 1, tif="GTD")) == ["malformed"]
    assert reasons(h.new("a", "x9", "buy", "10.00", 1, type="stop")) == ["malformed"]
    assert reasons(h.new("a", "x10", "buy", "100000.00", 11)) == ["insufficient_funds"]
    assert reasons(h.new("a", "x11", "sell", "10.00", 10_001)) == ["insufficient_funds"]
    h.new("a", "ok", "buy", "10.00", 1)
    assert reasons(h.new("a", "ok", "buy", "10.00", 1)) == ["duplicate_order"]
    # a rejected id is not used up
    assert kinds(h.new("a", "x5", "buy", "10.00", 1)) == ["accepted"]
    rejected = [e for e in h.events if isinstance(e, Rejected)]
    assert all(e.message for e in rejected)
    assert rejected[1].account == "a" and rejected[1].client_order_id == "x2"


def test_lot_size(make_harness: Any) -> None:
    h: Harness = make_harness(lot=100)
    assert reasons(h.new("a", "c1", "buy", "1.00", 150)) == ["bad_qty"]
    assert kinds(h.new("a", "c2", "buy", "1.00", 200)) == ["accepted"]


def test_risk_limits(make_harness: Any) -> None:
    h: Harness = make_harness(max_qty=100, max_notional="500", band="0.1")
    assert reasons(h.new("a", "c1", "buy", "1.00", 101)) == ["risk_max_qty"]
    assert reasons(h.new("a", "c2", "buy", "5.01", 100)) == ["risk_max_notional"]
    # no band before the first trade
    h.new("b", "s1", "sell", "4.00", 10)
    h.new("a", "b1", "buy", "4.00", 10)
    assert harness_last(h) == 400
    assert reasons(h.new("a", "c3", "buy", "4.41", 1)) == ["risk_price_band"]
    assert reasons(h.new("a", "c4", "sell", "3.59", 1)) == ["risk_price_band"]
    assert kinds(h.new("a", "c5", "buy", "4.40", 1)) == ["accepted"]
    assert kinds(h.new("a", "c6", "buy", "3.60", 1)) == ["accepted"]
    # a market order's notional is taken at the last trade price
    assert reasons(h.new("a", "m1", "buy", None, 126, type="market")) == ["risk_max_qty"]
    h2: Harness = make_harness(max_notional="100")
    h2.new("b", "s1", "sell", "4.00", 20)
    assert reasons(h2.new("a", "m1", "buy", None, 26, type="market")) == ["risk_max_notional"]
    # replace is checked too
    assert reasons(h.replace("a", "c5", price="5.00")) == ["risk_price_band"]
    assert reasons(h.replace("a", "c5", qty=101)) == ["risk_max_qty"]


def harness_last(h: Harness) -> int | None:
    return h.engine.last_price("ACME")


def test_max_open_orders_per_account(make_harness: Any) -> None:
    h: Harness = make_harness(EngineConfig(max_open_orders_per_account=2))
    h.new("a", "c1", "buy", "1.00", 1)
    h.new("a", "c2", "buy", "1.00", 1)
    assert reasons(h.new("a", "c3", "buy", "1.00", 1)) == ["risk_max_open_orders"]
    # IOC orders never rest, so the cap does not apply
    assert kinds(h.new("a", "i1", "buy", "1.00", 1, tif="IOC")) == ["accepted", "cancelled"]
    assert kinds(h.new("b", "c1", "buy", "1.00", 1)) == ["accepted"]
    h.cancel("a", "c1")
    assert kinds(h.new("a", "c4", "buy", "1.00", 1)) == ["accepted"]


def test_replace_smaller_keeps_priority(harness: Harness) -> None:
    harness.new("a", "b1", "buy", "10.00", 10)
    harness.new("b", "b2", "buy", "10.00", 10)
    (ev,) = harness.replace("a", "b1", qty=4)
    assert isinstance(ev, Replaced) and ev.priority_kept and ev.qty == 4 and ev.price == 1000
    assert harness.balance("a", "USD") == ((1_000_000 - 40) * USD, 40 * USD)
    events = harness.new("b", "s1", "sell", "10.00", 4)
    assert [e.buy_order_id for e in events if isinstance(e, Trade)] == [1]
    order = harness.engine.orders.get(1)
    assert order is not None and order.qty == 4 and order.status == "filled"


def test_replace_larger_or_new_price_goes_to_the_back(harness: Harness) -> None:
    harness.new("a", "b1", "buy", "10.00", 10)
    harness.new("b", "b2", "buy", "10.00", 10)
    (ev,) = harness.replace("a", "b1", qty=12)
    assert isinstance(ev, Replaced) and not ev.priority_kept
    book = harness.engine.book("ACME")
    assert book is not None
    assert [o.order_id for o in book.bids[1000].orders()] == [2, 1]
    assert book.depth("buy", 1) == [(1000, 22)]
    (ev,) = harness.replace("b", "b2", price="9.99")
    assert isinstance(ev, Replaced) and not ev.priority_kept and ev.qty == 10
    assert book.depth("buy", 5) == [(1000, 12), (999, 10)]
    assert harness.balance("b", "USD") == ((1_000_000 - 99.9) * USD, 99.9 * USD)


def test_replace_crossing_price_matches_at_once(harness: Harness) -> None:
    harness.new("b", "s1", "sell", "10.05", 5)
    harness.new("a", "b1", "buy", "10.00", 8)
    events = harness.replace("a", "b1", price="10.10")
    assert kinds(events) == ["replaced", "trade", "done"]
    trade = events[1]
    assert isinstance(trade, Trade) and trade.price == 1005 and trade.qty == 5
    order = harness.engine.orders.by_client("a", "b1")
    assert order is not None and order.open_qty == 3 and order.price == 1010
    assert harness.balance("a", "USD") == (
        (1_000_000 * USD - 5025 * USD // 100 - 3030 * USD // 100),
        3030 * USD // 100,
    )
    events = harness.replace("a", "b1", price="10.10", qty=3)
    assert kinds(events) == ["replaced"]
    harness.new("b", "s2", "sell", "10.10", 3)
    assert order.status == "filled" and harness.balance("a", "USD")[1] == 0


def test_replace_fully_filled_on_cross(harness: Harness) -> None:
    harness.new("b", "s1", "sell", "10.05", 10)
    harness.new("a", "b1", "buy", "10.00", 8)
    events = harness.replace("a", "b1", price="10.05")
    assert kinds(events) == ["replaced", "trade", "done"]
    done = events[-1]
    assert isinstance(done, Done) and done.order_id == 2
    assert harness.engine.orders.open_orders("a") == []


def test_replace_rejections(harness: Harness) -> None:
    harness.new("a", "b1", "buy", "10.00", 8)
    assert reasons(harness.replace("a", "nope", qty=1)) == ["unknown_order"]
    assert reasons(harness.replace("a", "b1")) == ["malformed"]
    assert reasons(harness.replace("a", "b1", price="x")) == ["bad_price"]
    assert reasons(harness.replace("a", "b1", qty=0)) == ["bad_qty"]
    assert reasons(harness.replace("a", "b1", price="100000.00", qty=100)) == ["insufficient_funds"]
    harness.new("b", "s1", "sell", "10.00", 10_000)
    assert reasons(harness.replace("b", "s1", qty=10_001)) == ["insufficient_funds"]
    order = harness.engine.orders.by_client("a", "b1")
    assert order is not None and order.status == "filled"
    assert reasons(harness.replace("a", "b1", qty=1)) == ["unknown_order"]


def test_deposits_and_instruments(harness: Harness) -> None:
    h = harness
    assert h.submit(Deposit("c", "USD", "12.345")) == []
    assert h.balance("c", "USD") == (1_234_500_000, 0)
    assert reasons(h.submit(Deposit("c", "USD", "-1"))) == ["bad_qty"]
    assert reasons(h.submit(Deposit("c", "ACME", "5"))) == ["bad_qty"]
    assert reasons(h.submit(Deposit("c", "ACME", 0))) == ["bad_qty"]
    assert reasons(h.submit(Deposit("c", "XYZ", 5))) == ["unknown_symbol"]
    assert h.submit(DefineInstrument("ACME", "0.01", 1)) == []  # same again: fine
    assert reasons(h.submit(DefineInstrument("ACME", "0.05", 1))) == ["malformed"]
    assert reasons(h.submit(DefineInstrument("BAD", "0", 1))) == ["bad_price"]
    assert reasons(h.submit(DefineInstrument("BAD", "0.01", 0))) == ["bad_qty"]
    assert reasons(h.submit(DefineInstrument("BAD", "0.01", 1, band="x"))) == ["malformed"]
    assert reasons(h.submit(DefineInstrument("USD", "0.01", 1))) == ["malformed"]
    assert h.submit(DefineInstrument("EUX", "0.5", 10, currency="EUR")) == []
    assert h.submit(Deposit("c", "EUR", "100")) == []
    assert h.engine.instruments["EUX"].currency == "EUR"
    assert h.engine.symbols() == ["ACME", "EUX"]


def test_sequencing_counts_every_input() -> None:
    e = Engine(clock=lambda: 77)
    assert e.submit_line(b"{") and e.in_seq == 1
    e.submit_line('{"op":"instrument","symbol":"X","tick":"1","lot":1}')
    e.submit_line('{"op":"deposit","account":"a","asset":"USD","amount":"100"}')
    events = e.submit_line(
        '{"op":"new","account":"a","clientOrderId":"1","symbol":"X","side":"buy",'
        '"type":"limit","price":"5","qty":2,"ts":123}'
    )
    assert e.in_seq == 4 and e.out_seq == 2
    (ev,) = events
    assert isinstance(ev, Accepted) and (ev.seq, ev.in_seq, ev.ts) == (2, 4, 123)
    (ev,) = e.submit(CancelOrder("a", "1"))
    assert (ev.seq, ev.in_seq, ev.ts) == (3, 5, 77)


def test_bad_input_never_raises() -> None:
    e = Engine(clock=lambda: 1)
    bad: list[Any] = [
        "{}",
        "[]",
        "null",
        '{"op":"new"}',
        '{"op":"new","account":"a","clientOrderId":"c","symbol":"X","side":"buy","qty":"1"}',
        '{"op":"cancel","account":1,"clientOrderId":"c"}',
        '{"op":"replace","account":"a","clientOrderId":"c","qty":1.5}',
        '{"op":"deposit","account":"a","asset":"USD","amount":[1]}',
        '{"op":"instrument","symbol":"X","tick":0.01,"lot":1}',
        b"\xff\xfe",
        "",
    ]
    for line in bad:
        events = e.submit_line(line)
        assert len(events) == 1 and isinstance(events[0], Rejected)
    odd: list[Any] = [
        NewOrder(1, 2, "X", "buy", "limit", "1", 1),  # type: ignore[arg-type]
        NewOrder("a", "c", 3, "buy", "limit", "1", 1),  # type: ignore[arg-type]
        CancelOrder(None, None),  # type: ignore[arg-type]
        ReplaceOrder("a", "c", 5, None),  # type: ignore[arg-type]
        Deposit("a", 7, 7),  # type: ignore[arg-type]
        DefineInstrument(None, "1", 1),  # type: ignore[arg-type]
        DefineInstrument("Y", "1", 1.5),  # type: ignore[arg-type]
        DefineInstrument("Y", "1", 1, max_notional="abc"),
        NewOrder("a", "c", "X", "buy", "limit", "1", 1, ts="now"),  # type: ignore[arg-type]
        CancelOrder("a", "c", ts=-1),
        CancelOrder("a", "c", ts=2**64),
        {"op": "new"},
        None,
        Malformed("boom", "a", "c", None, "bad_qty"),
    ]
    for cmd in odd:
        events = e.submit(cmd)
        assert len(events) == 1 and isinstance(events[0], Rejected), cmd
        encode_event(events[0], e.instruments)  # representable on the wire
    assert e.in_seq == len(bad) + len(odd)


def test_journal_sink_sees_every_input_and_replay_is_identical() -> None:
    records: list[tuple[int, int, Command]] = []

    class Sink:
        def append(self, in_seq: int, ts: int, cmd: Command) -> None:
            records.append((in_seq, ts, cmd))

    ticks = iter(range(1000, 100_000, 7))
    live = Engine(clock=lambda: next(ticks), journal=Sink())
    lines = [
        '{"op":"instrument","symbol":"X","tick":"0.5","lot":10}',
        '{"op":"deposit","account":"a","asset":"USD","amount":"10000"}',
        '{"op":"deposit","account":"b","asset":"X","amount":500}',
        "not json",
        '{"op":"new","account":"b","clientOrderId":"s","symbol":"X","side":"sell","price":"3.5","qty":100}',
        '{"op":"new","account":"a","clientOrderId":"b","symbol":"X","side":"buy","price":"4","qty":60}',
        '{"op":"replace","account":"b","clientOrderId":"s","qty":20}',
        '{"op":"cancel","account":"b","clientOrderId":"s"}',
    ]
    out = [encode_event(ev, live.instruments) for line in lines for ev in live.submit_line(line)]
    assert [r[0] for r in records] == list(range(1, len(lines) + 1))
    replay = Engine(clock=lambda: 0)
    again = [
        encode_event(ev, replay.instruments)
        for in_seq, ts, cmd in records
        for ev in replay.submit_sequenced(in_seq, ts, cmd)
    ]
    assert again == out
    assert replay.state_hash() == live.state_hash()
    assert replay.in_seq == live.in_seq and replay.out_seq == live.out_seq


def test_state_hash_changes_with_state(harness: Harness) -> None:
    before = harness.engine.state_hash()
    harness.new("a", "c1", "buy", "1.00", 1)
    after = harness.engine.state_hash()
    assert before != after and len(after) == 64
    assert harness.engine.state_hash() == after


def test_executions_per_account(harness: Harness) -> None:
    harness.new("b", "s1", "sell", "10.00", 5)
    harness.new("a", "b1", "buy", "10.00", 2)
    harness.new("a", "b2", "buy", "10.00", 2)
    ea = harness.engine.orders.executions("a")
    eb = harness.engine.orders.executions("b")
    assert [t.trade_id for t in ea] == [1, 2] and [t.trade_id for t in eb] == [1, 2]
    assert harness.engine.orders.executions("nobody") == []
    assert harness.engine.orders.get(99) is None and harness.engine.orders.get(0) is None


def test_self_trade_settles(harness: Harness) -> None:
    harness.new("a", "s1", "sell", "10.00", 5)
    events = harness.new("a", "b1", "buy", "10.00", 5)
    assert kinds(events) == ["accepted", "trade", "done", "done"]
    assert harness.balance("a", "USD") == (1_000_000 * USD, 0)
    assert harness.balance("a", "ACME") == (10_000, 0)
    assert len(harness.engine.orders.executions("a")) == 2


def test_default_clock_is_wall_time_us() -> None:
    e = Engine()
    (ev,) = e.submit_line("nope")
    assert ev.ts > 1_600_000_000_000_000
