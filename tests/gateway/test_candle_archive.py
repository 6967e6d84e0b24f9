"""One contract suite for the CandleArchive implementations: SQLite file and real Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from gateway.seams.candle_buffer import BufferedCandleArchive
from gateway.seams.candles_redis import RedisCandleArchive, RedisCandleConfig
from gateway.seams.candles_sqlite import SqliteCandleArchive, SqliteCandleConfig

NEVER_MS = 3_600_000
Open = Callable[..., Awaitable[BufferedCandleArchive]]


def candle(t: int, close: str = "100.00", v: int = 1) -> dict[str, Any]:
    return {"t": t, "o": "100.00", "h": "101.50", "l": "99.00", "c": close, "v": v, "n": 2}


RETENTION = {"1s": 10_000, "1m": 600_000}  # 10 s of 1s candles, 10 min of 1m candles (ms)


@pytest.fixture(params=["sqlite", pytest.param("redis", marks=pytest.mark.redis)])
async def open_archive(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Open]:
    """``open_archive(retention_ms={})`` opens (again) the same archive: same file, same
    Redis and prefix; it keeps every candle unless given a retention."""
    made: list[BufferedCandleArchive] = []
    kind: str = request.param
    url = request.getfixturevalue("redis_url") if kind == "redis" else ""

    async def open_(retention_ms: dict[str, int] | None = None) -> BufferedCandleArchive:
        archive: BufferedCandleArchive
        keep = retention_ms or {}
        if kind == "sqlite":
            path = str(tmp_path / "db" / "candles.sqlite3")
            archive = SqliteCandleArchive(
                SqliteCandleConfig(path=path, flush_interval_ms=NEVER_MS, retention_ms=keep)
            )
        else:
            archive = RedisCandleArchive(
                RedisCandleConfig(
                    url=url, key_prefix="ct:", flush_interval_ms=NEVER_MS, retention_ms=keep
                )
            )
        await archive.start()
        made.append(archive)
        return archive

    yield open_
    for archive in reversed(made):
        await archive.close()


async def test_retention_keeps_each_series_behind_its_newest_candle(open_archive: Open) -> None:
    """A flush drops the candles of the series it wrote that fell more than the resolution's
    retention behind that series' newest candle; other resolutions are kept forever."""
    archive = await open_archive(RETENTION)
    for k in range(30):  # 1s candles at 0..29 s
        archive.append("AAPL", "1s", candle(1000 * k))
    archive.append("MSFT", "1s", candle(5000))
    for k in range(30):  # 1m candles at 0..29 min; 5m candles kept forever
        archive.append("AAPL", "1m", candle(60_000 * k))
        archive.append("AAPL", "5m", candle(300_000 * k))
    await archive.flush()
    ones = await archive.range("AAPL", "1s", None, None, 100)
    assert [c["t"] for c in ones] == [1000 * k for k in range(19, 30)]  # t >= 29 s - 10 s
    assert [c["t"] for c in await archive.range("MSFT", "1s", None, None, 9)] == [5000]
    minutes = await archive.range("AAPL", "1m", None, None, 100)
    assert [c["t"] for c in minutes] == [60_000 * k for k in range(19, 30)]
    assert len(await archive.range("AAPL", "5m", None, None, 100)) == 30
    # a later flush of the series moves its window; a flush without it leaves it alone
    archive.append("AAPL", "1s", candle(40_000))
    await archive.flush()
    ones = await archive.range("AAPL", "1s", None, None, 100)
    assert [c["t"] for c in ones] == [40_000]  # 19..29 s fell behind 40 s - 10 s
    archive.append("MSFT", "1s", candle(100_000))
    await archive.flush()
    assert [c["t"] for c in await archive.range("MSFT", "1s", None, None, 9)] == [100_000]
    assert [c["t"] for c in await archive.range("AAPL", "1s", None, None, 9)] == [40_000]
    reopened = await open_archive(RETENTION)  # pruned on disk / in Redis, not only in memory
    kept = await reopened.range("AAPL", "1m", None, None, 100)
    assert [c["t"] for c in kept] == [60_000 * k for k in range(19, 30)]


def test_retention_settings_are_checked() -> None:
    from gateway.seams.candle_buffer import check_retention, parse_retention_s

    assert parse_retention_s("1s=86400, 1m=2592000") == {"1s": 86_400_000, "1m": 2_592_000_000}
    assert parse_retention_s("") == {}
    for bad in ("1s", "1s=-5", "2s=10", "1s=ten"):
        with pytest.raises(ValueError):
            parse_retention_s(bad)
    with pytest.raises(ValueError):
        check_retention({"1s": 0})
    with pytest.raises(ValueError):
        SqliteCandleArchive(SqliteCandleConfig(path=":memory:", retention_ms={"7s": 1}))


async def test_empty(open_archive: Open) -> None:
    archive = await open_archive()
    assert await archive.range("AAPL", "1m", None, None, 100) == []


async def test_range_is_oldest_first_inclusive_and_limited(open_archive: Open) -> None:
    archive = await open_archive()
    for i in range(10):
        archive.append("AAPL", "1m", candle(60_000 * i, close=f"{100 + i}.00"))
    await archive.flush()
    everything = await archive.range("AAPL", "1m", None, None, 100)
    assert [c["t"] for c in everything] == [60_000 * i for i in range(10)]
    assert everything[3] == candle(180_000, close="103.00")
    window = await archive.range("AAPL", "1m", 120_000, 300_000, 100)
    assert [c["t"] for c in window] == [120_000, 180_000, 240_000, 300_000]
    newest = await archive.range("AAPL", "1m", None, None, 3)
    assert [c["t"] for c in newest] == [420_000, 480_000, 540_000]
    newest_in_window = await archive.range("AAPL", "1m", 0, 300_000, 2)
    assert [c["t"] for c in newest_in_window] == [240_000, 300_000]
    assert [c["t"] for c in await archive.range("AAPL", "1m", 500_000, None, 9)] == [540_000]
    assert await archive.range("AAPL", "1m", 1, 59_999, 9) == []
    assert await archive.range("AAPL", "1m", None, None, 0) == []


async def test_appending_a_bucket_again_replaces_it(open_archive: Open) -> None:
    archive = await open_archive()
    archive.append("AAPL", "1s", candle(1000, close="1.00"))
    archive.append("AAPL", "1s", candle(1000, close="2.00"))
    await archive.flush()
    archive.append("AAPL", "1s", candle(1000, close="3.00", v=9))
    await archive.flush()
    assert await archive.range("AAPL", "1s", None, None, 10) == [candle(1000, "3.00", v=9)]


async def test_buffered_candles_are_visible_before_the_flush(open_archive: Open) -> None:
    archive = await open_archive()
    archive.append("AAPL", "1s", candle(1000, close="1.00"))
    archive.append("AAPL", "1s", candle(2000))
    await archive.flush()
    archive.append("AAPL", "1s", candle(1000, close="5.00"))  # replaces a stored bucket
    archive.append("AAPL", "1s", candle(3000))
    got = await archive.range("AAPL", "1s", None, None, 10)
    assert got == [candle(1000, "5.00"), candle(2000), candle(3000)]
    assert [c["t"] for c in await archive.range("AAPL", "1s", None, None, 2)] == [2000, 3000]


async def test_series_are_independent(open_archive: Open) -> None:
    archive = await open_archive()
    archive.append("AAPL", "1m", candle(0))
    archive.append("AAPL", "5m", candle(0, close="5.00"))
    archive.append("MSFT", "1m", candle(0, close="7.00"))
    await archive.flush()
    assert await archive.range("AAPL", "5m", None, None, 10) == [candle(0, "5.00")]
    assert await archive.range("MSFT", "1m", None, None, 10) == [candle(0, "7.00")]
    assert await archive.range("MSFT", "5m", None, None, 10) == []


async def test_history_survives_a_restart(open_archive: Open) -> None:
    first = await open_archive()
    for i in range(5):
        first.append("AAPL", "1h", candle(3_600_000 * i))
    await first.flush()
    first.append("AAPL", "1h", candle(3_600_000 * 5))  # only buffered: close() flushes it
    await first.close()
    await first.close()  # idempotent
    second = await open_archive()
    got = await second.range("AAPL", "1h", None, None, 100)
    assert [c["t"] for c in got] == [3_600_000 * i for i in range(6)]


async def test_bad_candles_are_dropped_not_raised(open_archive: Open) -> None:
    archive = await open_archive()
    archive.append("AAPL", "1m", {"o": "1"})
    archive.append("AAPL", "1m", {"t": "60000"})
    archive.append("AAPL", "1m", candle(60_000))
    await archive.flush()
    assert archive.dropped == 2
    assert await archive.range("AAPL", "1m", None, None, 10) == [candle(60_000)]


async def test_many_candles_in_one_flush(open_archive: Open) -> None:
    archive = await open_archive()
    for sym in range(20):
        for i in range(100):
            archive.append(f"S{sym}", "1s", candle(1000 * i, v=sym))
    await archive.flush()
    assert archive.flushes == 1
    got = await archive.range("S7", "1s", None, None, 1000)
    assert len(got) == 100 and all(c["v"] == 7 for c in got)


@pytest.mark.redis
async def test_redis_writes_are_pipelined_per_series(redis_url: str) -> None:
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(redis_url)

    async def commands() -> int:
        stats = await client.info("commandstats")
        return sum(int(v["calls"]) for k, v in stats.items() if k != "cmdstat_info")

    archive = RedisCandleArchive(RedisCandleConfig(url=redis_url, flush_interval_ms=NEVER_MS))
    await archive.start()
    try:
        before = await commands()
        for sym in range(10):
            for i in range(300):
                archive.append(f"S{sym}", "1s", candle(1000 * i))
        await archive.flush()
        delta = await commands() - before
        # HSET + ZADD per series, its first prune (EVALSHA and the script's ZRANGEBYSCORE and
        # ZREMRANGEBYSCORE), MULTI, EXEC (+ the connection handshake and the script's load)
        assert delta <= 5 * 10 + 6, delta
        before = await commands()
        for sym in range(10):  # a minute later: no prune due (1/16 of the day's retention)
            archive.append(f"S{sym}", "1s", candle(360_000))
        await archive.flush()
        delta = await commands() - before
        assert delta <= 2 * 10 + 2, delta
    finally:
        await archive.close()
        await client.aclose()


async def test_background_flush_writes_the_file(tmp_path: Path) -> None:
    import asyncio

    path = str(tmp_path / "c.sqlite3")
    archive = SqliteCandleArchive(SqliteCandleConfig(path=path, flush_interval_ms=5))
    await archive.start()
    try:
        archive.append("AAPL", "1m", candle(0))
        for _ in range(2000):
            if archive.flushes:
                break
            await asyncio.sleep(0.005)
        assert archive.flushes == 1
    finally:
        await archive.close()
    reopened = SqliteCandleArchive(SqliteCandleConfig(path=path))
    await reopened.start()
    try:
        assert await reopened.range("AAPL", "1m", None, None, 5) == [candle(0)]
    finally:
        await reopened.close()


async def test_redis_archive_unreachable_is_store_unavailable() -> None:
    """A range read while Redis is down is StoreUnavailable (503 at the edge), not a 500."""
    from gateway.seams.store import StoreUnavailable
    from tests.services import free_port

    archive = RedisCandleArchive(
        RedisCandleConfig(url=f"redis://127.0.0.1:{free_port()}/0", socket_timeout_s=1.0)
    )
    await archive.start()
    try:
        with pytest.raises(StoreUnavailable):
            await archive.range("AAPL", "1m", None, None, 10)
    finally:
        await archive.close()
