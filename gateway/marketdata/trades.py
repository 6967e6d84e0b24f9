"""The trades tape of one symbol: recent trades for snapshots, pending ones for the next update."""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from typing import Any

from engine.events import Trade


class TradeTape:
    """The last ``snapshot_max`` published trades (oldest first) and the trades not yet
    published.

    A trade record is the protocol's ``{"id","price","qty","side","ts"}`` (``side`` is the
    aggressor's side). Records are built once and shared by the update and the snapshot.
    The published ones move to the recent list at :meth:`take`, so that the stream's snapshot
    (:meth:`published_snapshot`) stays at the published state while a conflated interval
    accumulates trades, at no cost per trade.
    """

    __slots__ = ("_max", "_recent", "_texts", "pending")

    def __init__(self, snapshot_max: int, texts: Mapping[int, str]) -> None:
        self._max = snapshot_max
        self._recent: deque[dict[str, Any]] = deque(maxlen=snapshot_max)
        self.pending: list[dict[str, Any]] = []
        self._texts = texts

    @property
    def dirty(self) -> bool:
        return bool(self.pending)

    def add(self, ev: Trade) -> None:
        rec = {
            "id": ev.trade_id,
            "price": self._texts[ev.price],
            "qty": ev.qty,
            "side": ev.aggressor,
            "ts": ev.ts,
        }
        self.pending.append(rec)

    def take(self) -> dict[str, Any] | None:
        """The update ``data`` with every pending trade (in order), or ``None``."""
        pending = self.pending
        if not pending:
            return None
        self.pending = []
        self._recent.extend(pending)
        return {"trades": pending}

    def published_snapshot(self) -> dict[str, Any]:
        """The last ``snapshot_max`` published trades, oldest first (the stream's snapshot)."""
        return {"trades": list(self._recent)}

    def snapshot(self) -> dict[str, Any]:
        """The last ``snapshot_max`` trades, pending ones included, oldest first."""
        return {"trades": self.recent(self._max)}

    def recent(self, limit: int) -> list[dict[str, Any]]:
        """The newest ``limit`` trades (pending ones included), oldest first."""
        every = list(self._recent) + self.pending if self.pending else list(self._recent)
        if limit >= len(every):
            return every
        return every[len(every) - limit :] if limit > 0 else []
