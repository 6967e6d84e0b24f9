"""An engine with its reporter feed: every command's offer handed to a sink.

:class:`EngineTap` is how a program without the embedded runtime (a benchmark, the tests,
``quotegate reconcile``'s replay) produces the same offers the runtime gives its reporter:
the events of a command, a :class:`~gateway.reporting.records.Funded` record for a credited
deposit, a :class:`~gateway.reporting.records.Listed` record for a new instrument.
"""

from __future__ import annotations

from collections.abc import Callable

from engine import Engine
from engine.commands import Command, DefineInstrument, Deposit
from engine.events import Event
from gateway.reporting.records import Offer
from gateway.reporting.translate import funded, listed


class EngineTap:
    """``submit`` runs a command through ``engine`` and hands its offer to ``sink``."""

    def __init__(self, engine: Engine, sink: Callable[[Offer], None]) -> None:
        self.engine = engine
        self.sink = sink

    def submit(self, cmd: Command) -> list[Event]:
        engine = self.engine
        new_symbol = type(cmd) is DefineInstrument and cmd.symbol not in engine.instruments
        events = engine.submit(cmd)
        self.offer(cmd, events, cmd.ts if cmd.ts is not None else 0, new_symbol=new_symbol)
        return events

    def submit_sequenced(self, in_seq: int, ts: int, cmd: Command) -> list[Event]:
        engine = self.engine
        new_symbol = type(cmd) is DefineInstrument and cmd.symbol not in engine.instruments
        events = engine.submit_sequenced(in_seq, ts, cmd)
        self.offer(cmd, events, ts, new_symbol=new_symbol)
        return events

    def offer(self, cmd: Command, events: list[Event], ts: int, *, new_symbol: bool) -> None:
        engine = self.engine
        if events:
            self.sink(events)
        elif type(cmd) is Deposit:
            self.sink([funded(engine.in_seq, ts, cmd, cmd.asset in engine.instruments)])
        elif new_symbol and type(cmd) is DefineInstrument:
            inst = engine.instruments.get(cmd.symbol)
            if inst is not None:
                self.sink([listed(engine.in_seq, ts, inst)])
