"""Shared by the reporting tests: a generated engine history and database dumps."""

from __future__ import annotations

from typing import Any

from engine import Engine, EngineConfig
from engine.codec import execution_to_json, order_to_json
from gateway.reporting.database import Database
from gateway.reporting.records import Offer
from gateway.reporting.tap import EngineTap
from loadtest.cmdgen import CmdGenConfig, generate

TABLES = {
    "instruments": "stream, symbol",
    "orders": "stream, order_id",
    "order_events": "stream, seq, order_id",
    "executions": "stream, trade_id, side",
    "balance_changes": "stream, kind, ref, account, asset",
    "candles": "symbol, res, t",
}


def history(
    count: int, *, seed: int = 7, symbols: int = 3, accounts: int = 6, ts_step_us: int = 10
) -> tuple[Engine, list[Offer]]:
    """An engine that ran ``count`` generated commands (nothing forgotten) and its offers."""
    engine = Engine(EngineConfig(finished_orders_max=None, executions_per_account_max=None))
    offers: list[Offer] = []
    tap = EngineTap(engine, offers.append)
    config = CmdGenConfig(
        seed=seed,
        symbols=symbols,
        accounts=accounts,
        ts_step_us=ts_step_us,
        cash_per_account="100000000000",  # 10**19 cash units: past 64 bits
        shares_per_account=1_000_000,
    )
    for cmd in generate(config, count):
        tap.submit(cmd)
    return engine, offers


async def dump(db: Database) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every reporting table, in key order (plus the streams' progress marks)."""
    out = {
        table: [tuple(r) for r in await db.fetch(f"SELECT * FROM {table} ORDER BY {key}")]
        for table, key in TABLES.items()
    }
    out["streams"] = await db.fetch("SELECT id, name, last_in_seq, last_seq FROM streams")
    return out


def engine_orders(engine: Engine) -> list[dict[str, Any]]:
    """Every order the engine holds, as ``GET /v1/order`` shows it, by order id."""
    return [
        order_to_json(o, engine.instruments[o.symbol])
        for o in sorted(engine.orders.all_orders(), key=lambda o: o.order_id)
    ]


def engine_executions(engine: Engine, account: str) -> list[dict[str, Any]]:
    """The account's executions (both sides of a self-trade), by trade id then side."""
    out = []
    for trade in reversed(list(engine.orders.newest_executions(account))):
        for side, acct in (("buy", trade.buy_account), ("sell", trade.sell_account)):
            if acct == account:
                rec = execution_to_json(trade, account, engine.instruments, side=side)
                if rec not in out:
                    out.append(rec)
    return sorted(out, key=lambda r: (r["tradeId"], r["side"]))


def wallet_totals(engine: Engine) -> dict[str, dict[str, int]]:
    return {
        account: {a: av + rs for a, (av, rs) in engine.wallets.balances(account).items() if av + rs}
        for account in engine.wallets.accounts()
    }
