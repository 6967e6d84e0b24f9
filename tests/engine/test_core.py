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
    Rejected,
)
from tests.engine.harness import USD, Harness, kinds, reasons


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


def test_market_order_with_price_rejected(harness: Harness) -> None:
    assert reasons(harness.new("a", "m1", "buy", "1.00", 1, type="market")) == ["bad_price"]


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


def test_default_clock_is_wall_time_us() -> None:
    e = Engine()
    (ev,) = e.submit_line("nope")
    assert ev.ts > 1_600_000_000_000_000


def test_a_share_balance_stays_within_64_bits(harness: Harness) -> None:
    # found while fuzzing (tests/fuzz, the REST-view check): share deposits up to 2**64 - 1
    # each (orjson reads them) added up to balances GET /v1/account could not write as JSON;
    # now a symbol's total over all accounts stays within 2**63 - 1 (trades only move shares)
    big = 2**63 - 1
    h = harness  # a and b hold 10,000 ACME each
    room = big - 20_000
    assert reasons(h.submit(Deposit("c", "ACME", room + 1))) == ["bad_qty"]
    line = '{"op":"deposit","account":"d","asset":"ACME","amount":18446744073709551615}'
    assert reasons(h.engine.submit_line(line)) == ["bad_qty"]
    assert h.submit(Deposit("c", "ACME", room - 5)) == []
    (ev,) = h.submit(Deposit("d", "ACME", 6))
    assert isinstance(ev, Rejected) and ev.reason == "bad_qty" and ev.symbol == "ACME"
    assert h.submit(Deposit("d", "ACME", 5)) == []
    assert h.engine.wallets.totals()["ACME"] == big
    # trades move shares, so no balance can pass the total
    h.submit(Deposit("c", "USD", "1000000"))
    assert kinds(h.new("a", "s1", "sell", "1.00", 10_000)) == ["accepted"]
    assert kinds(h.new("c", "b1", "buy", "1.00", 10_000))[-1] == "done"
    assert h.balance("c", "ACME") == (room - 5 + 10_000, 0)
    # cash is a decimal string on the wire: no such bound
    assert h.submit(Deposit("c", "USD", 2**64 - 1)) == []


def test_a_command_the_journal_cannot_write_is_malformed_not_a_wedge(tmp_path: Any) -> None:
    # found by tests/fuzz/fuzz_engine.py (commands submitted as Python values): a field no JSON
    # encoder writes (bytes, a set, any object) made Journal.append raise out of submit after
    # in_seq had moved on, so every later command failed with "inSeq N does not follow M"
    from engine.journal import Journal, JournalConfig, restore

    path = tmp_path / "journal"
    journal = Journal(JournalConfig(path=path, fsync="never"))
    engine = Engine(clock=lambda: 5, journal=journal)
    engine.submit(DefineInstrument("X", "1", 1))
    engine.submit(Deposit("a", "USD", "100"))
    out: list[bytes] = []
    for bad in (b"x", {1, 2}, object()):
        (ev,) = engine.submit(NewOrder("a", "c", "X", "buy", "limit", "1", bad))  # type: ignore[arg-type]
        assert isinstance(ev, Rejected) and ev.reason == "malformed"
        assert (ev.account, ev.client_order_id) == ("a", "c") and "journaled" in ev.message
        out.append(encode_event(ev, engine.instruments))
    (ev,) = engine.submit(CancelOrder(b"a", "c"))  # type: ignore[arg-type]
    assert isinstance(ev, Rejected) and ev.account is None and ev.client_order_id == "c"
    out.append(encode_event(ev, engine.instruments))
    events = engine.submit(NewOrder("a", "ok", "X", "buy", "limit", "1", 3))
    assert kinds(events) == ["accepted"]  # the stream goes on
    out += [encode_event(e, engine.instruments) for e in events]
    journal.close()
    replayed: list[bytes] = []
    again = restore(
        lambda journal=None: Engine(clock=lambda: 0, journal=journal),
        path,
        on_events=lambda evs: replayed.extend(encode_event(e, engine.instruments) for e in evs),
    )
    assert replayed == out and again.state_hash() == engine.state_hash()


def test_a_lone_surrogate_never_reaches_an_event(harness: Harness) -> None:
    # found by tests/fuzz/fuzz_engine.py (commands submitted as Python values): a string with a
    # lone surrogate (which no JSON line can carry, but a command built in process can) was
    # accepted as an account, client order id or symbol, or copied into a rejection, and then
    # encode_event raised (orjson writes only valid UTF-8)
    bad = "a\ud800"
    h = harness
    cmds: list[Any] = [
        NewOrder(bad, "c1", "ACME", "buy", "limit", "1.00", 1),
        NewOrder("a", bad, "ACME", "buy", "limit", "1.00", 1),
        DefineInstrument(bad, "0.01", 1),
        DefineInstrument("Q", "0.01", 1, currency=bad),
        Deposit(bad, "USD", "1"),
        Deposit("a", bad, "1"),
        CancelOrder("a", bad),
        ReplaceOrder(bad, "c1", "1.00"),
        Malformed(bad, bad, bad, None, bad),
        NewOrder("a", "c2", "ACME", bad, "limit", "1.00", 1),
    ]
    for cmd in cmds:
        (ev,) = h.submit(cmd)
        assert isinstance(ev, Rejected), cmd
        assert ev.account != bad and ev.client_order_id != bad and ev.symbol != bad
        assert ev.reason in ("malformed", "unknown_order", "unknown_symbol"), ev
        encode_event(ev, h.engine.instruments)
    assert h.engine.symbols() == ["ACME"] and bad not in h.engine.wallets.accounts()
    (ev,) = h.submit(Malformed(bad))
    assert isinstance(ev, Rejected) and ev.message == "a\\ud800"
    # valid non-ASCII text is fine
    assert kinds(h.new("\u00e9t\u00e9", "\U0001f600", "buy", "1.00", 1)) == ["rejected"]
    h.submit(Deposit("\u00e9t\u00e9", "USD", "10"))
    (ev,) = h.new("\u00e9t\u00e9", "\U0001f600", "buy", "1.00", 1)
    assert isinstance(ev, Accepted) and ev.client_order_id == "\U0001f600"
    encode_event(ev, h.engine.instruments)
