"""Seeded command flows through the real engine into a publisher (shared by the tests)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from engine.codec import order_to_json
from engine.core import Engine
from engine.events import Event
from gateway.marketdata.publisher import Publisher, PublisherConfig
from gateway.wire.envelope import Envelope
from loadtest.cmdgen import CmdGenConfig, generate


def flow_config(seed: int, *, symbols: int = 3, accounts: int = 6, step_us: int = 20_000) -> Any:
    """A small, busy stream: few symbols and accounts, ``step_us`` between commands (so that
    1s and 1m candles close inside the run)."""
    return CmdGenConfig(seed=seed, symbols=symbols, accounts=accounts, ts_step_us=step_us)


@dataclass
class Flow:
    engine: Engine
    pub: Publisher
    envelopes: list[Envelope] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    closed: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)


def open_orders_of(engine: Engine) -> Callable[[str], list[dict[str, Any]]]:
    def render(account: str) -> list[dict[str, Any]]:
        instruments = engine.instruments
        return [order_to_json(o, instruments[o.symbol]) for o in engine.orders.open_orders(account)]

    return render


def run_flow(
    seed: int,
    commands: int,
    config: PublisherConfig,
    *,
    after: Callable[[Flow, int, list[Event]], None] | None = None,
    flush_each: bool = True,
    **gen: Any,
) -> Flow:
    """Run ``commands`` generated commands through a fresh engine and publisher; ``after`` is
    called after each command with its index and events. With conflation, ``flush_due`` runs
    at every command's time; ``flush_all`` at the end."""
    engine = Engine(clock=lambda: 0)
    flow = Flow(engine, None)  # type: ignore[arg-type]
    flow.pub = Publisher(
        config,
        sink=flow.envelopes.append,
        clock=lambda: 0,
        on_candle_closed=lambda s, r, c: flow.closed.append((s, r, c)),
        open_orders=open_orders_of(engine),
        instrument_lookup=engine.instruments.get,
    )
    for i, cmd in enumerate(generate(flow_config(seed, **gen), commands)):
        events = engine.submit(cmd)
        flow.events.extend(events)
        if flush_each and cmd.ts is not None:
            flow.pub.flush_due(cmd.ts)
        flow.pub.on_events(events)
        if after is not None:
            after(flow, i, events)
    flow.pub.flush_all()
    return flow


class ClientBook:
    """A client's view of one book: snapshot, then updates applied."""

    def __init__(self, snapshot: dict[str, Any] | None = None) -> None:
        self.bids: dict[str, int] = {}
        self.asks: dict[str, int] = {}
        if snapshot is not None:
            self.apply(snapshot)

    def apply(self, data: dict[str, Any]) -> None:
        for side, levels in ((self.bids, data["bids"]), (self.asks, data["asks"])):
            for price, qty in levels:
                if qty == 0:
                    side.pop(price, None)
                else:
                    side[price] = qty

    def sorted(self) -> tuple[list[tuple[str, int]], list[tuple[str, int]]]:
        def key(kv: tuple[str, int]) -> tuple[int, str]:
            whole, _, frac = kv[0].partition(".")
            return (int(whole + frac), kv[0])

        return sorted(self.bids.items(), key=key, reverse=True), sorted(self.asks.items(), key=key)
