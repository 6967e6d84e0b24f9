"""Retention: finished orders and executions are forgotten past their bounds, resting orders
never; compaction is deterministic (replay, snapshot + replay) and changes nothing else."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine import Engine, EngineConfig
from engine.codec import encode_event
from engine.commands import CancelOrder, Command, NewOrder
from engine.core import COMPACT_EVERY_ORDERS
from engine.events import Accepted, Event, Rejected, Trade
from engine.journal import Journal, JournalConfig
from engine.snapshot import load_snapshot, restore_with_snapshot, write_snapshot
from loadtest.cmdgen import CmdGenConfig, generate
from tests.engine.harness import Harness, kinds, reasons
from tests.engine.test_invariants import SETUP, Model, check
from tests.engine.test_invariants import commands as invariant_commands

SMALL = EngineConfig(finished_orders_max=50, executions_per_account_max=20, compact_every_orders=64)
UNBOUNDED = EngineConfig(finished_orders_max=None, executions_per_account_max=None)


class Recorder:
    """A journal sink that keeps the records in memory."""

    def __init__(self) -> None:
        self.records: list[tuple[int, int, Command]] = []

    def append(self, in_seq: int, ts: int, cmd: Command) -> None:
        self.records.append((in_seq, ts, cmd))


def _encoded(engine: Engine, events: Iterable[Event]) -> list[bytes]:
    return [encode_event(e, engine.instruments) for e in events]


def _run(engine: Engine, commands: Iterable[Command]) -> list[bytes]:
    return [b for c in commands for b in _encoded(engine, engine.submit(c))]


def _finished(engine: Engine) -> list[int]:
    return [o.order_id for o in engine.orders.all_orders() if o.level is None]


def test_defaults_and_validation() -> None:
    config = EngineConfig()
    assert (config.finished_orders_max, config.executions_per_account_max) == (1_000_000, 100_000)
    assert config.compact_every_orders == COMPACT_EVERY_ORDERS == 4_096
    for bad in (0, -1, True, 1.5, "10"):
        with pytest.raises(ValueError, match="finished_orders_max"):
            EngineConfig(finished_orders_max=bad)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="executions_per_account_max"):
            EngineConfig(executions_per_account_max=bad)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="compact_every_orders"):
            EngineConfig(compact_every_orders=bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        EngineConfig(compact_every_orders=None)  # type: ignore[arg-type]


def test_bounds_over_a_generated_stream() -> None:
    """A bounded engine and an unbounded twin run the same stream: the bounds hold, resting
    orders, books and wallets are the same, and the only difference in the events is the
    message and symbol of a cancel/replace naming a forgotten order (``unknown_order`` either
    way)."""
    commands = list(generate(CmdGenConfig(symbols=3, accounts=4), 4_000))
    bounded, twin = Engine(SMALL, clock=lambda: 0), Engine(UNBOUNDED, clock=lambda: 0)
    orders = bounded.orders
    compactions = 0
    for cmd in commands:
        before = orders.base_id
        got, want = bounded.submit(cmd), twin.submit(cmd)
        assert len(got) == len(want)
        for g, w in zip(got, want, strict=True):
            if type(g) is Rejected:
                # a forgotten order is unknown ("no order"), a finished one "filled, not open"
                assert type(w) is Rejected and g.reason == w.reason == "unknown_order"
                assert g._replace(message="", symbol=None) == w._replace(message="", symbol=None)
            else:
                assert g == w
        newest = bounded._next_order_id - 1
        if orders.base_id != before:  # compacted before the newest order was registered
            compactions += 1
            assert newest % 64 == 0
            cutoff = newest - 1 - 50
            assert orders.base_id == cutoff + 1
            # older finished orders are gone, but for old resting ones this order just filled
            hit = {i for t in got if type(t) is Trade for i in (t.buy_order_id, t.sell_order_id)}
            assert all(oid > cutoff or oid in hit for oid in _finished(bounded))
            # at most 20 executions an account, plus what this order traded since
            # (a self-trade counts twice)
            fresh = [t for t in got if type(t) is Trade]
            for account, trades in orders._executions.items():
                added = sum((t.buy_account == account) + (t.sell_account == account) for t in fresh)
                assert len(trades) <= 20 + added
        if cmd.ts is not None and cmd.ts % 97 == 0:  # a sample of the commands
            finished = _finished(bounded)
            in_list = [oid for oid in finished if oid >= orders.base_id]
            assert len(in_list) <= 50 + 64
            assert len(finished) - len(in_list) <= len(orders._old_open)
    assert compactions >= 30 and bounded._next_order_id > 2_000
    assert len(orders) < len(twin.orders) // 4

    # resting orders are all there, by id and by client order id, and nothing else differs
    for account in twin.orders.accounts():
        resting = twin.orders.open_orders(account)
        assert [o.order_id for o in bounded.orders.open_orders(account)] == [
            o.order_id for o in resting
        ]
        for o in resting:
            assert orders.get(o.order_id) is orders.by_client(account, o.client_order_id)
            assert orders.get(o.order_id) is not None
        assert bounded.wallets.balances(account) == twin.wallets.balances(account)
        mine, full = orders.executions(account), twin.orders.executions(account)
        assert mine and mine == full[-len(mine) :] and len(mine) < len(full)
    # older resting orders (some may have finished since the last compaction)
    old = list(orders._old_open.values())
    assert all(o.order_id < orders.base_id for o in old)
    assert [o.order_id for o in old] == sorted(o.order_id for o in old)
    assert any(o.level is not None for o in old)
    for symbol in bounded.symbols():
        for side in ("buy", "sell"):
            book, other = bounded.book(symbol), twin.book(symbol)
            assert book is not None and other is not None
            assert book.depth(side, 1_000) == other.depth(side, 1_000)

    # forgotten orders: not found, cannot be cancelled, their client order id is free again
    gone = [
        o
        for o in twin.orders.all_orders()[:200]
        if o.level is None and o.order_id not in orders._old_open
    ]
    assert len(gone) > 50
    for o in gone:
        assert orders.get(o.order_id) is None
        assert orders.by_client(o.account, o.client_order_id) is None
    victim = gone[-1]
    assert reasons(bounded.submit(CancelOrder(victim.account, victim.client_order_id))) == [
        "unknown_order"
    ]
    again = NewOrder(victim.account, victim.client_order_id, victim.symbol, "buy", "limit", "1", 1)
    (accepted,) = bounded.submit(again)
    assert type(accepted) is Accepted
    assert orders.by_client(victim.account, victim.client_order_id) is orders.get(accepted.order_id)
    assert reasons(twin.submit(again)) == ["duplicate_order"]


def test_old_resting_orders_are_kept_until_they_finish() -> None:
    h = Harness(EngineConfig(finished_orders_max=3, compact_every_orders=4))
    (keep,) = h.new("a", "keep", "buy", "1.00", 5)  # rests far below the market
    assert type(keep) is Accepted
    for i in range(10):  # IOC orders that find nothing: finished at once
        assert kinds(h.new("b", f"i{i}", "sell", "50.00", 1, tif="IOC")) == [
            "accepted",
            "cancelled",
        ]
    orders = h.engine.orders
    # compactions before ids 4 and 8: forgotten ids <= 8 - 1 - 3 = 4 but the resting one
    assert orders.base_id == 5 and list(orders._old_open) == [keep.order_id]
    assert [o.order_id for o in orders.all_orders()] == [1, *range(5, 12)]
    assert len(orders) == 8
    assert orders.get(keep.order_id) is orders.by_client("a", "keep") is not None
    assert [o.client_order_id for o in orders.open_orders("a")] == ["keep"]
    assert orders.get(2) is None and orders.by_client("b", "i0") is None
    assert reasons(h.cancel("b", "i0")) == ["unknown_order"]
    assert kinds(h.new("b", "i0", "sell", "50.00", 1, tif="IOC")) == ["accepted", "cancelled"]

    # the old resting order trades away; the next compaction forgets it
    assert "trade" in kinds(h.new("b", "hit", "sell", "1.00", 5))
    assert orders.get(keep.order_id) is not None  # finished, not compacted yet
    assert orders.get(keep.order_id).status == "filled"  # type: ignore[union-attr]
    for i in range(4):
        h.new("b", f"j{i}", "sell", "50.00", 1, tif="IOC")
    assert orders.base_id > 5 and not orders._old_open
    assert orders.get(keep.order_id) is None and orders.by_client("a", "keep") is None
    assert orders.open_orders("a") == []


def test_executions_are_trimmed_in_place_newest_kept() -> None:
    h = Harness(
        EngineConfig(finished_orders_max=None, executions_per_account_max=2, compact_every_orders=8)
    )
    engine = h.engine
    assert engine._executions is engine.orders._executions
    h.new("a", "s0", "sell", "10.00", 1)
    h.new("b", "b0", "buy", "10.00", 1)
    lists = dict(engine.orders._executions)
    assert sorted(lists) == ["a", "b"]
    for i in range(1, 7):  # 14 orders, 7 trades; compaction before order 8
        h.new("a", f"s{i}", "sell", "10.00", 1)
        h.new("b", f"b{i}", "buy", "10.00", 1)
    assert len([e for e in h.events if type(e) is Trade]) == 7
    assert all(engine.orders._executions[a] is lst for a, lst in lists.items())  # in place
    # at the compaction a and b had trades 1-3 (the newest 2 kept); 4-7 came since
    assert [t.trade_id for t in engine.orders.executions("a")] == [2, 3, 4, 5, 6, 7]
    h.new("a", "s7", "sell", "10.00", 1)
    h.new("b", "b7", "buy", "10.00", 1)  # order 16: compaction before it, then trade 8
    assert [t.trade_id for t in engine.orders.executions("b")] == [6, 7, 8]
    assert [t.trade_id for t in engine.orders.executions("a")] == [6, 7, 8]
    assert len(engine.orders) == 16 and engine.orders.base_id == 0  # orders all kept


def test_no_retention_compacts_nothing() -> None:
    h = Harness(UNBOUNDED)
    assert h.engine._compact_at == 0
    for i in range(40):
        h.new("a", f"x{i}", "sell", "50.00", 1, tif="IOC")
    assert h.engine.orders.base_id == 0 and len(h.engine.orders) == 40
    assert h.engine.orders.get(1) is not None


# -- determinism --------------------------------------------------------------------------


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 10_000),
    finished=st.integers(1, 80),
    executions=st.integers(1, 30),
    every=st.sampled_from([1, 2, 16, 64]),
)
def test_replay_compacts_identically(seed: int, finished: int, executions: int, every: int) -> None:
    config = EngineConfig(
        finished_orders_max=finished,
        executions_per_account_max=executions,
        compact_every_orders=every,
    )
    commands = list(generate(CmdGenConfig(seed=seed, symbols=2, accounts=3, ts_step_us=0), 1_200))
    clock = iter(range(10**6, 10**9)).__next__
    sink = Recorder()
    live = Engine(config, clock=clock, journal=sink)
    out = _run(live, commands)
    assert live.orders.base_id > 0

    replayed = Engine(config, clock=lambda: 0)
    again = [
        b
        for in_seq, ts, cmd in sink.records
        for b in _encoded(replayed, replayed.submit_sequenced(in_seq, ts, cmd))
    ]
    assert again == out and replayed.state_hash() == live.state_hash()

    # the same records with other bounds give another state (the config is part of it)
    other = Engine(UNBOUNDED, clock=lambda: 0)
    for in_seq, ts, cmd in sink.records:
        other.submit_sequenced(in_seq, ts, cmd)
    assert other.state_hash() != live.state_hash()


def test_snapshot_after_compactions_continues_identically(tmp_path: Path) -> None:
    config = EngineConfig(
        finished_orders_max=40, executions_per_account_max=10, compact_every_orders=32
    )
    commands = list(generate(CmdGenConfig(seed=7, symbols=2, accounts=3), 4_000))
    straight = Engine(config, clock=lambda: 0)
    expected = _run(straight, commands)

    def factory(journal: Journal | None = None) -> Engine:
        return Engine(config, clock=lambda: 0, journal=journal)

    jpath, spath = tmp_path / "journal.log", tmp_path / "snap"
    with Journal(JournalConfig(path=jpath, fsync="never")) as journal:
        live = factory(journal)
        head = _run(live, commands[:2_500])
        assert live.orders.base_id > 1_000 and live.orders._old_open
        write_snapshot(live, spath)
        loaded = load_snapshot(factory, spath)
        assert loaded.orders.base_id == live.orders.base_id
        assert loaded._compact_at == live._compact_at
        assert len(loaded.orders) == len(live.orders)
        tail = _run(loaded, commands[2_500:])
        assert head + tail == expected and loaded.state_hash() == straight.state_hash()
        _run(live, commands[2_500:3_000])
    with Journal(JournalConfig(path=jpath, fsync="never")) as journal:
        restored, used = restore_with_snapshot(factory, journal, spath)
        assert used and restored.in_seq == 3_000
        tail = _run(restored, commands[3_000:])
    assert tail == expected[-len(tail) :] and restored.state_hash() == straight.state_hash()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(invariant_commands)
def test_invariants_hold_with_tiny_bounds(cmds: list[Command]) -> None:
    """The property tests' checks (books, per-order quantities, reservations against open
    orders, conservation) after every command, while orders are forgotten almost at once and
    their client order ids (o0..o9) come back."""
    config = EngineConfig(
        finished_orders_max=1, executions_per_account_max=1, compact_every_orders=2
    )
    ticks = iter(range(10**6, 10**9))
    engine = Engine(config, clock=lambda: next(ticks))
    model = Model()
    for cmd in [*SETUP, *cmds]:
        check(engine, model, cmd, engine.submit(cmd))
        assert len(engine.orders) <= 3 + len(engine.orders._old_open)
