"""The reporting database: one schema for SQLite and PostgreSQL, versioned migrations.

Every statement is written once, with ``$n`` placeholders (PostgreSQL's); the SQLite driver
rewrites them to ``?n``. Types are the common subset: ``BIGINT`` and ``TEXT`` (SQLite maps both
onto its own). Times are microseconds since the Unix epoch (the engine's ``ts``); cash is in
units of 10**-8 of its currency, shares in shares, prices as the engine's decimal text (and in
ticks where arithmetic needs them). Amounts can pass 64 bits (a deposit of 10**12 dollars is
10**20 cash units), so every amount is stored split in two ``BIGINT`` columns, ``_hi`` and
``_lo`` with ``amount = hi * SPLIT + lo`` and ``0 <= lo < SPLIT`` (:func:`split`, :func:`join`):
their sums stay exact in both databases.

Tables (``stream`` numbers one engine history: one journal, or one run without a journal):

* ``streams``: ``id``, ``name``, ``created_ts``, and the progress mark ``last_in_seq`` /
  ``last_seq`` (the last command and event written, in the same transaction as their rows);
* ``instruments``: currency and price grid of each symbol of a stream;
* ``orders``: one row per order with its current state (``qty``, ``open_qty``, ``filled``;
  the status is derived from them as the engine derives it);
* ``order_events``: every state change of every order, keyed by the engine's ``seq`` (and the
  order, since a trade changes two): accepted, trade, replaced, cancelled, done, rejected;
* ``executions``: one row per side of a trade, with ``liquidity`` taker or maker;
* ``balance_changes``: every change of an account's total balance of an asset: deposits (keyed
  by the command's ``in_seq``) and both legs of each side of a trade (keyed by ``seq``);
* ``candles``: closed candles by ``(symbol, res, t)``, the candle's JSON in ``data``.

:data:`MIGRATIONS` is append-only: a released version is never edited, a change is a new
version. ``schema_version`` records what was applied.
"""

from __future__ import annotations

import re
from typing import Any

SCHEMA_VERSION_TABLE = (
    "CREATE TABLE IF NOT EXISTS schema_version (version BIGINT PRIMARY KEY, applied_ts BIGINT)"
)

MIGRATIONS: list[tuple[int, list[str]]] = [
    (
        1,
        [
            """CREATE TABLE streams (
                id BIGINT PRIMARY KEY,
                name TEXT NOT NULL UNIQUE,
                created_ts BIGINT NOT NULL,
                last_in_seq BIGINT NOT NULL DEFAULT 0,
                last_seq BIGINT NOT NULL DEFAULT 0
            )""",
            """CREATE TABLE instruments (
                stream BIGINT NOT NULL,
                symbol TEXT NOT NULL,
                currency TEXT NOT NULL,
                tick TEXT NOT NULL,
                price_decimals BIGINT NOT NULL,
                tick_units BIGINT NOT NULL,
                cash_per_tick BIGINT NOT NULL,
                in_seq BIGINT NOT NULL,
                PRIMARY KEY (stream, symbol)
            )""",
            """CREATE TABLE orders (
                stream BIGINT NOT NULL,
                order_id BIGINT NOT NULL,
                account TEXT NOT NULL,
                client_order_id TEXT NOT NULL,
                symbol TEXT NOT NULL,
                side TEXT NOT NULL,
                type TEXT NOT NULL,
                tif TEXT NOT NULL,
                price TEXT,
                qty BIGINT NOT NULL,
                open_qty BIGINT NOT NULL,
                filled BIGINT NOT NULL,
                ts BIGINT NOT NULL,
                updated_ts BIGINT NOT NULL,
                last_seq BIGINT NOT NULL,
                PRIMARY KEY (stream, order_id)
            )""",
            "CREATE INDEX orders_account ON orders (stream, account, order_id)",
            """CREATE TABLE order_events (
                stream BIGINT NOT NULL,
                seq BIGINT NOT NULL,
                order_id BIGINT NOT NULL,
                account TEXT NOT NULL,
                client_order_id TEXT,
                symbol TEXT,
                event TEXT NOT NULL,
                price TEXT,
                qty BIGINT,
                reason TEXT,
                ts BIGINT NOT NULL,
                PRIMARY KEY (stream, seq, order_id)
            )""",
            "CREATE INDEX order_events_order ON order_events (stream, order_id, seq)",
            """CREATE TABLE executions (
                stream BIGINT NOT NULL,
                trade_id BIGINT NOT NULL,
                side TEXT NOT NULL,
                seq BIGINT NOT NULL,
                account TEXT NOT NULL,
                order_id BIGINT NOT NULL,
                client_order_id TEXT NOT NULL,
                symbol TEXT NOT NULL,
                price TEXT NOT NULL,
                price_ticks BIGINT NOT NULL,
                qty BIGINT NOT NULL,
                liquidity TEXT NOT NULL,
                currency TEXT NOT NULL,
                notional_hi BIGINT NOT NULL,
                notional_lo BIGINT NOT NULL,
                ts BIGINT NOT NULL,
                PRIMARY KEY (stream, trade_id, side)
            )""",
            "CREATE INDEX executions_account ON executions (stream, account, trade_id)",
            """CREATE TABLE balance_changes (
                stream BIGINT NOT NULL,
                ref BIGINT NOT NULL,
                kind TEXT NOT NULL,
                account TEXT NOT NULL,
                asset TEXT NOT NULL,
                amount_hi BIGINT NOT NULL,
                amount_lo BIGINT NOT NULL,
                trade_id BIGINT,
                ts BIGINT NOT NULL,
                PRIMARY KEY (stream, kind, ref, account, asset)
            )""",
            "CREATE INDEX balance_changes_account ON balance_changes (stream, account, ts)",
            """CREATE TABLE candles (
                symbol TEXT NOT NULL,
                res TEXT NOT NULL,
                t BIGINT NOT NULL,
                data TEXT NOT NULL,
                PRIMARY KEY (symbol, res, t)
            )""",
        ],
    ),
]
"""``(version, statements)`` in order; each version is applied in one transaction."""

LATEST_VERSION = MIGRATIONS[-1][0]

# -- statements the reporter writes with ------------------------------------------------------

INSERT_INSTRUMENT = (
    "INSERT INTO instruments (stream, symbol, currency, tick, price_decimals, tick_units,"
    " cash_per_tick, in_seq) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
    " ON CONFLICT (stream, symbol) DO NOTHING"
)
INSERT_ORDER = (
    "INSERT INTO orders (stream, order_id, account, client_order_id, symbol, side, type, tif,"
    " price, qty, open_qty, filled, ts, updated_ts, last_seq)"
    " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)"
    " ON CONFLICT (stream, order_id) DO NOTHING"
)
# $3 filled delta, $4 absolute open qty (NULL: $5 is a delta), $6 replaced (qty = filled + $7),
# $8 new price (NULL: kept); every right-hand side reads the row's old values
UPDATE_ORDER = (
    "UPDATE orders SET filled = filled + $3, open_qty = COALESCE($4, open_qty + $5),"
    " qty = CASE WHEN $6 = 1 THEN filled + $7 ELSE qty END, price = COALESCE($8, price),"
    " updated_ts = $9, last_seq = $10 WHERE stream = $1 AND order_id = $2"
)
INSERT_ORDER_EVENT = (
    "INSERT INTO order_events (stream, seq, order_id, account, client_order_id, symbol, event,"
    " price, qty, reason, ts) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
    " ON CONFLICT (stream, seq, order_id) DO NOTHING"
)
INSERT_EXECUTION = (
    "INSERT INTO executions (stream, trade_id, side, seq, account, order_id, client_order_id,"
    " symbol, price, price_ticks, qty, liquidity, currency, notional_hi, notional_lo, ts)"
    " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)"
    " ON CONFLICT (stream, trade_id, side) DO NOTHING"
)
INSERT_BALANCE_CHANGE = (
    "INSERT INTO balance_changes (stream, ref, kind, account, asset, amount_hi, amount_lo,"
    " trade_id, ts) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
    " ON CONFLICT (stream, kind, ref, account, asset) DO NOTHING"
)
UPSERT_CANDLE = (
    "INSERT INTO candles (symbol, res, t, data) VALUES ($1, $2, $3, $4)"
    " ON CONFLICT (symbol, res, t) DO UPDATE SET data = excluded.data"
)
SET_PROGRESS = (
    "UPDATE streams SET last_in_seq = $2, last_seq = $3 WHERE id = $1 AND last_in_seq <= $2"
)

# what a restored engine no longer has (a journal tail lost after its rows were written)
TRUNCATE: list[tuple[str, str]] = [
    ("DELETE FROM order_events WHERE stream = $1 AND seq > $2", "seq"),
    ("DELETE FROM executions WHERE stream = $1 AND seq > $2", "seq"),
    ("DELETE FROM balance_changes WHERE stream = $1 AND kind <> 'deposit' AND ref > $2", "seq"),
    ("DELETE FROM balance_changes WHERE stream = $1 AND kind = 'deposit' AND ref > $2", "in_seq"),
    ("DELETE FROM orders WHERE stream = $1 AND last_seq > $2", "seq"),
    ("DELETE FROM instruments WHERE stream = $1 AND in_seq > $2", "in_seq"),
]
"""``(statement, mark)``: each deletes a stream's rows past ``$2``, the ``seq`` or ``in_seq``."""
SET_MARK = "UPDATE streams SET last_in_seq = $2, last_seq = $3 WHERE id = $1"

SPLIT = 10**8


def split(amount: int) -> tuple[int, int]:
    """``amount`` as ``(hi, lo)``, ``amount = hi * SPLIT + lo``, ``0 <= lo < SPLIT``."""
    return divmod(amount, SPLIT)


def join(hi: Any, lo: Any) -> int:
    """The amount of a ``(hi, lo)`` pair, or of the sums of many (``None`` counts as 0)."""
    return int(hi or 0) * SPLIT + int(lo or 0)


_PG_PARAM = re.compile(r"\$(\d+)")


def to_sqlite(sql: str) -> str:
    """``$n`` placeholders as SQLite's ``?n``."""
    return _PG_PARAM.sub(r"?\1", sql)
