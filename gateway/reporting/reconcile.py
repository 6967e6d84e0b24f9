"""Reconciliation: the engine's wallets against deposits plus fills in the database.

For every account and asset, the engine's total (available + reserved) must equal what the
database says it should be, computed two independent ways:

* ``fills``: the deposits plus, for every execution row, ``+qty`` shares and ``-price x qty``
  cash on the buy side (the reverse on the sell side), the cash recomputed from the row's
  price in ticks and the instrument's grid (so an execution altered by hand shows);
* ``ledger``: the sum of the ``balance_changes`` rows.

Any difference is listed as a :class:`Difference`; an empty list means the books agree. The
database must have been written up to the engine's state: compare at the stream's progress
mark (``quotegate reconcile`` replays the journal up to it).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

from gateway.reporting.database import Database
from gateway.reporting.schema import join

Balances = dict[str, dict[str, int]]
"""``account -> asset -> total`` (cash in 10**-8 units, shares in shares)."""


class Difference(NamedTuple):
    account: str
    asset: str
    source: str  # "fills" or "ledger"
    engine: int
    database: int


async def expected_from_fills(db: Database, stream: int) -> Balances:
    """Deposits plus fills, per account and asset."""
    out: Balances = {}

    def add(account: str, asset: str, amount: int) -> None:
        assets = out.setdefault(account, {})
        assets[asset] = assets.get(asset, 0) + amount

    for account, asset, hi, lo in await db.fetch(
        "SELECT account, asset, SUM(amount_hi), SUM(amount_lo) FROM balance_changes"
        " WHERE stream = $1 AND kind = 'deposit' GROUP BY account, asset",
        stream,
    ):
        add(account, asset, join(hi, lo))
    for account, symbol, side, qty, ticks_x_qty, cash_per_tick, currency in await db.fetch(
        "SELECT e.account, e.symbol, e.side, SUM(e.qty), SUM(e.price_ticks * e.qty),"
        " i.cash_per_tick, i.currency FROM executions e JOIN instruments i"
        " ON i.stream = e.stream AND i.symbol = e.symbol WHERE e.stream = $1"
        " GROUP BY e.account, e.symbol, e.side, i.cash_per_tick, i.currency",
        stream,
    ):
        sign = 1 if side == "buy" else -1
        add(account, symbol, sign * int(qty))
        add(account, currency, -sign * int(ticks_x_qty) * int(cash_per_tick))
    return out


async def expected_from_ledger(db: Database, stream: int) -> Balances:
    """The sum of the balance changes, per account and asset."""
    out: Balances = {}
    for account, asset, hi, lo in await db.fetch(
        "SELECT account, asset, SUM(amount_hi), SUM(amount_lo) FROM balance_changes"
        " WHERE stream = $1 GROUP BY account, asset",
        stream,
    ):
        out.setdefault(account, {})[asset] = join(hi, lo)
    return out


def compare(engine: Mapping[str, Mapping[str, int]], db: Balances, source: str) -> list[Difference]:
    """Every ``(account, asset)`` whose totals differ (a missing one counts as 0)."""
    out: list[Difference] = []
    for account in sorted(set(engine) | set(db)):
        mine, theirs = engine.get(account, {}), db.get(account, {})
        for asset in sorted(set(mine) | set(theirs)):
            a, b = int(mine.get(asset, 0)), int(theirs.get(asset, 0))
            if a != b:
                out.append(Difference(account, asset, source, a, b))
    return out


async def reconcile(
    db: Database, stream: int, engine: Mapping[str, Mapping[str, int]]
) -> list[Difference]:
    """The differences between the engine's totals and both database computations."""
    return compare(engine, await expected_from_fills(db, stream), "fills") + compare(
        engine, await expected_from_ledger(db, stream), "ledger"
    )


def engine_totals(wallet_balances: Mapping[str, Mapping[str, tuple[int, int]]]) -> Balances:
    """``account -> {asset: (available, reserved)}`` as totals, zero balances left out."""
    return {
        account: {a: av + rs for a, (av, rs) in assets.items() if av + rs}
        for account, assets in wallet_balances.items()
    }
