"""MemorySnapshotStore specifics (the shared behaviour is in test_store_contract.py)."""

from __future__ import annotations

from gateway.seams.store import Resume
from gateway.seams.store_config import StoreConfig
from gateway.seams.store_memory import MemorySnapshotStore
from gateway.wire.envelope import SNAPSHOT, Envelope
from tests.gateway.store_support import Publisher

CH = "ticker.AAPL"


async def test_snapshot_is_fetched_lazily_once_per_change() -> None:
    pub = Publisher()
    store = MemorySnapshotStore(StoreConfig(history_max=10), snapshot_provider=pub.snapshot)
    pub.store = store
    pub.publish_many(CH, 1000)
    assert pub.snapshot_calls == 0  # recording never asks the publisher
    first = await store.snapshot(CH)
    second = await store.snapshot(CH)
    assert first is not None and first == second and first.seq == 1000
    assert pub.snapshot_calls == 1
    pub.publish(CH)
    latest = await store.snapshot(CH)
    assert latest is not None and latest.seq == 1001 and pub.snapshot_calls == 2


async def test_reads_are_current_without_flush() -> None:
    pub = Publisher()
    store = MemorySnapshotStore(snapshot_provider=pub.snapshot)
    pub.store = store
    pub.publish_many(CH, 3)
    result = await store.resume(CH, "e1", 1)
    assert [e.seq for e in result.updates] == [2, 3]


async def test_provider_snapshot_of_another_epoch_is_not_used() -> None:
    store = MemorySnapshotStore(
        snapshot_provider=lambda ch: Envelope.build(SNAPSHOT, ch, "old", 1, 1, {})
    )
    fixed = Envelope.build(SNAPSHOT, CH, "e1", 5, 1, {"v": 1})
    store.record_snapshot(fixed)
    store.record(Envelope.build("update", CH, "e1", 6, 1, {"v": 2}))
    assert await store.snapshot(CH) == fixed


async def test_older_snapshot_does_not_rewind_the_stream() -> None:
    pub = Publisher()
    store = MemorySnapshotStore(snapshot_provider=pub.snapshot)
    pub.store = store
    pub.publish_many(CH, 5)
    store.record_snapshot(Envelope.build(SNAPSHOT, CH, "e1", 2, 1, {"stale": True}))
    assert await store.resume(CH, "e1", 5) == Resume(None, ())
    snap = await store.snapshot(CH)
    assert snap is not None and snap.seq == 5  # the provider replaced the stale one
    result = await store.resume(CH, "e1", 3)
    assert [e.seq for e in result.updates] == [4, 5]


async def test_lifecycle_is_a_no_op() -> None:
    store = MemorySnapshotStore()
    await store.start()
    await store.flush()
    await store.close()
    await store.close()
    assert await store.channels() == []
