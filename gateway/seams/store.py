"""The snapshot store: the latest state of every channel, for polling, REST, late subscribers
and resuming clients.

Implementations: :mod:`gateway.seams.store_memory` (one process) and
:mod:`gateway.seams.store_redis` (``redis.asyncio``, shared by every gateway node).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple, Protocol

from gateway.wire.envelope import Envelope
from gateway.wire.errors import UNAVAILABLE, GatewayError

RETRY_AFTER_S = 1
"""The ``Retry-After`` a client gets with a ``503 unavailable`` while the store is down."""


class StoreUnavailable(GatewayError):
    """A read the store could not serve (its server is down or unreachable): ``503
    unavailable`` with ``Retry-After`` at the edge, never a 500."""

    def __init__(self, message: str = "the snapshot store is unavailable; try again") -> None:
        super().__init__(UNAVAILABLE, message)
        self.headers = {"Retry-After": str(RETRY_AFTER_S)}


class Resume(NamedTuple):
    """What a subscriber with ``since`` gets: every missed update in order, or (when the
    history no longer reaches back that far, or the epoch differs) a snapshot. Never both,
    never a partial replay. ``snapshot`` is ``None`` iff ``updates`` is the answer (possibly
    empty when the client is already current)."""

    snapshot: Envelope | None
    updates: Sequence[Envelope]


class SnapshotStore(Protocol):
    """Latest snapshot per channel with its seq, per-channel update history, recent trades and
    candle series.

    Guarantees every implementation keeps (the contract tests check them):

    * **Single writer**: only the publisher writes; any number of gateways read.
    * **Atomic reads**: a snapshot and its seq come from one read; ``resume`` reads the
      history and the snapshot it falls back to in one atomic step.
    * **Bounded**: per channel at most ``history_max`` updates are kept (oldest dropped).
    * **Coalesced writes**: ``record`` is synchronous and cheap; implementations that talk to
      a server buffer it and write pipelined batches on their own task (``flush_interval_ms``),
      so a read may lag the publisher by at most one flush interval. ``flush`` forces it.
    * Snapshots are fetched lazily from the publisher's ``snapshot(channel)`` at flush time,
      so the cost does not grow with the update rate.
    """

    async def start(self) -> None:
        """Connect and start the flush task. Idempotent."""

    async def close(self) -> None:
        """Flush, stop the task, disconnect. Idempotent."""

    def record(self, envelope: Envelope) -> None:
        """Note a published update (history) and mark its channel's snapshot dirty."""

    def record_snapshot(self, envelope: Envelope) -> None:
        """Set a channel's latest snapshot (e.g. after a conflated interval or at start)."""

    async def flush(self) -> None:
        """Write everything buffered now."""

    async def snapshot(self, channel: str) -> Envelope | None:
        """The channel's latest snapshot, or ``None`` if the channel has none yet. Reads
        (``snapshot``, ``resume``, ``channels``) raise :class:`StoreUnavailable` when the
        store's server cannot be reached."""

    async def resume(self, channel: str, epoch: str, seq: int) -> Resume:
        """Everything after ``(epoch, seq)``, or a snapshot (see :class:`Resume`)."""

    async def channels(self) -> list[str]:
        """The channels that have a snapshot."""
