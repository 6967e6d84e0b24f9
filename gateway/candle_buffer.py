"""The write buffer and task shared by the candle archives (SQLite and Redis).

``append`` coalesces per ``(symbol, resolution, t)``: a bucket appended several times between
two flushes is written once, with its latest value. ``range`` merges what is still buffered
over what the backend returns, so a read never misses an appended candle.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from gateway.tasks import cancel_and_wait

log = logging.getLogger(__name__)

CandleKey = tuple[str, str, int]
"""``(symbol, resolution, t)`` with ``t`` the bucket start in milliseconds."""


class BufferedCandleArchive:
    """Base of the :class:`~gateway.services.CandleArchive` implementations.

    Subclasses implement ``_open``, ``_close``, ``_write`` (one batch, all or nothing) and
    ``_query`` (newest ``limit`` candles in range, any order).
    """

    def __init__(self, *, flush_interval_ms: int, pending_max: int) -> None:
        if flush_interval_ms < 1:
            raise ValueError("flush_interval_ms must be at least 1")
        self._flush_interval_ms = flush_interval_ms
        self._pending_max = pending_max
        self._pending: dict[CandleKey, dict[str, Any]] = {}
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._open_now = False
        self.flushes = 0
        self.flush_errors = 0
        self.dropped = 0

    # --- backend hooks ------------------------------------------------------------------------

    async def _open(self) -> None:
        raise NotImplementedError

    async def _close(self) -> None:
        raise NotImplementedError

    async def _write(self, batch: dict[CandleKey, dict[str, Any]]) -> None:
        raise NotImplementedError

    async def _query(
        self, symbol: str, resolution: str, start_ms: int | None, end_ms: int | None, limit: int
    ) -> list[dict[str, Any]]:
        raise NotImplementedError

    # --- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        if self._open_now:
            return
        await self._open()
        self._open_now = True
        self._task = asyncio.create_task(self._flush_loop(), name=f"{type(self).__name__}-flush")

    async def close(self) -> None:
        task, self._task = self._task, None
        await cancel_and_wait(task)
        if not self._open_now:
            return
        try:
            await self.flush()
        except Exception as exc:
            self.flush_errors += 1
            log.warning("candle archive: final flush failed: %s", exc)
        self._open_now = False
        await self._close()

    async def _flush_loop(self) -> None:
        interval_s = self._flush_interval_ms / 1000
        failing = False
        while True:
            await asyncio.sleep(interval_s)
            if not self._pending:
                continue
            try:
                await self.flush()
            except Exception as exc:
                self.flush_errors += 1
                if not failing:
                    log.warning("candle archive: flush failed (will retry): %s", exc)
                failing = True
            else:
                failing = False

    # --- writes -------------------------------------------------------------------------------

    def append(self, symbol: str, resolution: str, candle: dict[str, Any]) -> None:
        t = candle.get("t")
        if type(t) is not int:
            self.dropped += 1  # not a candle: never raise into the publisher
            return
        key = (symbol, resolution, t)
        if key not in self._pending and len(self._pending) >= self._pending_max:
            self.dropped += 1  # the backend is unreachable for long: keep memory bounded
            return
        self._pending[key] = candle

    async def flush(self) -> None:
        async with self._lock:
            if not self._pending or not self._open_now:
                return
            batch, self._pending = self._pending, {}
            try:
                await self._write(batch)
            except BaseException:
                batch.update(self._pending)  # newer appends win
                self._pending = batch
                raise
            self.flushes += 1

    # --- reads --------------------------------------------------------------------------------

    async def range(
        self, symbol: str, resolution: str, start_ms: int | None, end_ms: int | None, limit: int
    ) -> list[dict[str, Any]]:
        if limit <= 0:
            return []
        async with self._lock:
            stored = await self._query(symbol, resolution, start_ms, end_ms, limit)
        merged = {int(c["t"]): c for c in stored}
        for (sym, res, t), candle in self._pending.items():
            if (
                sym == symbol
                and res == resolution
                and (start_ms is None or t >= start_ms)
                and (end_ms is None or t <= end_ms)
            ):
                merged[t] = candle
        return [merged[t] for t in sorted(merged)[-limit:]]
