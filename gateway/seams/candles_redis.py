"""Closed candles in Redis: the distributed-mode :class:`CandleArchive`.

Per ``(symbol, resolution)`` two keys sharing a cluster hash tag:

* ``P{candles:SYM:RES}:data``  hash ``t -> candle JSON`` (appending ``t`` again replaces it)
* ``P{candles:SYM:RES}:t``     sorted set of the ``t`` values, scored by ``t``

A flush writes every buffered series in one pipelined ``MULTI``/``EXEC`` round trip: one
``HSET`` (all its buckets) and one ``ZADD`` per series, and for a series with a retention one
script that drops its buckets older than the cutoff from both keys. ``range`` is one Lua script (the
newest ``limit`` bucket starts in range, then their candles), so it reads one consistent state.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from gateway.seams.candle_buffer import (
    DEFAULT_RETENTION_MS,
    BufferedCandleArchive,
    CandleKey,
    Cutoffs,
)
from gateway.seams.store import StoreUnavailable

_RANGE_LUA = """
local ts = redis.call('ZREVRANGEBYSCORE', KEYS[1], ARGV[2], ARGV[1], 'LIMIT', 0, ARGV[3])
local out = {}
local chunk = {}
for i = 1, #ts do
  chunk[#chunk + 1] = ts[i]
  if #chunk == 500 or i == #ts then
    local vals = redis.call('HMGET', KEYS[2], unpack(chunk))
    for j = 1, #vals do
      if vals[j] then out[#out + 1] = vals[j] end
    end
    chunk = {}
  end
end
return out
"""


_PRUNE_LUA = """
local ts = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[1])
for i = 1, #ts, 500 do
  redis.call('HDEL', KEYS[2], unpack(ts, i, math.min(i + 499, #ts)))
end
return redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[1])
"""


@dataclass(kw_only=True)
class RedisCandleConfig:
    """``retention_ms``: per resolution, how far behind its newest candle a series is kept
    (:mod:`gateway.seams.candle_buffer`)."""

    url: str = "redis://127.0.0.1:6379/0"
    key_prefix: str = "qg:"
    flush_interval_ms: int = 1000
    pending_max: int = 100_000
    socket_timeout_s: float = 5.0
    retention_ms: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_RETENTION_MS))


class RedisCandleArchive(BufferedCandleArchive):
    """:class:`~gateway.seams.services.CandleArchive` in Redis; one writer, any number of
    readers."""

    def __init__(self, config: RedisCandleConfig | None = None) -> None:
        self._config = config or RedisCandleConfig()
        super().__init__(
            flush_interval_ms=self._config.flush_interval_ms,
            pending_max=self._config.pending_max,
            retention_ms=self._config.retention_ms,
        )
        self._client: aioredis.Redis | None = None
        self._range_script: Any = None
        self._prune_script: Any = None

    def _keys(self, symbol: str, resolution: str) -> tuple[str, str]:
        tag = f"{self._config.key_prefix}{{candles:{symbol}:{resolution}}}"
        return f"{tag}:t", f"{tag}:data"

    async def _open(self) -> None:
        self._client = aioredis.Redis.from_url(
            self._config.url,
            socket_timeout=self._config.socket_timeout_s,
            socket_connect_timeout=self._config.socket_timeout_s,
        )
        self._range_script = self._client.register_script(_RANGE_LUA)
        self._prune_script = self._client.register_script(_PRUNE_LUA)

    async def _close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    async def _write(self, batch: dict[CandleKey, dict[str, Any]], cutoffs: Cutoffs) -> None:
        client = self._require()
        series: dict[tuple[str, str], dict[int, bytes]] = defaultdict(dict)
        for (symbol, resolution, t), candle in batch.items():
            series[(symbol, resolution)][t] = orjson.dumps(candle)
        pipe = client.pipeline(transaction=True)
        for (symbol, resolution), candles in series.items():
            zkey, hkey = self._keys(symbol, resolution)
            pipe.hset(hkey, mapping={str(t): data for t, data in candles.items()})
            pipe.zadd(zkey, {str(t): t for t in candles})
        for (symbol, resolution), cutoff in cutoffs.items():
            keys = list(self._keys(symbol, resolution))
            await self._prune_script(keys=keys, args=[cutoff], client=pipe)  # queued
        await pipe.execute()

    async def _query(
        self, symbol: str, resolution: str, start_ms: int | None, end_ms: int | None, limit: int
    ) -> list[dict[str, Any]]:
        self._require()
        zkey, hkey = self._keys(symbol, resolution)
        try:
            rows = await self._range_script(
                keys=[zkey, hkey],
                args=[
                    "-inf" if start_ms is None else int(start_ms),
                    "+inf" if end_ms is None else int(end_ms),
                    int(limit),
                ],
            )
        except (RedisError, OSError) as exc:
            raise StoreUnavailable("the candle archive is unavailable; try again") from exc
        return [orjson.loads(row) for row in rows]

    def _require(self) -> aioredis.Redis:
        if self._client is None:
            raise RuntimeError("RedisCandleArchive is not started")
        return self._client
