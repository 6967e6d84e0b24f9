"""The snapshot store of one process: plain dicts and bounded deques, no I/O.

Every read is synchronous inside one event-loop step, so a snapshot and its seq, and a resume's
history and fallback snapshot, are always consistent. The latest snapshot is fetched lazily from
the publisher (``snapshot_provider``) on the first read after a change, so recording an update
costs one deque append whatever the update rate.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from itertools import islice

from gateway.seams.store import Resume
from gateway.seams.store_config import SnapshotProvider, StoreConfig
from gateway.wire.envelope import SNAPSHOT, Envelope

_NO_UPDATES: tuple[Envelope, ...] = ()


@dataclass
class _Channel:
    """One channel's state. ``history`` holds contiguous seqs (oldest first)."""

    epoch: str
    history: deque[Envelope]
    snapshot: Envelope | None = None
    dirty: bool = False
    last_seq: int = field(default=0)


class MemorySnapshotStore:
    """:class:`~gateway.seams.store.SnapshotStore` in process memory.

    ``snapshot_provider`` is the publisher's ``snapshot(channel)``; without one, snapshots come
    only from :meth:`record_snapshot`.
    """

    def __init__(
        self,
        config: StoreConfig | None = None,
        *,
        snapshot_provider: SnapshotProvider | None = None,
    ) -> None:
        self._config = config or StoreConfig()
        self._provider = snapshot_provider
        self._channels: dict[str, _Channel] = {}

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def flush(self) -> None:
        return None

    # --- writes (the publisher) -------------------------------------------------------------

    def _state(self, envelope: Envelope) -> _Channel:
        state = self._channels.get(envelope.channel)
        if state is None:
            state = _Channel(envelope.epoch, deque(maxlen=self._config.history_max))
            self._channels[envelope.channel] = state
        elif state.epoch != envelope.epoch:
            # A new stream: the old history and snapshot describe another epoch.
            state.epoch = envelope.epoch
            state.history.clear()
            state.snapshot = None
            state.last_seq = 0
        return state

    def record(self, envelope: Envelope) -> None:
        if envelope.type == SNAPSHOT:
            self.record_snapshot(envelope)
            return
        state = self._state(envelope)
        if state.history and envelope.seq != state.last_seq + 1:
            # Keep the history contiguous: a hole would make a replay partial.
            state.history.clear()
        state.history.append(envelope)
        state.last_seq = envelope.seq
        state.dirty = True

    def record_snapshot(self, envelope: Envelope) -> None:
        state = self._state(envelope)
        if state.history and envelope.seq > state.last_seq:
            # The snapshot jumped past the history: updates in between were never recorded.
            state.history.clear()
        state.snapshot = envelope
        # An older snapshot than the history's end is stale: ask the provider at the next read.
        state.dirty = envelope.seq < state.last_seq
        state.last_seq = max(state.last_seq, envelope.seq)

    # --- reads --------------------------------------------------------------------------------

    def _current(self, channel: str, state: _Channel) -> Envelope | None:
        if state.dirty and self._provider is not None:
            fresh = self._provider(channel)
            if fresh is not None and fresh.epoch == state.epoch:
                if fresh.seq > state.last_seq:
                    # Updates the store never saw: the history cannot reach past them.
                    state.history.clear()
                    state.last_seq = fresh.seq
                state.snapshot = fresh
                state.dirty = False
        return state.snapshot

    async def snapshot(self, channel: str) -> Envelope | None:
        state = self._channels.get(channel)
        if state is None:
            return None
        return self._current(channel, state)

    async def resume(self, channel: str, epoch: str, seq: int) -> Resume:
        state = self._channels.get(channel)
        if state is None:
            return Resume(None, _NO_UPDATES)
        snapshot = self._current(channel, state)
        current = state.last_seq
        if epoch == state.epoch:
            if seq == current:
                return Resume(None, _NO_UPDATES)
            history = state.history
            if history and history[0].seq - 1 <= seq < current:
                start = seq - history[0].seq + 1
                return Resume(None, list(islice(history, start, None)))
        if snapshot is None:
            # Nothing to resync from yet: the client stays as it is until the first snapshot.
            return Resume(None, _NO_UPDATES)
        return Resume(snapshot, _NO_UPDATES)

    async def channels(self) -> list[str]:
        return sorted(
            name
            for name, state in self._channels.items()
            if state.snapshot is not None or (state.dirty and self._provider is not None)
        )
