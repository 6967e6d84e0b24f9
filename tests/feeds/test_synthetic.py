"""The synthetic market: deterministic for a seed, sensible orders, paced driver."""

from __future__ import annotations

import pytest

from engine.commands import (
    BUY,
    IOC,
    MARKET,
    CancelOrder,
    Command,
    DefineInstrument,
    Deposit,
    NewOrder,
    ReplaceOrder,
)
from engine.events import Cancelled, Done
from engine.instruments import Instrument
from feeds.synthetic import SyntheticConfig, SyntheticFeed, SyntheticMarket
from tests.waiting import until


def _config(**kw: object) -> SyntheticConfig:
    kw.setdefault("symbols", ["AAPL", "MSFT"])
    return SyntheticConfig(seed=7, **kw)  # type: ignore[arg-type]


def test_same_seed_same_stream() -> None:
    a = SyntheticMarket(_config())
    b = SyntheticMarket(_config())
    assert a.setup() == b.setup()
    assert a.commands(2000) == b.commands(2000)


def test_other_seed_other_stream() -> None:
    a = SyntheticMarket(_config()).commands(200)
    b = SyntheticMarket(SyntheticConfig(symbols=["AAPL", "MSFT"], seed=8)).commands(200)
    assert a != b


def test_setup_defines_instruments_before_deposits() -> None:
    market = SyntheticMarket(_config(makers=2, takers=1))
    setup = market.setup()
    kinds = [type(c) for c in setup]
    assert kinds[:2] == [DefineInstrument, DefineInstrument]
    assert all(k is Deposit for k in kinds[2:])
    deposits = [c for c in setup if isinstance(c, Deposit)]
    assert {d.account for d in deposits} == {"mm1", "mm2", "tk1"}
    # every account gets cash and shares of every symbol
    assert {(d.account, d.asset) for d in deposits} == {
        (a, asset) for a in ("mm1", "mm2", "tk1") for asset in ("USD", "AAPL", "MSFT")
    }


def test_orders_are_on_the_grid_and_mixed() -> None:
    market = SyntheticMarket(_config())
    inst = Instrument.define(symbol="AAPL", tick="0.01", lot=1)
    cmds = market.commands(3000)
    kinds = {type(c) for c in cmds}
    assert kinds == {NewOrder, CancelOrder, ReplaceOrder}
    for c in cmds:
        if isinstance(c, NewOrder | ReplaceOrder) and c.price is not None:
            assert inst.ticks(c.price) is not None, c
        if isinstance(c, NewOrder):
            assert c.symbol in ("AAPL", "MSFT")
            assert c.qty > 0
            if c.type == MARKET:
                assert c.price is None and c.tif == IOC
    takers = [c for c in cmds if isinstance(c, NewOrder) and c.account.startswith("tk")]
    assert takers and all(c.tif == IOC for c in takers)
    coids = [c.client_order_id for c in cmds if isinstance(c, NewOrder)]
    assert len(coids) == len(set(coids))


def test_makers_quote_around_fair_value() -> None:
    market = SyntheticMarket(_config(makers=1, takers=0, volatility_ticks=0.0))
    inst = Instrument.define(symbol="AAPL", tick="0.01", lot=1)
    fair: dict[str, int] = {}
    for s in market.symbols:
        ticks = inst.ticks(market.fair_price(s))
        assert ticks is not None
        fair[s] = ticks
    for c in market.commands(200):
        if isinstance(c, NewOrder):
            ticks = inst.ticks(c.price)
            assert ticks is not None
            if c.side == BUY:
                assert ticks < fair[c.symbol]
            else:
                assert ticks > fair[c.symbol]


def test_maker_never_exceeds_its_levels_and_observe_frees_quotes() -> None:
    cfg = _config(makers=1, takers=0, maker_levels=2, symbols=["AAPL"])
    market = SyntheticMarket(cfg)
    cmds = market.commands(500)
    live: dict[str, str] = {}
    peak = {"buy": 0, "sell": 0}
    for c in cmds:
        if isinstance(c, NewOrder):
            live[c.client_order_id] = c.side
        elif isinstance(c, CancelOrder):
            del live[c.client_order_id]  # only live quotes are cancelled
        elif isinstance(c, ReplaceOrder):
            assert c.client_order_id in live
        for side in peak:
            peak[side] = max(peak[side], sum(1 for s in live.values() if s == side))
    assert peak == {"buy": 2, "sell": 2}
    assert any(isinstance(c, CancelOrder) for c in cmds)
    # a quote reported done is forgotten, so the maker places a new one
    market2 = SyntheticMarket(cfg)
    first = [c for c in market2.commands(100) if isinstance(c, NewOrder)]
    market2.observe(
        [
            Done(1, 1, 0, 1, "mm1", first[0].client_order_id, "AAPL"),
            Cancelled(2, 1, 0, 2, "mm1", first[1].client_order_id, "AAPL", 5, "user"),
        ]
    )
    later = market2.commands(200)
    assert sum(isinstance(c, NewOrder) for c in later) >= 2
    # a cancel or replace never names a forgotten quote
    gone = {first[0].client_order_id, first[1].client_order_id}
    for c in later:
        if isinstance(c, CancelOrder | ReplaceOrder):
            assert c.client_order_id not in gone


def test_bad_config_is_refused() -> None:
    with pytest.raises(ValueError):
        SyntheticMarket(SyntheticConfig(symbols=[]))
    with pytest.raises(ValueError):
        SyntheticMarket(SyntheticConfig(symbols=["X"], start_prices={"X": "abc"}))


def test_start_price_is_used() -> None:
    market = SyntheticMarket(SyntheticConfig(symbols=["X"], start_prices={"X": "123.45"}))
    assert market.fair_price("X") == "123.45"


async def test_driver_paces_by_its_clock() -> None:
    now = [0.0]
    got: list[Command] = []

    def submit(cmd: Command) -> list[object]:
        got.append(cmd)
        return []

    cfg = _config(orders_per_s=500, tick_interval_ms=1)
    feed = SyntheticFeed(cfg, submit, clock=lambda: now[0])
    await feed.start()
    setup_n = len(SyntheticMarket(cfg).setup())
    assert len(got) == setup_n
    await until(lambda: feed.ticks >= 3, what="three pacing ticks")
    assert len(got) == setup_n  # the clock has not moved: nothing is due
    now[0] = 0.5
    await until(lambda: len(got) >= setup_n + 250, what="half a second's orders")
    ticks = feed.ticks
    await until(lambda: feed.ticks >= ticks + 3, what="three more ticks")
    assert len(got) == setup_n + 250  # and not one more: the clock has not moved again
    await feed.close()
    await feed.close()  # idempotent
    expected = SyntheticMarket(cfg)
    assert got == expected.setup() + expected.commands(250)


async def test_driver_counts_submit_errors() -> None:
    def submit(cmd: Command) -> None:
        raise RuntimeError("boom")

    feed = SyntheticFeed(_config(orders_per_s=0), submit)
    await feed.start()
    await feed.close()
    assert feed.errors == len(feed.market.setup()) and feed.submitted == 0


def test_against_the_engine_no_rejections_and_trades() -> None:
    from engine import Engine, EngineConfig
    from engine.events import Rejected, Trade

    clock = iter(range(1_000_000, 10**12, 1000))
    engine = Engine(EngineConfig(), clock=lambda: next(clock))
    market = SyntheticMarket(_config())
    for cmd in market.setup():
        assert engine.submit(cmd) == []
    rejected: list[Rejected] = []
    trades = 0
    for _ in range(5000):
        events = engine.submit(market.next_command())
        market.observe(events)
        rejected.extend(e for e in events if isinstance(e, Rejected))
        trades += sum(isinstance(e, Trade) for e in events)
    assert rejected == []  # makers only touch quotes that are still open
    assert trades > 100
    for symbol in market.symbols:
        open_makers = [
            o
            for a in ("mm1", "mm2", "mm3", "mm4")
            for o in engine.orders.open_orders(a)
            if o.symbol == symbol
        ]
        assert open_makers  # a standing book on every symbol


async def test_driver_drops_a_backlog_and_batches() -> None:
    now = [0.0]
    ticks = [0]  # the driver reads the clock once per tick
    got: list[Command] = []
    per_tick: dict[int, int] = {}

    def clock() -> float:
        ticks[0] += 1
        return now[0]

    def submit(cmd: Command) -> list[object]:
        got.append(cmd)
        per_tick[ticks[0]] = per_tick.get(ticks[0], 0) + 1
        return []

    cfg = _config(orders_per_s=500, tick_interval_ms=1, batch_max_orders=100, backlog_max_ms=1000)
    feed = SyntheticFeed(cfg, submit, clock=clock)
    await feed.start()
    setup_n = len(got)
    await until(lambda: feed.ticks >= 1, what="the task to read the clock")
    per_tick.clear()
    now[0] = 10.0  # a paused loop: 5000 orders owed, only one second's worth (500) is kept
    await until(lambda: len(got) >= setup_n + 500, what="the kept second of orders")
    done = feed.ticks
    await until(lambda: feed.ticks >= done + 3, what="three more ticks")
    await feed.close()
    assert len(got) == setup_n + 500
    assert sorted(per_tick.values()) == [100] * 5
