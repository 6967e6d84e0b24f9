"""History and statements read from the reporting database (:class:`History` of the edge).

Every query is scoped to one stream (the engine history the runtime reports) and, except
candles, to one account: the ``WHERE`` clause always names the caller's account, so no page,
cursor or filter can reach another account's rows. Pages are keyset-paged: the cursor is the
last row's key (``orderId`` for orders, ``tradeId`` and side for executions), so a page is
an index range scan however deep it is.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from typing import Any

import orjson

from engine.units import format_cash
from gateway.reporting.database import Database
from gateway.reporting.schema import join
from gateway.seams.history import Page

_INT_MAX = 2**63 - 1
_EXEC_CURSOR = re.compile(r"([0-9]{1,19})-([bs])")
_ORDER_CURSOR = re.compile(r"[0-9]{1,19}")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")

ORDER_COLUMNS = (
    "order_id, account, client_order_id, symbol, side, type, tif, price, qty, open_qty, filled, ts"
)
EXECUTION_COLUMNS = (
    "trade_id, order_id, client_order_id, symbol, side, price, qty, liquidity, ts, notional_hi,"
    " notional_lo, currency"
)


def order_json(row: tuple[Any, ...]) -> dict[str, Any]:
    """A row of :data:`ORDER_COLUMNS` as ``GET /v1/order`` shows an order (the status derived
    as the engine derives it)."""
    oid, account, coid, symbol, side, otype, tif, price, qty, open_qty, filled, ts = row
    if open_qty:
        status = "partially_filled" if filled else "new"
    else:
        status = "filled" if filled == qty else "cancelled"
    return {
        "orderId": int(oid),
        "account": account,
        "clientOrderId": coid,
        "symbol": symbol,
        "side": side,
        "type": otype,
        "tif": tif,
        "price": price,
        "qty": int(qty),
        "openQty": int(open_qty),
        "filled": int(filled),
        "status": status,
        "ts": int(ts),
    }


def execution_json(row: tuple[Any, ...]) -> dict[str, Any]:
    """A row of :data:`EXECUTION_COLUMNS` as ``GET /v1/execution`` shows an execution."""
    return {
        "tradeId": int(row[0]),
        "orderId": int(row[1]),
        "clientOrderId": row[2],
        "symbol": row[3],
        "side": row[4],
        "price": row[5],
        "qty": int(row[6]),
        "liquidity": row[7],
        "ts": int(row[8]),
    }


def parse_day(text: str) -> date:
    """``YYYY-MM-DD`` as a date (``ValueError`` otherwise)."""
    if not _DATE.fullmatch(text):
        raise ValueError("date must be YYYY-MM-DD")
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise ValueError(f"date {text!r} is not a valid YYYY-MM-DD: {exc}") from None


def day_bounds_us(day: date) -> tuple[int, int]:
    """``[start, end)`` of a UTC day in microseconds."""
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    end = start + timedelta(days=1)
    return int(start.timestamp()) * 1_000_000, int(end.timestamp()) * 1_000_000


async def shares_of(db: Database, stream: int) -> set[str]:
    """The stream's symbols (assets counted in shares; every other asset is cash)."""
    rows = await db.fetch("SELECT symbol FROM instruments WHERE stream = $1", stream)
    return {r[0] for r in rows}


def amount_text(asset: str, units: int, shares: set[str]) -> int | str:
    """Shares as an integer, cash as the engine's decimal text."""
    return units if asset in shares else format_cash(units)


async def balances_before(db: Database, stream: int, account: str, ts: int) -> dict[str, int]:
    """The account's total per asset from its balance changes before ``ts``."""
    rows = await db.fetch(
        "SELECT asset, SUM(amount_hi), SUM(amount_lo) FROM balance_changes"
        " WHERE stream = $1 AND account = $2 AND ts < $3 GROUP BY asset",
        stream,
        account,
        ts,
    )
    return {asset: join(hi, lo) for asset, hi, lo in rows}


async def statement(db: Database, stream: int, account: str, day: date) -> dict[str, Any]:
    """One account's statement for one UTC day: balances (total, available + reserved) at the
    day's start and end per asset, every fill of the day (with its ``notional``), the turnover
    per currency (the notional of every fill) and the volume per symbol and side."""
    start, end = day_bounds_us(day)
    shares = await shares_of(db, stream)
    opening = await balances_before(db, stream, account, start)
    closing = await balances_before(db, stream, account, end)
    rows = await db.fetch(
        f"SELECT {EXECUTION_COLUMNS} FROM executions"
        " WHERE stream = $1 AND account = $2 AND ts >= $3 AND ts < $4 ORDER BY trade_id, side",
        stream,
        account,
        start,
        end,
    )
    fills: list[dict[str, Any]] = []
    turnover: dict[str, int] = {}
    volume: dict[str, dict[str, int]] = {}
    for row in rows:
        fill = execution_json(row)
        notional, currency = join(row[9], row[10]), row[11]
        fill["notional"] = format_cash(notional)
        fill["currency"] = currency
        fills.append(fill)
        turnover[currency] = turnover.get(currency, 0) + notional
        sides = volume.setdefault(fill["symbol"], {"buy": 0, "sell": 0})
        sides[fill["side"]] += fill["qty"]
    balances = {
        asset: {
            "opening": amount_text(asset, int(opening.get(asset) or 0), shares),
            "closing": amount_text(asset, int(closing.get(asset) or 0), shares),
        }
        for asset in sorted(set(opening) | set(closing))
    }
    return {
        "account": account,
        "date": day.isoformat(),
        "startTime": start,
        "endTime": end,
        "balances": balances,
        "fills": fills,
        "turnover": {c: format_cash(v) for c, v in sorted(turnover.items())},
        "volume": dict(sorted(volume.items())),
    }


class DatabaseHistory:
    """:class:`gateway.seams.history.History` over a reporting database, for one stream
    (``stream`` returns its id: the reporter knows it once it has opened)."""

    def __init__(self, db: Database, stream: int) -> None:
        self.db = db
        self.stream = stream

    async def orders(
        self,
        account: str,
        *,
        start_us: int | None,
        end_us: int | None,
        after: str | None,
        limit: int,
    ) -> Page:
        last = 0
        if after is not None:
            if not _ORDER_CURSOR.fullmatch(after):
                raise ValueError("malformed cursor")
            last = int(after)
        rows = await self.db.fetch(
            f"SELECT {ORDER_COLUMNS} FROM orders WHERE stream = $1 AND account = $2"
            " AND order_id > $3 AND ts >= $4 AND ts <= $5 ORDER BY order_id LIMIT $6",
            self.stream,
            account,
            last,
            start_us or 0,
            _INT_MAX if end_us is None else end_us,
            limit + 1,
        )
        more = len(rows) > limit
        items = [order_json(r) for r in rows[:limit]]
        return items, (str(items[-1]["orderId"]) if more else None)

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
        end = _INT_MAX if end_us is None else end_us
        args: list[Any] = [self.stream, account, start_us or 0, end]
        where = "stream = $1 AND account = $2 AND ts >= $3 AND ts <= $4"
        if symbol is not None:
            args.append(symbol)
            where += f" AND symbol = ${len(args)}"
        if order_id is not None:
            args.append(order_id)
            where += f" AND order_id = ${len(args)}"
        if after is not None:
            found = _EXEC_CURSOR.fullmatch(after)
            if found is None:
                raise ValueError("malformed cursor")
            args.extend((int(found[1]), "buy" if found[2] == "b" else "sell"))
            n = len(args)
            where += f" AND (trade_id > ${n - 1} OR (trade_id = ${n - 1} AND side > ${n}))"
        args.append(limit + 1)
        rows = await self.db.fetch(
            f"SELECT {EXECUTION_COLUMNS} FROM executions WHERE {where}"
            f" ORDER BY trade_id, side LIMIT ${len(args)}",
            *args,
        )
        more = len(rows) > limit
        items = [execution_json(r) for r in rows[:limit]]
        cursor = None
        if more:
            tail = items[-1]
            cursor = f"{tail['tradeId']}-{tail['side'][0]}"
        return items, cursor

    async def candles(
        self, symbol: str, resolution: str, start_ms: int | None, end_ms: int | None, limit: int
    ) -> list[dict[str, Any]]:
        rows = await self.db.fetch(
            "SELECT data FROM candles WHERE symbol = $1 AND res = $2 AND t >= $3 AND t <= $4"
            " ORDER BY t DESC LIMIT $5",
            symbol,
            resolution,
            -_INT_MAX if start_ms is None else start_ms,
            _INT_MAX if end_ms is None else end_ms,
            limit,
        )
        return [orjson.loads(r[0]) for r in reversed(rows)]

    async def statement(self, account: str, day: date) -> dict[str, Any]:
        return await statement(self.db, self.stream, account, day)
