"""Closed candles in a local SQLite file: the embedded default :class:`CandleArchive`.

One table, ``candles(symbol, res, t, data)`` keyed by ``(symbol, res, t)`` (``WITHOUT ROWID``),
``data`` the candle's JSON. Appends are buffered and written in one transaction per flush; the
``sqlite3`` calls run in a worker thread (``asyncio.to_thread``), one at a time.
"""

from __future__ import annotations

import asyncio
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from gateway.seams.candle_buffer import (
    DEFAULT_RETENTION_MS,
    BufferedCandleArchive,
    CandleKey,
    Cutoffs,
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS candles (
    symbol TEXT NOT NULL,
    res TEXT NOT NULL,
    t INTEGER NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (symbol, res, t)
) WITHOUT ROWID
"""

_UPSERT = "INSERT OR REPLACE INTO candles (symbol, res, t, data) VALUES (?, ?, ?, ?)"
_PRUNE = "DELETE FROM candles WHERE symbol = ? AND res = ? AND t < ?"
_RANGE = (
    "SELECT data FROM candles WHERE symbol = ? AND res = ? AND t >= ? AND t <= ?"
    " ORDER BY t DESC LIMIT ?"
)
_MIN_T = -(2**63)
_MAX_T = 2**63 - 1


@dataclass(kw_only=True)
class SqliteCandleConfig:
    """``path``: the database file (created with its directory); ``flush_interval_ms``: how long
    appends are buffered; ``pending_max``: buffered candles kept while the disk fails;
    ``retention_ms``: per resolution, how far behind its newest candle a series is kept
    (:mod:`gateway.seams.candle_buffer`)."""

    path: str = "quotegate-candles.sqlite3"
    flush_interval_ms: int = 1000
    pending_max: int = 100_000
    retention_ms: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_RETENTION_MS))


class SqliteCandleArchive(BufferedCandleArchive):
    """:class:`~gateway.seams.services.CandleArchive` in SQLite."""

    def __init__(self, config: SqliteCandleConfig | None = None) -> None:
        self._config = config or SqliteCandleConfig()
        super().__init__(
            flush_interval_ms=self._config.flush_interval_ms,
            pending_max=self._config.pending_max,
            retention_ms=self._config.retention_ms,
        )
        self._db: sqlite3.Connection | None = None

    async def _open(self) -> None:
        self._db = await asyncio.to_thread(_connect, self._config.path)

    async def _close(self) -> None:
        db, self._db = self._db, None
        if db is not None:
            await asyncio.to_thread(db.close)

    async def _write(self, batch: dict[CandleKey, dict[str, Any]], cutoffs: Cutoffs) -> None:
        db = self._require()
        rows = [(s, r, t, orjson.dumps(c)) for (s, r, t), c in batch.items()]
        prune = [(s, r, t) for (s, r), t in cutoffs.items()]
        await asyncio.to_thread(_write_rows, db, rows, prune)

    async def _query(
        self, symbol: str, resolution: str, start_ms: int | None, end_ms: int | None, limit: int
    ) -> list[dict[str, Any]]:
        db = self._require()
        args = (
            symbol,
            resolution,
            _MIN_T if start_ms is None else start_ms,
            _MAX_T if end_ms is None else end_ms,
            limit,
        )
        rows = await asyncio.to_thread(_read_rows, db, args)
        return [orjson.loads(data) for (data,) in rows]

    def _require(self) -> sqlite3.Connection:
        if self._db is None:
            raise RuntimeError("SqliteCandleArchive is not started")
        return self._db


def _connect(path: str) -> sqlite3.Connection:
    if path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute(_SCHEMA)
    return db


def _write_rows(
    db: sqlite3.Connection,
    rows: list[tuple[str, str, int, bytes]],
    prune: list[tuple[str, str, int]],
) -> None:
    db.execute("BEGIN")
    try:
        db.executemany(_UPSERT, rows)
        if prune:
            db.executemany(_PRUNE, prune)
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def _read_rows(db: sqlite3.Connection, args: tuple[str, str, int, int, int]) -> list[Any]:
    return db.execute(_RANGE, args).fetchall()
