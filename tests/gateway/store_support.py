"""Test support for the snapshot store suites: a tiny real publisher and store factories."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from gateway.seams.store import SnapshotStore
from gateway.wire.envelope import SNAPSHOT, UPDATE, Envelope


class Publisher:
    """Publishes numbered updates on channels and serves their snapshots, like the real
    publisher does for the store: ``record`` on every update, ``snapshot(channel)`` on demand.

    A channel's snapshot data is ``{"seq": n, "values": [...every value so far]}``; an update's
    data is ``{"seq": n, "value": v}``.
    """

    def __init__(self, store: SnapshotStore | None = None, *, epoch: str = "e1") -> None:
        self.store = store
        self.epoch = epoch
        self.seq: dict[str, int] = {}
        self.values: dict[str, list[Any]] = {}
        self.sent: dict[str, list[Envelope]] = {}
        self.snapshot_calls = 0

    def publish(self, channel: str, value: Any = None, *, record: bool = True) -> Envelope:
        seq = self.seq.get(channel, 0) + 1
        self.seq[channel] = seq
        value = seq if value is None else value
        self.values.setdefault(channel, []).append(value)
        env = Envelope.build(
            UPDATE,
            channel,
            self.epoch,
            seq,
            1_700_000_000_000_000 + seq,
            {"seq": seq, "value": value},
        )
        self.sent.setdefault(channel, []).append(env)
        if record and self.store is not None:
            self.store.record(env)
        return env

    def publish_many(self, channel: str, n: int) -> None:
        for _ in range(n):
            self.publish(channel)

    def restart(self, epoch: str) -> None:
        """A publisher restarted without its journal: new epoch, seqs from 1 again."""
        self.epoch = epoch
        self.seq.clear()
        self.values.clear()
        self.sent.clear()

    def snapshot(self, channel: str) -> Envelope | None:
        self.snapshot_calls += 1
        if channel not in self.seq:
            return None
        seq = self.seq[channel]
        data = {"seq": seq, "values": list(self.values[channel])}
        return Envelope.build(SNAPSHOT, channel, self.epoch, seq, 1_700_000_000_000_000 + seq, data)


StoreFactory = Callable[..., Awaitable[SnapshotStore]]


@asynccontextmanager
async def store_factory(kind: str, redis_url: str | None) -> AsyncIterator[StoreFactory]:
    """Yield ``make(history_max=.., snapshot_provider=.., **redis_options)`` for ``kind``
    (``memory`` or ``redis``); every store made is closed at the end."""
    made: list[SnapshotStore] = []

    async def make(
        *,
        history_max: int = 1000,
        snapshot_provider: Callable[[str], Envelope | None] | None = None,
        **options: Any,
    ) -> SnapshotStore:
        store: SnapshotStore
        if kind == "memory":
            from gateway.seams.store_config import StoreConfig
            from gateway.seams.store_memory import MemorySnapshotStore

            store = MemorySnapshotStore(
                StoreConfig(history_max=history_max), snapshot_provider=snapshot_provider
            )
        else:
            from gateway.seams.store_config import RedisStoreConfig
            from gateway.seams.store_redis import RedisSnapshotStore

            assert redis_url is not None
            config = RedisStoreConfig(url=redis_url, history_max=history_max, **options)
            store = RedisSnapshotStore(config, snapshot_provider=snapshot_provider)
        await store.start()
        made.append(store)
        return store

    try:
        yield make
    finally:
        for store in reversed(made):
            await store.close()
