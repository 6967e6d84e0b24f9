"""The write buffer and task shared by the candle archives (SQLite and Redis).

``append`` coalesces per ``(symbol, resolution, t)``: a bucket appended several times between
two flushes is written once, with its latest value. ``range`` merges what is still buffered
over what the backend returns, so a read never misses an appended candle.

Retention: ``retention_ms`` maps a resolution to how far behind its series' newest candle the
archive keeps candles (by candle time ``t``, so a replay prunes exactly like the live run); a
resolution it does not name is kept forever. Each flush deletes, in the same transaction as
its writes, the candles of the series it wrote that fell behind (:data:`DEFAULT_RETENTION_MS`:
1s candles for one day, about 8.6 M rows a day per symbol otherwise).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

from gateway.wire.channels import RESOLUTIONS
from runtime.tasks import cancel_and_wait

log = logging.getLogger(__name__)

CandleKey = tuple[str, str, int]
"""``(symbol, resolution, t)`` with ``t`` the bucket start in milliseconds."""

Cutoffs = dict[tuple[str, str], int]
"""``(symbol, resolution) -> t``: delete that series' candles older than ``t`` (ms)."""

DEFAULT_RETENTION_MS: Mapping[str, int] = {"1s": 86_400_000}
"""What the archives keep by default: one day of 1s candles, every coarser candle forever."""


def check_retention(retention_ms: Mapping[str, int]) -> dict[str, int]:
    """A copy of ``retention_ms`` if every key is a resolution and every value >= 1 ms."""
    for res, keep in retention_ms.items():
        if res not in RESOLUTIONS:
            raise ValueError(f"unknown candle resolution {res!r} (one of {', '.join(RESOLUTIONS)})")
        if type(keep) is not int or keep < 1:
            raise ValueError(f"candle retention of {res} must be an integer >= 1 ms, not {keep!r}")
    return dict(retention_ms)


def parse_retention_s(text: str) -> dict[str, int]:
    """``"1s=86400,1m=2592000"`` (seconds, a flag or ``QUOTEGATE_*`` value) as
    ``retention_ms``; ``""`` for none (every candle kept)."""
    out: dict[str, int] = {}
    for item in (x.strip() for x in text.split(",")):
        if not item:
            continue
        res, sep, value = item.partition("=")
        if not sep or not value.strip().isdigit():
            raise ValueError(f"bad candle retention {item!r}: expected RES=SECONDS")
        out[res.strip()] = int(value) * 1000
    return check_retention(out)


class BufferedCandleArchive:
    """Base of the :class:`~gateway.seams.services.CandleArchive` implementations.

    Subclasses implement ``_open``, ``_close``, ``_write`` (one batch and its retention
    cutoffs, all or nothing) and ``_query`` (newest ``limit`` candles in range, any order).
    """

    def __init__(
        self,
        *,
        flush_interval_ms: int,
        pending_max: int,
        retention_ms: Mapping[str, int] = DEFAULT_RETENTION_MS,
    ) -> None:
        if flush_interval_ms < 1:
            raise ValueError("flush_interval_ms must be at least 1")
        self._retention_ms = check_retention(retention_ms)
        self._flush_interval_ms = flush_interval_ms
        self._pending_max = pending_max
        self._pending: dict[CandleKey, dict[str, Any]] = {}
        self._pruned: Cutoffs = {}  # the cutoff of each series' last prune
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

    async def _write(self, batch: dict[CandleKey, dict[str, Any]], cutoffs: Cutoffs) -> None:
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
            cutoffs = self._cutoffs(batch)
            try:
                await self._write(batch, cutoffs)
            except BaseException:
                batch.update(self._pending)  # newer appends win
                self._pending = batch
                raise
            self._pruned.update(cutoffs)
            self.flushes += 1

    def _cutoffs(self, batch: dict[CandleKey, dict[str, Any]]) -> Cutoffs:
        """Per series of the batch with a retention: its newest ``t`` minus the retention, if
        that moved on by a sixteenth of the retention since the series was last pruned (or it
        never was, in this process): a series holds at most 1/16 more than its retention, and
        a prune costs a delete per series about 16 times per retention period, not per flush."""
        retention = self._retention_ms
        cutoffs: Cutoffs = {}
        if not retention:
            return cutoffs
        for symbol, res, t in batch:
            keep = retention.get(res)
            if keep is not None:
                series = (symbol, res)
                cutoff = t - keep
                if cutoff > cutoffs.get(series, cutoff - 1):
                    cutoffs[series] = cutoff
        pruned = self._pruned
        for series, cutoff in list(cutoffs.items()):
            last = pruned.get(series)
            if last is not None and cutoff - last < retention[series[1]] // 16:
                del cutoffs[series]
        return cutoffs

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
