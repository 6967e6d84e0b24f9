"""The reporting database seam: one small Protocol, a SQLite and a PostgreSQL implementation.

:func:`open_database` picks the implementation from a URL:

* ``sqlite:PATH``, ``sqlite:///ABSOLUTE/PATH`` or ``sqlite::memory:``: the stdlib ``sqlite3`` in
  one worker thread (WAL journal, ``synchronous=NORMAL``), calls made one at a time;
* ``postgresql://...`` / ``postgres://...``: ``asyncpg`` with a small pool.

Both run the same statements (:mod:`gateway.reporting.schema`, written with ``$n``
placeholders) and apply the same migrations at :meth:`Database.open`. ``transaction`` runs a
list of ``(statement, rows)`` as one transaction, each statement once per row
(``executemany``); it is how every batch is written, so a batch is all or nothing.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol

from gateway.reporting.schema import MIGRATIONS, SCHEMA_VERSION_TABLE, to_sqlite

Statement = tuple[str, Sequence[Sequence[Any]]]


class Database(Protocol):
    """What the reporter, the history queries and the commands need of a database."""

    url: str

    async def open(self) -> None:
        """Connect and apply the migrations not applied yet. Idempotent."""
        ...

    async def close(self) -> None: ...

    async def fetch(self, sql: str, *args: Any) -> list[tuple[Any, ...]]: ...

    async def transaction(self, statements: Sequence[Statement]) -> None: ...


def open_database(url: str) -> Database:
    """The database for ``url`` (not opened yet)."""
    if url.startswith(("postgresql://", "postgres://")):
        return PostgresDatabase(url)
    if url.startswith("sqlite:"):
        return SqliteDatabase(url)
    raise ValueError(
        f"unsupported database URL {url!r}: use sqlite:PATH or postgresql://user@host/db"
    )


def sqlite_path(url: str) -> str:
    """The file of a ``sqlite:`` URL (``:memory:`` for an in-memory database)."""
    rest = url[len("sqlite:") :]
    if rest.startswith("///"):
        return rest[2:]
    if rest.startswith("//"):
        raise ValueError(f"bad SQLite URL {url!r}: sqlite:PATH or sqlite:///ABSOLUTE/PATH")
    return rest or ":memory:"


def _now_us() -> int:
    return time.time_ns() // 1000


class SqliteDatabase:
    """:class:`Database` on one ``sqlite3`` connection, used from one worker thread."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.path = sqlite_path(url)
        self._conn: sqlite3.Connection | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._sql: dict[str, str] = {}

    async def _run(self, fn: Any, *args: Any) -> Any:
        if self._executor is None:
            raise RuntimeError("the database is not open")
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def _q(self, sql: str) -> str:
        found = self._sql.get(sql)
        if found is None:
            found = self._sql[sql] = to_sqlite(sql)
        return found

    async def open(self) -> None:
        if self._executor is not None:
            return
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="reporting-sqlite")
        try:
            await self._run(self._open)
        except BaseException:
            self._executor.shutdown(wait=False)
            self._executor = None
            raise

    def _open(self) -> None:
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA busy_timeout=5000")
        self._conn = conn
        conn.execute(SCHEMA_VERSION_TABLE)
        have = conn.execute("SELECT COALESCE(MAX(version), 0) FROM schema_version").fetchone()[0]
        for version, statements in MIGRATIONS:
            if version <= have:
                continue
            conn.execute("BEGIN IMMEDIATE")
            try:
                for sql in statements:
                    conn.execute(sql)
                conn.execute(
                    "INSERT INTO schema_version (version, applied_ts) VALUES (?, ?)",
                    (version, _now_us()),
                )
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

    async def close(self) -> None:
        executor, self._executor = self._executor, None
        if executor is None:
            return
        conn, self._conn = self._conn, None
        if conn is not None:
            await asyncio.get_running_loop().run_in_executor(executor, conn.close)
        executor.shutdown(wait=True)

    async def fetch(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        q = self._q(sql)

        def run() -> list[tuple[Any, ...]]:
            assert self._conn is not None
            return list(self._conn.execute(q, args).fetchall())

        result: list[tuple[Any, ...]] = await self._run(run)
        return result

    async def transaction(self, statements: Sequence[Statement]) -> None:
        prepared = [(self._q(sql), rows) for sql, rows in statements if rows]

        def run() -> None:
            conn = self._conn
            assert conn is not None
            conn.execute("BEGIN IMMEDIATE")
            try:
                for sql, rows in prepared:
                    conn.executemany(sql, rows)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

        await self._run(run)


class PostgresDatabase:
    """:class:`Database` on an ``asyncpg`` pool."""

    def __init__(self, url: str, *, pool_max: int = 4) -> None:
        self.url = url
        self._pool_max = pool_max
        self._pool: Any = None

    async def open(self) -> None:
        if self._pool is not None:
            return
        import asyncpg  # only when PostgreSQL is configured

        pool = await asyncpg.create_pool(self.url, min_size=1, max_size=self._pool_max)
        try:
            async with pool.acquire() as conn:
                await conn.execute(SCHEMA_VERSION_TABLE)
                # one migrator at a time across processes
                async with conn.transaction():
                    await conn.execute("SELECT pg_advisory_xact_lock(1364148)")
                    have = await conn.fetchval(
                        "SELECT COALESCE(MAX(version), 0) FROM schema_version"
                    )
                    for version, statements in MIGRATIONS:
                        if version <= have:
                            continue
                        for sql in statements:
                            await conn.execute(sql)
                        await conn.execute(
                            "INSERT INTO schema_version (version, applied_ts) VALUES ($1, $2)",
                            version,
                            _now_us(),
                        )
        except BaseException:
            await pool.close()
            raise
        self._pool = pool

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    async def fetch(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        if self._pool is None:
            raise RuntimeError("the database is not open")
        records = await self._pool.fetch(sql, *args)
        return [tuple(r) for r in records]

    async def transaction(self, statements: Sequence[Statement]) -> None:
        if self._pool is None:
            raise RuntimeError("the database is not open")
        async with self._pool.acquire() as conn, conn.transaction():
            for sql, rows in statements:
                if rows:
                    await conn.executemany(sql, rows)
