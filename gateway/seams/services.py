"""What the edge (the ASGI app) needs from the rest of the system.

The composition root builds a :class:`Services`: :mod:`gateway.roots.embedded` in one process
(engine, publisher, memory bus and store, synthetic feed); a later distributed mode builds the
same from Kafka and Redis. The app, hub and transports only see these protocols.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from gateway.seams.bus import MarketDataBus
from gateway.seams.history import History, ReporterStatus
from gateway.seams.store import SnapshotStore

LIST_LIMIT_DEFAULT = 1000
"""Items a list query (``/v1/orders``, ``/v1/execution``) returns without ``limit``."""
LIST_LIMIT_MAX = 10_000
"""The largest ``limit`` a list query accepts: one response never renders an account's whole
history (up to a million retained orders) on the event loop."""


class CandleArchive(Protocol):
    """Closed candles, kept beyond the publisher's ring and across restarts (SQLite file in
    the embedded default, Redis in distributed mode).

    ``append`` is synchronous and buffered (one writer: the publisher); ``range`` returns
    candles with ``start_ms <= t <= end_ms``, oldest first, at most ``limit`` (the newest
    ``limit`` when more match). Appending a bucket ``t`` again replaces it.
    """

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    def append(self, symbol: str, resolution: str, candle: dict[str, Any]) -> None: ...

    async def flush(self) -> None: ...

    async def range(
        self, symbol: str, resolution: str, start_ms: int | None, end_ms: int | None, limit: int
    ) -> list[dict[str, Any]]: ...


class OrderService(Protocol):
    """Order entry and private queries for one authenticated account.

    Every method takes the account the caller authenticated as and never returns another
    account's data. Results are JSON-ready dicts in the spec's form (engine events as
    ``engine.codec.event_to_json`` renders them; orders as in ``GET /v1/order``).
    """

    async def submit(self, account: str, command: dict[str, Any]) -> list[dict[str, Any]]:
        """Submit a command object (``op`` new/cancel/replace, spec fields; ``account`` is set
        by the service); returns the events that command produced."""
        ...

    async def order(self, account: str, order_id: int) -> dict[str, Any] | None: ...

    async def order_by_client(self, account: str, client_order_id: str) -> dict[str, Any] | None:
        """The account's order with that ``clientOrderId``, or ``None``."""
        ...

    async def orders(
        self, account: str, *, open_only: bool, limit: int = LIST_LIMIT_DEFAULT
    ) -> list[dict[str, Any]]:
        """The account's newest ``limit`` orders (open ones only, or every retained one), by
        order id, oldest first."""
        ...

    async def executions(
        self,
        account: str,
        *,
        symbol: str | None = None,
        order_id: int | None = None,
        start_us: int | None = None,
        end_us: int | None = None,
        limit: int = LIST_LIMIT_DEFAULT,
    ) -> list[dict[str, Any]]:
        """The account's newest ``limit`` executions matching the filters, oldest first."""
        ...

    async def account(self, account: str) -> dict[str, Any]:
        """Balances: ``{"account":..,"balances":{asset:{"available":..,"reserved":..}}}``."""
        ...


@dataclass(kw_only=True)
class Services:
    """Everything the app serves from. ``authenticate`` maps an API key to its account."""

    bus: MarketDataBus
    store: SnapshotStore
    candles: CandleArchive | None = None
    orders: OrderService | None = None
    history: History | None = None  # the reporting database (paged history, statements)
    reporter: ReporterStatus | None = None  # its writer's lag, for /metrics
    authenticate: Callable[[str], str | None] = lambda _token: None
    symbols: Callable[[], list[dict[str, Any]]] = list
    extra: dict[str, Any] = field(default_factory=dict)
