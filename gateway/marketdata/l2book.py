"""The L2 book mirror of one symbol, maintained from engine events alone, with top-D diffs and
the protocol's CRC32 checksum.

The mirror keeps every price level (not just the top D) so that a level entering the top D when
a better one goes is known. Per side the levels are a ``dict`` key -> qty plus a sorted list of
keys (ascending; a bid's key is ``-ticks`` so that "best first" is ascending on both sides).
Inserting or removing a level is one ``bisect`` + list insert/delete; nothing is re-sorted per
event.

Diffs: at the first change since the last published update a side records its old *boundary*
(the key of its D-th level, or +inf when it has fewer) and the old qty of every level that
changes. :meth:`L2Book.diff` then yields, best first, every level whose visible state changed:
changed levels inside the new top D (new or different qty), levels that left the top D or were
removed (qty 0), and unchanged levels that entered or left the top D because others moved.
Applying the update to the previous top D gives exactly the new top D.

Which orders rest, and where, is derived from the events of each command (:mod:`.resting`).
"""

from __future__ import annotations

import math
import zlib
from bisect import bisect_left, bisect_right
from collections.abc import Callable
from typing import Any

from gateway.marketdata.prices import PriceTexts

INF = math.inf
"""The boundary of a side with fewer than D levels: above every key (a price may have any
number of ticks; the engine does not bound it)."""
CHECKSUM_LEVELS = 10


class _LevelTexts(dict[int, str]):
    """``lt[key]`` = ``"price:qty"`` of a level (the checksum's pieces), formatted on demand
    and dropped whenever the level changes."""

    __slots__ = ("_levels", "_texts")

    def __init__(self, texts: PriceTexts, levels: dict[int, int]) -> None:
        super().__init__()
        self._texts = texts
        self._levels = levels

    def __missing__(self, key: int) -> str:
        text = self[key] = f"{self._texts[key]}:{self._levels[key]}"
        return text


class Side:
    """One side of the mirror: levels by key, sorted keys, and the pending-diff bookkeeping."""

    __slots__ = (
        "changed",
        "depth",
        "keys",
        "level_texts",
        "levels",
        "old_boundary",
        "texts",
        "top_text",
    )

    def __init__(self, texts: PriceTexts, depth: int) -> None:
        self.depth = depth
        self.texts = texts  # key -> price text
        self.levels: dict[int, int] = {}
        self.level_texts = _LevelTexts(texts, self.levels)
        self.keys: list[int] = []
        self.changed: dict[int, int] = {}  # key -> qty at the last published update
        self.old_boundary: float = INF  # the key of the D-th level (an int) or INF
        self.top_text: str | None = ""  # checksum text of the top levels (None: stale)

    def add(self, key: int, qty: int) -> None:
        """Add ``qty`` (negative removes) to the level at ``key``."""
        levels = self.levels
        keys = self.keys
        old = levels.get(key, 0)
        changed = self.changed
        if key not in changed:
            if not changed:
                depth = self.depth
                self.old_boundary = keys[depth - 1] if len(keys) >= depth else INF
            changed[key] = old
        if len(keys) < CHECKSUM_LEVELS or key <= keys[CHECKSUM_LEVELS - 1]:
            self.top_text = None
        level_texts = self.level_texts
        if key in level_texts:
            del level_texts[key]
        new = old + qty
        if new > 0:
            levels[key] = new
            if old <= 0:
                keys.insert(bisect_left(keys, key), key)
        elif old > 0:
            del levels[key]
            del keys[bisect_left(keys, key)]

    def checksum_text(self, n: int) -> str:
        """``price:qty,...`` of the best ``n`` levels (cached until they change)."""
        text = self.top_text
        if text is None:
            text = self.top_text = ",".join(map(self.level_texts.__getitem__, self.keys[:n]))
        return text

    def render(self, items: list[tuple[int, int]]) -> list[list[Any]]:
        texts = self.texts
        return [[texts[k], q] for k, q in items]

    def diff(self) -> list[list[Any]]:
        """Visible changes since the last published update as ``[price text, qty]``, best
        first; resets the tracking."""
        changed = self.changed
        if not changed:
            return []
        levels = self.levels
        keys = self.keys
        depth = self.depth
        new_b = keys[depth - 1] if len(keys) >= depth else INF
        old_b = self.old_boundary
        if new_b == old_b and len(changed) == 1:  # the common case: one level, no boundary move
            ((key, old_qty),) = changed.items()
            changed.clear()
            qty = levels.get(key, 0)
            if key > new_b or qty == old_qty:
                return []
            return [[self.texts[key], qty]]
        out: list[tuple[int, int]] = []
        for key, old_qty in changed.items():
            qty = levels.get(key, 0)
            if qty > 0 and key <= new_b:
                if old_qty != qty or key > old_b or old_qty <= 0:
                    out.append((key, qty))
            elif old_qty > 0 and key <= old_b:
                out.append((key, 0))
        if new_b > old_b:  # unchanged levels that entered the top D
            for key in keys[bisect_right(keys, old_b) : bisect_right(keys, new_b)]:
                if key not in changed:
                    out.append((key, levels[key]))
        elif new_b < old_b:  # unchanged levels pushed out of the top D
            for key in keys[bisect_right(keys, new_b) : bisect_right(keys, old_b)]:
                if key not in changed:
                    out.append((key, 0))
        changed.clear()
        if len(out) > 1:
            out.sort()
        texts = self.texts
        return [[texts[k], q] for k, q in out]

    def top(self, n: int) -> list[tuple[int, int]]:
        levels = self.levels
        return [(k, levels[k]) for k in self.keys[:n]]

    def published_top(self, n: int) -> list[tuple[int, int]]:
        """The best ``n`` levels as of the last published update (pending changes undone).

        A level of the published top ``n`` is either changed (its old qty is in ``changed``)
        or unchanged and then among the first ``n + len(changed)`` current keys, so only
        those are looked at."""
        changed = self.changed
        if not changed:
            return self.top(n)
        levels = self.levels
        keys = set(self.keys[: n + len(changed)])
        keys.update(changed)
        out: list[tuple[int, int]] = []
        for key in sorted(keys):
            qty = changed[key] if key in changed else levels[key]
            if qty > 0:
                out.append((key, qty))
                if len(out) == n:
                    break
        return out


class L2Book:
    """Full-depth aggregated levels of one symbol; renders top-D diffs, snapshots, checksums."""

    __slots__ = ("_crc", "asks", "bids", "depth")

    def __init__(
        self, depth: int, price_text: Callable[[int], str], texts: PriceTexts | None = None
    ) -> None:
        self.depth = depth
        self.bids = Side(PriceTexts(price_text, sign=-1), depth)
        self.asks = Side(texts if texts is not None else PriceTexts(price_text), depth)
        self._crc: tuple[str, str, int] = ("", "", zlib.crc32(b"|"))

    def add(self, is_bid: bool, ticks: int, qty: int) -> None:
        """Add ``qty`` (negative removes) at a price in ticks."""
        if is_bid:
            self.bids.add(-ticks, qty)
        else:
            self.asks.add(ticks, qty)

    @property
    def dirty(self) -> bool:
        return bool(self.bids.changed or self.asks.changed)

    def best_bid(self) -> int | None:
        keys = self.bids.keys
        return -keys[0] if keys else None

    def best_ask(self) -> int | None:
        keys = self.asks.keys
        return keys[0] if keys else None

    def depth_levels(self, is_bid: bool, n: int) -> list[tuple[int, int]]:
        """The best ``n`` levels of a side as ``(ticks, qty)`` (like the engine's ``depth``)."""
        if is_bid:
            return [(-k, q) for k, q in self.bids.top(n)]
        return self.asks.top(n)

    def diff(self) -> dict[str, Any] | None:
        """The update ``data`` for every visible change since the last one, or ``None``."""
        b = self.bids
        a = self.asks
        bids = b.diff() if b.changed else []
        asks = a.diff() if a.changed else []
        if not bids and not asks:
            return None
        return {"bids": bids, "asks": asks, "checksum": self.checksum()}

    def snapshot(self) -> dict[str, Any]:
        depth = self.depth
        return {
            "bids": self.bids.render(self.bids.top(depth)),
            "asks": self.asks.render(self.asks.top(depth)),
            "checksum": self.checksum(),
        }

    def published_snapshot(self) -> dict[str, Any]:
        """The snapshot as of the last published update: a conflated stream's pending changes
        are not in it (a client applies the next update on top of it). Derived on demand from
        the pending-diff bookkeeping, so nothing is copied while changes accumulate."""
        b = self.bids
        a = self.asks
        if not b.changed and not a.changed:
            return self.snapshot()
        depth = self.depth
        bids = b.render(b.published_top(depth))
        asks = a.render(a.published_top(depth))
        return {"bids": bids, "asks": asks, "checksum": checksum_of(bids, asks)}

    def checksum(self) -> int:
        b = self.bids
        a = self.asks
        bids = b.top_text
        if bids is None:
            bids = b.checksum_text(min(CHECKSUM_LEVELS, self.depth))
        asks = a.top_text
        if asks is None:
            asks = a.checksum_text(min(CHECKSUM_LEVELS, self.depth))
        cached = self._crc
        if cached[0] is bids and cached[1] is asks:
            return cached[2]
        crc = zlib.crc32(f"{bids}|{asks}".encode())
        self._crc = (bids, asks, crc)
        return crc


def checksum_of(bids: list[list[Any]], asks: list[list[Any]]) -> int:
    """The protocol's checksum of a client-side book (levels ``[price, qty]``, best first)."""
    b = ",".join(f"{p}:{q}" for p, q in bids[:CHECKSUM_LEVELS])
    a = ",".join(f"{p}:{q}" for p, q in asks[:CHECKSUM_LEVELS])
    return zlib.crc32(f"{b}|{a}".encode())
