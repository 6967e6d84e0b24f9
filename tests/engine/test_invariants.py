"""Property tests: random command streams keep the engine's invariants after every command.

* the book is never crossed at rest, levels hold exactly their orders' open quantity, and
  within a level orders keep their arrival order (FIFO; a replace that loses priority arrives
  again);
* quantity is conserved per order: ordered = filled + open + cancelled remaining, and filled
  equals the sum of its trades and never exceeds the ordered quantity;
* cash and shares are conserved: totals over all accounts only change by deposits; nothing is
  ever negative; reservations equal what the open orders hold;
* event ``seq`` is gap-free, ``inSeq`` counts every input;
* determinism: the same commands give byte-identical events and the same state hash, and so
  does a replay of what the journal sink recorded.
"""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, rule

from engine import Engine
from engine.book import Level, OrderBook
from engine.codec import command_to_json, encode_event
from engine.commands import (
    CancelOrder,
    Command,
    DefineInstrument,
    Deposit,
    Malformed,
    NewOrder,
    ReplaceOrder,
)
from engine.events import Accepted, Cancelled, Event, Replaced, Trade
from engine.orders import Order
from engine.units import CASH_SCALE, parse_cash

ACCOUNTS = ("a", "b", "c")
SYMBOLS = ("X", "Y")
SETUP: list[Command] = [
    DefineInstrument("X", "0.5", 1),
    DefineInstrument("Y", "0.01", 10, max_qty=200, band="0.2"),
]
for _acct in ACCOUNTS:
    SETUP += [Deposit(_acct, "USD", "400"), Deposit(_acct, "X", 40), Deposit(_acct, "Y", 150)]

coids = st.sampled_from([f"o{i}" for i in range(10)])
accounts = st.sampled_from(ACCOUNTS)
prices = st.sampled_from(["9.5", "10", "10", "10.5", "11", "9.99", "10.01", "10.5", "bad"])


def _qty(symbol: str) -> st.SearchStrategy[int]:
    return st.integers(1, 12).map(lambda n: n * (10 if symbol == "Y" else 1))


@st.composite
def new_orders(draw: st.DrawFn) -> Command:
    symbol = draw(st.sampled_from(["X", "X", "Y"]))
    otype = draw(st.sampled_from(["limit", "limit", "limit", "market"]))
    return NewOrder(
        draw(accounts),
        draw(coids),
        symbol,
        draw(st.sampled_from(["buy", "sell"])),
        otype,
        None if otype == "market" else draw(prices),
        draw(_qty(symbol)),
        draw(st.sampled_from(["GTC", "GTC", "IOC", "FOK"])),
    )


@st.composite
def replaces(draw: st.DrawFn) -> Command:
    price = draw(st.none() | prices)
    qty = draw(st.none() | st.integers(1, 12).map(lambda n: n * 10) | st.integers(1, 12))
    return ReplaceOrder(draw(accounts), draw(coids), price, qty)


commands = st.lists(
    st.one_of(
        new_orders(),
        new_orders(),
        new_orders(),
        new_orders(),
        st.builds(CancelOrder, accounts, coids, ts=st.none()),
        replaces(),
        st.builds(Deposit, accounts, st.just("USD"), st.sampled_from(["1", "25.5"]), ts=st.none()),
    ),
    min_size=20,
    max_size=80,
)


class Model:
    """What the events say, to hold the engine's state against."""

    def __init__(self) -> None:
        self.arrival: dict[int, int] = {}
        self.clock = 0
        self.cancelled: dict[int, int] = {}
        self.traded: dict[int, int] = {}
        self.deposits: dict[str, int] = {}

    def apply(self, engine: Engine, cmd: Command, events: list[Event]) -> None:
        """Take in what ``cmd`` and its ``events`` say: an accepted deposit, each order's
        fills and cancelled remainder, and the arrival order within levels (a replace that
        loses priority arrives again)."""
        if isinstance(cmd, Deposit) and not events:
            asset, units = deposit_units(engine, cmd)
            self.deposits[asset] = self.deposits.get(asset, 0) + units
        for ev in events:
            if isinstance(ev, Trade):
                assert ev.qty > 0 and ev.price > 0
                for oid in (ev.buy_order_id, ev.sell_order_id):
                    self.traded[oid] = self.traded.get(oid, 0) + ev.qty
            elif isinstance(ev, Cancelled):
                assert ev.remaining > 0
                self.cancelled[ev.order_id] = self.cancelled.get(ev.order_id, 0) + ev.remaining
            if isinstance(ev, Accepted) or (isinstance(ev, Replaced) and not ev.priority_kept):
                self.clock += 1
                self.arrival[ev.order_id] = self.clock


def deposit_units(engine: Engine, cmd: Deposit) -> tuple[str, int]:
    """What an accepted deposit credited: shares as given, cash in units."""
    if cmd.asset in engine.instruments:
        assert type(cmd.amount) is int
        return cmd.asset, cmd.amount
    if type(cmd.amount) is int:
        return cmd.asset, cmd.amount * CASH_SCALE
    units = parse_cash(cmd.amount)
    assert units is not None
    return cmd.asset, units


def check_level(level: Level, book: OrderBook, side: str) -> None:
    """The level's doubly linked list, count and quantity agree with its orders."""
    assert level.book is book and level.side == side
    orders = []
    prev = None
    node = level.head
    while node is not None:
        assert node.prev is prev, "prev link broken"
        assert node.level is level
        orders.append(node)
        prev = node
        node = node.next
        assert len(orders) <= level.count, "level list longer than its count (cycle?)"
    assert level.tail is prev, "tail is not the last order"
    assert orders and level.count == len(orders)
    assert level.qty == sum(o.open_qty for o in orders)


def check_books(engine: Engine, model: Model) -> set[int]:
    """Every defined symbol's book: not crossed, levels in price order (each price once) with
    the best first, each level's list consistent (:func:`check_level`) and FIFO by arrival,
    every order a GTC limit of that symbol, side and price. Returns the resting order ids."""
    resting: set[int] = set()
    for symbol in engine.symbols():
        book = engine.book(symbol)
        assert book is not None
        assert not book.is_crossed()
        for side in ("buy", "sell"):
            prices_seen = [lv.price for lv in book.levels(side)]
            assert prices_seen == sorted(prices_seen, reverse=side == "buy")
            assert len(set(prices_seen)) == len(prices_seen)
            assert book.best(side) == (prices_seen[0] if prices_seen else None)
            for level in book.levels(side):
                check_level(level, book, side)
                stamps = [model.arrival[o.order_id] for o in level.orders()]
                assert stamps == sorted(stamps), "FIFO broken"
                for o in level.orders():
                    assert o.price == level.price and o.side == side and o.open_qty > 0
                    assert o.symbol == symbol and o.tif == "GTC" and o.type == "limit"
                    resting.add(o.order_id)
    return resting


def check_order(
    engine: Engine,
    model: Model,
    o: Order,
    resting: set[int],
    reserved: dict[tuple[str, str], int],
) -> None:
    """One retained order against the model: filled = its trades, ordered = filled + open +
    cancelled, resting exactly when the books hold it; a resting order's reservation is added
    to ``reserved`` (account, asset)."""
    assert o.filled == model.traded.get(o.order_id, 0)
    assert o.qty == o.filled + o.open_qty + model.cancelled.get(o.order_id, 0)
    assert 0 <= o.filled <= o.qty
    assert (o.level is not None) == (o.order_id in resting)
    if o.order_id in resting:
        assert o.status in ("new", "partially_filled")
        inst = engine.instruments[o.symbol]
        if o.side == "buy":
            assert o.price is not None
            key = (o.account, inst.currency)
            amount = inst.notional(o.price, o.open_qty)
        else:
            key, amount = (o.account, o.symbol), o.open_qty
        reserved[key] = reserved.get(key, 0) + amount
    else:
        assert o.open_qty == 0 and o.status in ("filled", "cancelled")
        assert (o.status == "filled") == (o.filled == o.qty)


def check(engine: Engine, model: Model, cmd: Command, events: list[Event]) -> None:
    model.apply(engine, cmd, events)
    resting = check_books(engine, model)

    reserved: dict[tuple[str, str], int] = {}
    for o in engine.orders.all_orders():
        check_order(engine, model, o, resting, reserved)

    open_ids = {o.order_id for acct in ACCOUNTS for o in engine.orders.open_orders(acct)}
    assert open_ids == resting
    for account in engine.wallets.accounts():
        for asset, (avail, held) in engine.wallets.balances(account).items():
            assert avail >= 0 and held >= 0
            assert held == reserved.get((account, asset), 0), (account, asset)
    assert engine.wallets.totals() == dict(sorted(model.deposits.items()))


def run(cmds: list[Command], *, journal: Any = None) -> tuple[Engine, list[bytes]]:
    ticks = iter(range(10**6, 10**9))
    engine = Engine(clock=lambda: next(ticks), journal=journal)
    model = Model()
    out: list[bytes] = []
    for cmd in [*SETUP, *cmds]:
        seq_before = engine.out_seq
        events = engine.submit(cmd)
        assert [e.seq for e in events] == list(range(seq_before + 1, engine.out_seq + 1))
        assert all(e.in_seq == engine.in_seq for e in events)
        check(engine, model, cmd, events)
        out += [encode_event(e, engine.instruments) for e in events]
    assert engine.in_seq == len(SETUP) + len(cmds)
    return engine, out


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(commands)
def test_invariants_hold_after_every_command(cmds: list[Command]) -> None:
    run(cmds)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(commands)
def test_determinism_and_replay(cmds: list[Command]) -> None:
    records: list[tuple[int, int, Command]] = []

    class Sink:
        def append(self, in_seq: int, ts: int, cmd: Command) -> None:
            records.append((in_seq, ts, cmd))

    first, out1 = run(cmds, journal=Sink())
    second, out2 = run(cmds)
    assert out1 == out2 and first.state_hash() == second.state_hash()

    # the JSON-lines form of the commands replays to the same events too
    third = Engine(clock=iter(range(10**6, 10**9)).__next__)
    out3: list[bytes] = []
    for cmd in [*SETUP, *cmds]:
        line = orjson.dumps(command_to_json(cmd))
        out3 += [encode_event(e, third.instruments) for e in third.submit_line(line)]
    assert out3 == out1 and third.state_hash() == first.state_hash()

    replay = Engine(clock=lambda: 0)
    out4 = [
        encode_event(e, replay.instruments)
        for in_seq, ts, cmd in records
        for e in replay.submit_sequenced(in_seq, ts, cmd)
    ]
    assert out4 == out1 and replay.state_hash() == first.state_hash()


junk = st.one_of(
    st.none(),
    st.integers(-(2**70), 2**70),
    st.text(max_size=6),
    st.sampled_from(["X", "Y", "USD", "a", "buy", "sell", "limit", "market", "GTC", "FOK", "1.5"]),
    st.lists(st.integers(), max_size=2),
    st.floats(allow_nan=True),
    st.booleans(),
)
junk_commands = st.lists(
    st.one_of(
        st.builds(NewOrder, junk, junk, junk, junk, junk, junk, junk, junk, junk),
        st.builds(CancelOrder, junk, junk, junk),
        st.builds(ReplaceOrder, junk, junk, junk, junk, junk),
        st.builds(Deposit, junk, junk, junk, junk),
        st.builds(DefineInstrument, junk, junk, junk, junk, junk, junk, junk, junk),
        st.builds(Malformed, junk, junk, junk, junk, junk),
        junk,
        st.binary(max_size=40),
    ),
    max_size=30,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(junk_commands)
def test_garbage_never_raises_and_always_encodes(cmds: list[Any]) -> None:
    engine = Engine(clock=lambda: 5)
    for cmd in SETUP:
        engine.submit(cmd)
    for cmd in cmds:
        before = engine.in_seq
        events = engine.submit_line(cmd) if type(cmd) is bytes else engine.submit(cmd)
        assert engine.in_seq == before + 1
        for ev in events:
            encode_event(ev, engine.instruments)
    engine.state_hash()


class EngineMachine(RuleBasedStateMachine):
    """Stateful exploration: cancels and replaces target orders that exist (and often rest),
    so amend paths are exercised far more than by random ids."""

    placed = Bundle("placed")

    def __init__(self) -> None:
        super().__init__()
        self.engine = Engine(clock=iter(range(10**6, 10**9)).__next__)
        self.model = Model()
        self.serial = 0
        for cmd in SETUP:
            self.step(cmd)

    def step(self, cmd: Command) -> list[Event]:
        events = self.engine.submit(cmd)
        check(self.engine, self.model, cmd, events)
        return events

    @rule(target=placed, cmd=new_orders(), resting=st.booleans())
    def new(self, cmd: Command, resting: bool) -> tuple[str, str]:
        assert isinstance(cmd, NewOrder)
        self.serial += 1
        cmd = cmd._replace(client_order_id=f"n{self.serial}")
        if resting and cmd.price is not None:
            cmd = cmd._replace(type="limit", tif="GTC")
        self.step(cmd)
        return cmd.account, cmd.client_order_id

    @rule(ref=placed)
    def cancel(self, ref: tuple[str, str]) -> None:
        self.step(CancelOrder(*ref))

    @rule(
        ref=placed,
        price=st.none() | prices,
        qty=st.none() | st.integers(1, 15).map(lambda n: n * 10),
    )
    def replace(self, ref: tuple[str, str], price: str | None, qty: int | None) -> None:
        self.step(ReplaceOrder(ref[0], ref[1], price, qty))

    @rule(account=accounts, amount=st.sampled_from(["5", "50.25"]))
    def deposit(self, account: str, amount: str) -> None:
        self.step(Deposit(account, "USD", amount))


EngineMachine.TestCase.settings = settings(
    max_examples=40,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_engine_state_machine = EngineMachine.TestCase
