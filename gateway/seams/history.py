"""What the edge needs of the reporting database: paged history and statements.

:class:`History` is served by :class:`gateway.reporting.history.DatabaseHistory` (SQLite or
PostgreSQL). Every method takes the account the caller authenticated as and reads only that
account's rows. A page is ``(items, next_cursor)``: ``next_cursor`` is ``None`` on the last
page, else the opaque text to pass back as ``after``. A malformed cursor or date raises
:class:`ValueError` (the edge answers 400).

:class:`ReporterStatus` is what ``/metrics`` reads of the reporter.
"""

from __future__ import annotations

from datetime import date
from typing import Any, Protocol

Page = tuple[list[dict[str, Any]], str | None]


class History(Protocol):
    async def orders(
        self,
        account: str,
        *,
        start_us: int | None,
        end_us: int | None,
        after: str | None,
        limit: int,
    ) -> Page:
        """The account's orders (every state) created in ``[start_us, end_us]``, by order id,
        oldest first, in the form of ``GET /v1/order``."""
        ...

    async def executions(
        self,
        account: str,
        *,
        symbol: str | None,
        order_id: int | None,
        start_us: int | None,
        end_us: int | None,
        after: str | None,
        limit: int,
    ) -> Page:
        """The account's executions (one per side it was on), oldest first."""
        ...

    async def candles(
        self, symbol: str, resolution: str, start_ms: int | None, end_ms: int | None, limit: int
    ) -> list[dict[str, Any]]:
        """Closed candles with ``start_ms <= t <= end_ms``, the newest ``limit``, oldest
        first."""
        ...

    async def statement(self, account: str, day: date) -> dict[str, Any]:
        """Opening and closing balances per asset, every fill and the turnover of one UTC
        day."""
        ...


class ReporterStatus(Protocol):
    def lag_events(self) -> int: ...

    def pending_records(self) -> int: ...

    def dropped_records(self) -> int: ...
