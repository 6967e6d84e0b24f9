"""quotegate's matching engine: pure, synchronous, deterministic (no I/O imports).

``Engine(EngineConfig(), clock=...)``: ``submit(cmd)`` / ``submit_line(line)`` return the
events a command caused; see ``docs/architecture.md`` ("Engine API") and ``docs/engine.md``.
"""

from engine.book import Level, OrderBook
from engine.core import Engine, EngineConfig, JournalSink
from engine.instruments import Instrument
from engine.orders import (
    CANCELLED,
    FILLED,
    NEW,
    PARTIALLY_FILLED,
    REJECTED,
    Order,
    OrderManager,
)
from engine.sequencer import Sequencer, wall_clock_us
from engine.wallet import Wallet, Wallets

__all__ = [
    "CANCELLED",
    "FILLED",
    "NEW",
    "PARTIALLY_FILLED",
    "REJECTED",
    "Engine",
    "EngineConfig",
    "Instrument",
    "JournalSink",
    "Level",
    "Order",
    "OrderBook",
    "OrderManager",
    "Sequencer",
    "Wallet",
    "Wallets",
    "wall_clock_us",
]
