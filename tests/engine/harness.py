"""Helpers shared by the engine tests: an engine with one instrument and funded accounts."""

from __future__ import annotations

from typing import Any

from engine import Engine, EngineConfig
from engine.commands import (
    CancelOrder,
    DefineInstrument,
    Deposit,
    NewOrder,
    ReplaceOrder,
)
from engine.events import Cancelled, Event, Rejected
from engine.units import CASH_SCALE

USD = CASH_SCALE


class Harness:
    """An engine with ACME (tick 0.01, lot 1) and two funded accounts, a and b."""

    def __init__(self, config: EngineConfig | None = None, **instrument: Any) -> None:
        self.now = 1_000_000
        self.engine = Engine(config, clock=self.clock)
        self.events: list[Event] = []
        fields: dict[str, Any] = {"symbol": "ACME", "tick": "0.01", "lot": 1}
        fields.update(instrument)
        assert self.submit(DefineInstrument(**fields)) == []
        for account in ("a", "b"):
            assert self.submit(Deposit(account, "USD", "1000000")) == []
            assert self.submit(Deposit(account, "ACME", 10_000)) == []

    def clock(self) -> int:
        self.now += 1
        return self.now

    def submit(self, cmd: Any) -> list[Event]:
        out = self.engine.submit(cmd)
        self.events.extend(out)
        return out

    def new(
        self,
        account: str,
        coid: str,
        side: str,
        price: str | None,
        qty: int,
        *,
        type: str = "limit",
        tif: str = "GTC",
        symbol: str = "ACME",
    ) -> list[Event]:
        return self.submit(NewOrder(account, coid, symbol, side, type, price, qty, tif))

    def cancel(self, account: str, coid: str) -> list[Event]:
        return self.submit(CancelOrder(account, coid))

    def replace(
        self, account: str, coid: str, price: str | None = None, qty: int | None = None
    ) -> list[Event]:
        return self.submit(ReplaceOrder(account, coid, price, qty))

    def balance(self, account: str, asset: str) -> tuple[int, int]:
        return self.engine.wallets.balances(account).get(asset, (0, 0))


def kinds(events: list[Event]) -> list[str]:
    return [type(e).__name__.lower() for e in events]


def reasons(events: list[Event]) -> list[str]:
    return [e.reason for e in events if isinstance(e, Rejected | Cancelled)]
