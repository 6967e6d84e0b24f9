"""The instrument list in Redis: written by the engine process, read by every gateway node.

One key, ``P symbols``: the JSON list ``GET /v1/symbols`` serves (``[{"symbol","tick","lot",
"currency"}, ...]``). :class:`RedisSymbols` is both sides: the engine calls :meth:`publish`
every half second; a gateway keeps a copy refreshed every ``refresh_interval_ms`` and serves it
from memory (:meth:`current`, synchronous), so a Redis outage leaves the last list in place.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from runtime.tasks import cancel_and_wait

log = logging.getLogger("quotegate.symbols")


class RedisSymbols:
    def __init__(
        self,
        url: str,
        *,
        key_prefix: str = "qg:",
        refresh_interval_ms: int = 1000,
        reader: bool = True,
    ) -> None:
        if refresh_interval_ms < 1:
            raise ValueError("refresh_interval_ms must be at least 1")
        self._url = url
        self._key = f"{key_prefix}symbols"
        self._interval_s = refresh_interval_ms / 1000
        self._reader = reader
        self._client: aioredis.Redis | None = None
        self._task: asyncio.Task[None] | None = None
        self._current: list[dict[str, Any]] = []

    async def start(self) -> None:
        """Connect; a reader loads the list once (a Redis error leaves it empty) and starts
        its refresh task. Idempotent."""
        if self._client is not None:
            return
        self._client = aioredis.Redis.from_url(
            self._url, socket_timeout=5, socket_connect_timeout=5
        )
        if self._reader:
            await self.refresh()
            self._task = asyncio.create_task(self._loop(), name="symbols-refresh")

    async def close(self) -> None:
        task, self._task = self._task, None
        await cancel_and_wait(task)
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    def current(self) -> list[dict[str, Any]]:
        """The last list read (a copy of each entry is not made: do not modify it)."""
        return self._current

    async def refresh(self) -> None:
        if self._client is None:
            return
        try:
            raw = await self._client.get(self._key)
        except (RedisError, OSError) as exc:
            log.debug("symbols: refresh failed: %s", exc)
            return
        if raw is not None:
            value = orjson.loads(raw)
            if isinstance(value, list):
                self._current = value

    async def publish(self, symbols: list[dict[str, Any]]) -> None:
        """Write the list (every call: a Redis that lost it, restarted without persistence,
        gets it back on the next one)."""
        if self._client is None:
            return
        await self._client.set(self._key, orjson.dumps(symbols))
        self._current = symbols

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self._interval_s)
            await self.refresh()
