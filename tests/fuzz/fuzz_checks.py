"""Engine invariants checked after every command by the fuzz harnesses.

The same invariants as ``tests/engine/test_invariants.py`` (its ``Model``, book walk and
per-order checks are reused), over whatever symbols and accounts the fuzz input created, plus
the matching rules, the events' wire form, the REST views and conservation of every asset
against the deposits.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repo root, for tests.*

from engine import Engine, EngineConfig
from engine.codec import encode_event, execution_to_json, order_to_json
from engine.commands import CancelOrder, Command, ReplaceOrder
from engine.events import Accepted, Cancelled, Done, Event, Rejected, Replaced, Trade
from engine.instruments import BAND_DECIMALS
from tests.engine.test_invariants import Model as _Model
from tests.engine.test_invariants import check_books, check_order


class Model(_Model):
    """What the events say, plus the id counters."""

    def __init__(self) -> None:
        super().__init__()
        self.next_order_id = 1
        self.next_trade_id = 1


Target = tuple[int | None, int, bool] | None  # (price, open qty, resting) of the target order
Before = tuple[Target, dict[str, int | None]]  # and each symbol's last trade price


def before(engine: Engine, cmd: Command) -> Before:
    """What a command's checks need from before it runs: the state of the order a cancel or
    replace targets, and the last trade prices."""
    last = {symbol: engine.last_price(symbol) for symbol in engine.symbols()}
    if not isinstance(cmd, CancelOrder | ReplaceOrder):
        return None, last
    if type(cmd.account) is not str or type(cmd.client_order_id) is not str:
        return None, last
    order = engine.orders.by_client(cmd.account, cmd.client_order_id)
    if order is None:
        return None, last
    return (order.price, order.open_qty, order.level is not None), last


def check_risk(engine: Engine, symbol: str, price: int | None, qty: int, last: int | None) -> None:
    """An accepted order (or a replace's new values) is within its instrument's limits."""
    inst = engine.instruments[symbol]
    assert inst.max_qty is None or qty <= inst.max_qty
    if price is not None:
        assert inst.max_notional is None or inst.notional(price, qty) <= inst.max_notional
        if inst.band is not None and last is not None:
            assert abs(price - last) * 10**BAND_DECIMALS <= inst.band * last, "outside the band"


def check_semantics(engine: Engine, model: Model, state: Before, events: list[Event]) -> None:
    """The spec's matching rules, from one command's events: ids count up, trades at the
    resting price within the aggressor's limit and best price first, FOK all or nothing, IOC
    and market rests never rest and stop only when nothing more can fill, replace priority."""
    pre, last = state
    trades = [e for e in events if isinstance(e, Trade)]
    for t in trades:
        assert t.trade_id == model.next_trade_id
        model.next_trade_id += 1
    accepted = [e for e in events if isinstance(e, Accepted)]
    replaced = [e for e in events if isinstance(e, Replaced)]
    assert len(accepted) + len(replaced) <= 1
    if replaced:
        (ev,) = replaced
        assert pre is not None and pre[2], "replaced an order that was not resting"
        assert ev.priority_kept == (ev.price == pre[0] and ev.qty <= pre[1])
        band_last = last.get(ev.symbol) if ev.price != pre[0] else None
        check_risk(engine, ev.symbol, ev.price, ev.qty, band_last)
    if accepted:
        (acc,) = accepted
        assert acc.order_id == model.next_order_id
        model.next_order_id += 1
        check_risk(engine, acc.symbol, acc.price, acc.qty, last.get(acc.symbol))
    taker = accepted[0] if accepted else replaced[0] if replaced else None
    if taker is None:
        assert not trades
        return
    side = accepted[0].side if accepted else engine.orders.get(taker.order_id).side  # type: ignore[union-attr]
    limit = taker.price
    prices = [t.price for t in trades]
    for t in trades:
        assert t.aggressor == side
        assert (t.buy_order_id if side == "buy" else t.sell_order_id) == taker.order_id
        if limit is not None:
            assert t.price <= limit if side == "buy" else t.price >= limit
    assert prices == sorted(prices, reverse=side == "sell"), "not best price first"
    filled = sum(t.qty for t in trades)
    cancels = [e for e in events if isinstance(e, Cancelled) and e.order_id == taker.order_id]
    dones = [e for e in events if isinstance(e, Done) and e.order_id == taker.order_id]
    assert len(cancels) + len(dones) <= 1
    book = engine.book(taker.symbol)
    assert book is not None
    opposite = book.best_ask if side == "buy" else book.best_bid
    if accepted:
        acc = accepted[0]
        if acc.tif == "FOK":
            assert (filled, len(dones)) == (acc.qty, 1) or (
                not trades and [c.reason for c in cancels] == ["fok"]
            ), "FOK neither filled nor killed whole"
        if cancels:
            (c,) = cancels
            assert c.remaining == acc.qty - filled
            if c.reason == "ioc":  # stopped only when nothing within the limit is left
                assert limit is not None
                assert opposite is None or (opposite > limit if side == "buy" else opposite < limit)
            elif c.reason == "market_unfilled":
                if side == "sell" or opposite is None:
                    assert opposite is None
                else:  # a buy stops when the next lot at the best ask is not affordable
                    inst = engine.instruments[acc.symbol]
                    cash = engine.wallets.balances(acc.account).get(inst.currency, (0, 0))[0]
                    assert cash < inst.notional(opposite, inst.lot), "market buy stopped early"
            else:
                assert c.reason == "fok"
        if dones:
            assert filled == acc.qty
        if acc.tif != "GTC":
            order = engine.orders.get(acc.order_id)
            assert order is None or order.level is None


def check_events(engine: Engine, seq_before: int, events: list[Event]) -> list[bytes]:
    """Gap-free ``seq``, one ``inSeq``, and every event encodes to JSON that parses."""
    assert [e.seq for e in events] == list(range(seq_before + 1, engine.out_seq + 1))
    assert all(e.in_seq == engine.in_seq for e in events)
    out = []
    for e in events:
        raw = encode_event(e, engine.instruments)
        obj = orjson.loads(raw)
        assert type(obj) is dict and obj["seq"] == e.seq
        if isinstance(e, Rejected):
            assert type(obj["reason"]) is str
        out.append(raw)
    return out


def check_views(engine: Engine) -> None:
    """What the REST API renders from the engine's state (orders, executions, balances) is
    JSON that orjson writes: no integer beyond 64 bits."""
    instruments = engine.instruments
    for o in engine.orders.all_orders():
        orjson.dumps(order_to_json(o, instruments[o.symbol]))
    for account in engine.orders.accounts():
        for trade in engine.orders.executions(account):
            orjson.dumps(execution_to_json(trade, account, instruments))
    for account in engine.wallets.accounts():
        for asset, (avail, held) in engine.wallets.balances(account).items():
            if asset in instruments:  # shares are JSON integers (cash: decimal strings)
                orjson.dumps([avail, held])


def check(engine: Engine, model: Model, cmd: Command, events: list[Event]) -> None:
    """Every invariant of the engine's state after ``cmd`` produced ``events``."""
    model.apply(engine, cmd, events)
    resting = check_books(engine, model)

    reserved: dict[tuple[str, str], int] = {}
    opened: dict[str, int] = {}
    for o in engine.orders.all_orders():
        assert engine.orders.get(o.order_id) is o
        assert engine.orders.by_client(o.account, o.client_order_id) is o
        check_order(engine, model, o, resting, reserved)
        if o.order_id in resting:
            opened[o.account] = opened.get(o.account, 0) + 1

    check_views(engine)
    accounts = set(engine.wallets.accounts()) | set(engine.orders.accounts())
    open_ids = set()
    for account in accounts:
        mine = engine.orders.open_orders(account)
        assert [o.order_id for o in mine] == sorted(o.order_id for o in mine)
        open_ids |= {o.order_id for o in mine}
        assert engine.orders.open_count(account) == opened.get(account, 0)
    assert open_ids == resting
    for account in engine.wallets.accounts():
        for asset, (avail, held) in engine.wallets.balances(account).items():
            assert avail >= 0 and held >= 0, (account, asset, avail, held)
            assert held == reserved.get((account, asset), 0), (account, asset)
    totals = {k: v for k, v in engine.wallets.totals().items() if v}
    assert totals == {k: v for k, v in sorted(model.deposits.items()) if v}


def publisher_engine(*, tiny: bool) -> Engine:
    """The engine behind a publisher harness: a deterministic clock (1 ms a command) and, with
    ``tiny``, retention bounds that forget finished orders and executions almost at once."""
    config = EngineConfig(
        finished_orders_max=2, executions_per_account_max=1, compact_every_orders=2
    )
    return Engine(
        config if tiny else None,
        clock=iter(range(1_700_000_000_000_000, 1 << 62, 1_000)).__next__,
    )


def fuzz_main(test_one_input: Callable[[bytes], None], atheris: Any) -> None:
    """A harness's entry point: libFuzzer's loop under atheris, or without atheris (``None``)
    a replay of the input files named on the command line (a crash file, say)."""
    if atheris is None:
        for name in sys.argv[1:]:
            test_one_input(Path(name).read_bytes())
            print(f"{name}: ok")
        return
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
