"""Candles: one preallocated, bounded ring of buckets per (symbol, resolution).

A bucket is ``t`` (start, milliseconds), open/high/low/close (ticks), volume and trade count,
bucketed by the trade event's ``ts``. Only buckets with trades exist (no empty candles). The
ring is one flat list of ``7 * size`` integers allocated up front; the oldest bucket is
overwritten when it is full. A bucket is final once a later one appears: the series returns the
closed bucket so that the publisher can hand it to ``on_candle_closed`` (the candle archive).

A trade older than the newest bucket (event times going backwards) updates its bucket if the
ring still holds it; if not, it is not reflected in the candles.

A :class:`CandleSet` updates one symbol's series together: a trade touches only the finest
series' newest bucket, and the coarser series catch up when they are read (see its docstring).
"""

from __future__ import annotations

from collections.abc import Mapping
from itertools import pairwise
from typing import Any

_T, _O, _H, _L, _C, _V, _N = range(7)
_W = 7


class CandleSeries:
    """The ring of one (symbol, resolution) and the buckets changed since the last update."""

    __slots__ = (
        "_count",
        "_data",
        "_from_us",
        "_head",
        "_owner",
        "_rendered",
        "_size",
        "_texts",
        "_until_us",
        "_width_us",
        "changed",
    )

    def __init__(self, width_us: int, size: int, texts: Mapping[int, str]) -> None:
        if size < 1:
            raise ValueError("candle ring size must be at least 1")
        self._width_us = width_us
        self._size = size
        self._data = [0] * (_W * size)
        self._head = -1  # slot of the newest bucket
        self._from_us = self._until_us = 0  # the newest bucket's time span (empty: none yet)
        self._count = 0
        self.changed: list[int] = []  # slots changed since the last update, in order
        # rendered bucket dicts per slot, dropped when the slot changes: closed buckets render
        # once, so a 300-candle snapshot is mostly list lookups
        self._rendered: list[dict[str, Any] | None] = [None] * size
        self._texts = texts
        self._owner: CandleSet | None = None  # set by a CandleSet that updates it lazily

    def __len__(self) -> int:
        return self._count

    @property
    def dirty(self) -> bool:
        return bool(self.changed)

    def trade(self, ticks: int, qty: int, ts: int) -> dict[str, Any] | None:
        """Apply a trade; returns the bucket it closed (when it opened a later one), if any."""
        t = (ts - ts % self._width_us) // 1000
        d = self._data
        head = self._head
        if head >= 0:
            i = head * _W
            newest = d[i]
            if t == newest:  # (a CandleSet inlines this case for its finest series)
                self._merge(i, ticks, ticks, ticks, qty, 1)
                self._mark(head)
                return None
            if t < newest:
                self._merge_older(t, ticks, qty)
                return None
        closed = self._render(head) if head >= 0 else None
        head = self._head = (head + 1) % self._size
        if self._count < self._size:
            self._count += 1
        self._from_us = start = ts - ts % self._width_us
        self._until_us = start + self._width_us
        i = head * _W
        d[i] = t
        d[i + _O] = d[i + _H] = d[i + _L] = d[i + _C] = ticks
        d[i + _V] = qty
        d[i + _N] = 1
        self._mark(head)
        return closed

    def _merge(self, i: int, high: int, low: int, close: int, volume: int, count: int) -> None:
        """Merge trades (their high, low, last price, volume and count) into the bucket at
        ``i``."""
        d = self._data
        if high > d[i + _H]:
            d[i + _H] = high
        if low < d[i + _L]:
            d[i + _L] = low
        d[i + _C] = close
        d[i + _V] += volume
        d[i + _N] += count

    def _merge_older(self, t: int, ticks: int, qty: int) -> None:
        d = self._data
        size = self._size
        slot = self._head
        for _ in range(self._count):
            slot = (slot - 1) % size
            bucket = d[slot * _W]
            if bucket == t:
                self._merge(slot * _W, ticks, ticks, ticks, qty, 1)
                self._mark(slot)
                return
            if bucket < t:
                return

    def _mark(self, slot: int) -> None:
        self._rendered[slot] = None
        if slot not in self.changed:
            self.changed.append(slot)

    def _render(self, slot: int) -> dict[str, Any]:
        out = self._rendered[slot]
        if out is not None:
            return out
        d = self._data
        i = slot * _W
        pt = self._texts
        out = self._rendered[slot] = {
            "t": d[i],
            "o": pt[d[i + _O]],
            "h": pt[d[i + _H]],
            "l": pt[d[i + _L]],
            "c": pt[d[i + _C]],
            "v": d[i + _V],
            "n": d[i + _N],
        }
        return out

    def take(self) -> dict[str, Any] | None:
        """The update ``data``: the changed buckets (latest values, oldest first), or ``None``."""
        if self._owner is not None:
            self._owner.sync()
        changed = self.changed
        if not changed:
            return None
        if len(changed) == 1:  # the common case
            slot = changed[0]
            changed.clear()
            return {"candles": [self._render(slot)]}
        self.changed = []
        d = self._data
        changed.sort(key=lambda s: d[s * _W])
        return {"candles": [self._render(s) for s in changed]}

    def latest(self, limit: int) -> list[dict[str, Any]]:
        """The newest ``limit`` buckets, oldest first."""
        if self._owner is not None:
            self._owner.sync()
        n = min(limit, self._count)
        size = self._size
        first = (self._head - n + 1) % size
        return [self._render((first + k) % size) for k in range(n)]

    def newest(self) -> dict[str, Any] | None:
        """The newest (still open) bucket, or ``None``."""
        if self._owner is not None:
            self._owner.sync()
        return self._render(self._head) if self._head >= 0 else None


class CandleSet:
    """The series of one symbol at every resolution, finest first, each width dividing the
    next (1s, 1m, 5m, 15m, 1h, 1d), so that a bucket of the finest series lies inside the
    newest bucket of every coarser one.

    A trade inside the finest series' newest bucket (nearly every trade) updates that bucket
    only: a range check and six stores, no call. The coarser series' newest buckets catch up
    in :meth:`sync`, which merges the finest newest bucket into them (high, low and close are
    idempotent to merge again; volume and count are added by their growth since the last
    sync). Every reader of a coarser series syncs first (its ``take``, ``latest`` and
    ``newest``), as does a trade outside that bucket, which then goes to every series (a new
    bucket, or an older one: event times going backwards). The publisher syncs before it
    reads ``changed`` of a coarser series. So the coarser series cost one merge per read
    instead of one per trade."""

    __slots__ = ("_coarse", "_fine", "_synced_n", "_synced_v", "lagging", "series")

    def __init__(self, series: list[CandleSeries]) -> None:
        if not series:
            raise ValueError("a candle set needs at least one series")
        for finer, coarser in pairwise(series):
            if coarser._width_us % finer._width_us:
                raise ValueError("each candle width must divide the next")
        self.series = series
        self._fine = series[0]
        self._coarse = series[1:]
        for s in self._coarse:
            s._owner = self
        self.lagging = False  # the finest newest bucket has trades the coarser ones lack
        self._synced_v = self._synced_n = 0  # its volume and count at the last sync

    def trade(self, ticks: int, qty: int, ts: int) -> list[tuple[int, dict[str, Any]]] | None:
        """Apply a trade to every series; the buckets it closed as ``(index, candle)``."""
        s = self._fine
        if s._from_us <= ts < s._until_us:  # the finest newest bucket
            head = s._head
            d = s._data
            i = head * _W
            if ticks > d[i + _H]:
                d[i + _H] = ticks
            elif ticks < d[i + _L]:
                d[i + _L] = ticks
            d[i + _C] = ticks
            d[i + _V] += qty
            d[i + _N] += 1
            s._rendered[head] = None
            changed = s.changed
            if head not in changed:
                changed.append(head)
            self.lagging = True
            return None
        self.sync()
        closed: list[tuple[int, dict[str, Any]]] | None = None
        for k, series in enumerate(self.series):
            candle = series.trade(ticks, qty, ts)
            if candle is not None:
                if closed is None:
                    closed = []
                closed.append((k, candle))
        # every series holds the finest newest bucket in full again
        i = s._head * _W
        self._synced_v = s._data[i + _V]
        self._synced_n = s._data[i + _N]
        return closed

    def sync(self) -> None:
        """Bring the coarser series' newest buckets up to the finest one's."""
        if not self.lagging:
            return
        self.lagging = False
        fine = self._fine
        d = fine._data
        i = fine._head * _W
        high = d[i + _H]
        low = d[i + _L]
        close = d[i + _C]
        volume = d[i + _V]
        count = d[i + _N]
        dv = volume - self._synced_v
        dn = count - self._synced_n
        self._synced_v = volume
        self._synced_n = count
        for s in self._coarse:
            head = s._head
            s._merge(head * _W, high, low, close, dv, dn)
            s._mark(head)
