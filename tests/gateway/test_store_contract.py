"""One contract suite for every SnapshotStore (gateway/seams/store.py): memory and a real Redis."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator

import pytest

from gateway.seams.store import Resume, SnapshotStore
from gateway.wire.envelope import SNAPSHOT, Envelope
from tests.gateway.store_support import Publisher, StoreFactory, store_factory

CH = "book.AAPL"
NEVER_MS = 3_600_000  # the background flush never fires by itself: tests flush explicitly


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def store_kind(request: pytest.FixtureRequest) -> str:
    kind: str = request.param
    return kind


@pytest.fixture
async def make_store(
    store_kind: str, request: pytest.FixtureRequest
) -> AsyncIterator[StoreFactory]:
    url = request.getfixturevalue("redis_url") if store_kind == "redis" else None
    async with store_factory(store_kind, url) as make:
        yield make


async def open_store(
    make_store: StoreFactory, store_kind: str, pub: Publisher | None = None, **kwargs: object
) -> SnapshotStore:
    if store_kind == "redis":
        kwargs.setdefault("flush_interval_ms", NEVER_MS)
    store = await make_store(snapshot_provider=pub.snapshot if pub is not None else None, **kwargs)
    if pub is not None:
        pub.store = store
    return store


def payloads(envs: object) -> list[bytes]:
    assert isinstance(envs, list | tuple)
    return [e.payload for e in envs]


async def test_empty_store(make_store: StoreFactory, store_kind: str) -> None:
    store = await open_store(make_store, store_kind)
    assert await store.snapshot(CH) is None
    assert await store.channels() == []
    assert await store.resume(CH, "e1", 0) == Resume(None, ())


async def test_snapshot_and_its_seq_come_from_one_read(
    make_store: StoreFactory, store_kind: str
) -> None:
    pub = Publisher()
    store = await open_store(make_store, store_kind, pub)
    pub.publish_many(CH, 5)
    pub.publish_many("trades.AAPL", 3)
    await store.flush()
    snap = await store.snapshot(CH)
    assert snap is not None
    assert (snap.type, snap.channel, snap.epoch, snap.seq) == (SNAPSHOT, CH, "e1", 5)
    assert snap.data() == {"seq": 5, "values": [1, 2, 3, 4, 5]}
    assert Envelope.parse(snap.payload) == snap
    other = await store.snapshot("trades.AAPL")
    assert other is not None and other.seq == 3
    assert await store.channels() == [CH, "trades.AAPL"]
    pub.publish_many(CH, 2)
    await store.flush()
    snap = await store.snapshot(CH)
    assert snap is not None and snap.seq == 7 and snap.data()["seq"] == 7


async def test_record_snapshot_without_provider(make_store: StoreFactory, store_kind: str) -> None:
    store = await open_store(make_store, store_kind)
    snap = Envelope.build(SNAPSHOT, CH, "e1", 7, 1, {"bids": [], "asks": []})
    store.record_snapshot(snap)
    await store.flush()
    assert await store.snapshot(CH) == snap
    assert await store.channels() == [CH]
    assert await store.resume(CH, "e1", 7) == Resume(None, ())
    assert await store.resume(CH, "e1", 3) == Resume(snap, ())
    assert await store.resume(CH, "other", 7) == Resume(snap, ())


async def test_record_of_a_snapshot_envelope_sets_the_snapshot(
    make_store: StoreFactory, store_kind: str
) -> None:
    store = await open_store(make_store, store_kind)
    snap = Envelope.build(SNAPSHOT, CH, "e1", 4, 1, {"x": 1})
    store.record(snap)
    await store.flush()
    assert await store.snapshot(CH) == snap


async def test_resume_every_since(make_store: StoreFactory, store_kind: str) -> None:
    """Inside the history: exactly the missed updates, in order; outside: a snapshot."""
    pub = Publisher()
    store = await open_store(make_store, store_kind, pub, history_max=20)
    pub.publish_many(CH, 50)  # history keeps 31..50
    await store.flush()
    sent = pub.sent[CH]
    for since in range(-1, 54):
        result = await store.resume(CH, "e1", since)
        if since == 50:
            assert result == Resume(None, ()), since
        elif 30 <= since < 50:
            assert result.snapshot is None, since
            assert payloads(result.updates) == [e.payload for e in sent[since:]], since
        else:
            assert result.snapshot is not None, since
            assert result.snapshot.seq == 50 and result.updates == (), since
            assert result.snapshot.data()["values"] == list(range(1, 51))


async def test_history_is_bounded(make_store: StoreFactory, store_kind: str) -> None:
    pub = Publisher()
    store = await open_store(make_store, store_kind, pub, history_max=10)
    for _ in range(5):
        pub.publish_many(CH, 200)
        await store.flush()
    result = await store.resume(CH, "e1", 990)
    assert [e.seq for e in result.updates] == list(range(991, 1001))
    result = await store.resume(CH, "e1", 989)
    assert result.snapshot is not None and result.snapshot.seq == 1000


async def test_resume_across_flushes(make_store: StoreFactory, store_kind: str) -> None:
    pub = Publisher()
    store = await open_store(make_store, store_kind, pub, history_max=100)
    for _ in range(7):
        pub.publish_many(CH, 9)
        await store.flush()
    for since in range(0, 63):
        result = await store.resume(CH, "e1", since)
        assert result.snapshot is None
        assert [e.seq for e in result.updates] == list(range(since + 1, 64))


async def test_epoch_change_gives_a_snapshot(make_store: StoreFactory, store_kind: str) -> None:
    pub = Publisher(epoch="e1")
    store = await open_store(make_store, store_kind, pub)
    pub.publish_many(CH, 10)
    await store.flush()
    pub.restart("e2")
    pub.publish_many(CH, 3)
    await store.flush()
    for since in (2, 3, 10, 11):
        result = await store.resume(CH, "e1", since)
        assert result.snapshot is not None and result.updates == ()
        assert (result.snapshot.epoch, result.snapshot.seq) == ("e2", 3)
    result = await store.resume(CH, "e2", 0)
    assert result.snapshot is None and [e.seq for e in result.updates] == [1, 2, 3]
    assert all(e.epoch == "e2" for e in result.updates)
    assert await store.resume(CH, "e2", 3) == Resume(None, ())


async def test_a_gap_restarts_the_history(make_store: StoreFactory, store_kind: str) -> None:
    pub = Publisher()
    store = await open_store(make_store, store_kind, pub)
    pub.publish_many(CH, 5)
    await store.flush()
    pub.publish(CH, record=False)
    pub.publish(CH, record=False)  # 6 and 7 never reach the store
    pub.publish_many(CH, 3)
    await store.flush()
    for since in (0, 4, 5, 6):
        result = await store.resume(CH, "e1", since)
        assert result.snapshot is not None and result.snapshot.seq == 10, since
    result = await store.resume(CH, "e1", 7)
    assert [e.seq for e in result.updates] == [8, 9, 10]


async def test_channels_are_independent(make_store: StoreFactory, store_kind: str) -> None:
    pub = Publisher()
    store = await open_store(make_store, store_kind, pub, history_max=5)
    pub.publish_many("book.A", 3)
    pub.publish_many("book.B", 30)
    await store.flush()
    result = await store.resume("book.A", "e1", 0)
    assert [e.seq for e in result.updates] == [1, 2, 3]
    assert all(e.channel == "book.A" for e in result.updates)
    result = await store.resume("book.B", "e1", 0)
    assert result.snapshot is not None and result.snapshot.channel == "book.B"
    assert await store.resume("book.C", "e1", 0) == Resume(None, ())


async def test_snapshots_are_fetched_per_channel_not_per_update(
    make_store: StoreFactory, store_kind: str
) -> None:
    pub = Publisher()
    store = await open_store(make_store, store_kind, pub)
    channels = [f"book.S{i}" for i in range(20)]
    for i in range(2000):
        pub.publish(channels[i % 20])
    await store.flush()
    for ch in channels:
        snap = await store.snapshot(ch)
        assert snap is not None and snap.seq == 100
    assert pub.snapshot_calls <= len(channels)


async def test_reads_stay_consistent_while_writing(
    make_store: StoreFactory, store_kind: str
) -> None:
    """Every read is a valid answer even while the publisher keeps writing and flushing."""
    pub = Publisher()
    store = await open_store(make_store, store_kind, pub, history_max=30)
    rng = random.Random(7)
    done = asyncio.Event()

    async def writer() -> None:
        for _ in range(40):
            pub.publish_many(CH, rng.randint(1, 12))
            await store.flush()
        done.set()

    async def reader() -> int:
        checked = 0
        while not done.is_set() or checked < 10:
            current = pub.seq.get(CH, 0)
            since = rng.randint(max(0, current - 40), current + 1)
            result = await store.resume(CH, "e1", since)
            if result.snapshot is not None:
                assert result.updates == ()
                assert result.snapshot.data()["seq"] == result.snapshot.seq
                assert result.snapshot.data()["values"] == list(range(1, result.snapshot.seq + 1))
            else:
                seqs = [e.seq for e in result.updates]
                assert seqs == list(range(since + 1, since + 1 + len(seqs)))
            snap = await store.snapshot(CH)
            if snap is not None:
                assert snap.data()["seq"] == snap.seq
            checked += 1
            await asyncio.sleep(0)
        return checked

    _, checked = await asyncio.gather(writer(), reader())
    assert checked >= 10


async def test_close_flushes_and_is_idempotent(make_store: StoreFactory, store_kind: str) -> None:
    pub = Publisher()
    store = await open_store(make_store, store_kind, pub)
    await store.start()  # idempotent
    pub.publish_many(CH, 4)
    await store.close()
    await store.close()
    # what was recorded before close is readable afterwards: from the same process's store
    # (memory), or from a new reader of the same Redis
    reader = store if store_kind == "memory" else await open_store(make_store, store_kind)
    snap = await reader.snapshot(CH)
    assert snap is not None and snap.seq == 4
    result = await reader.resume(CH, "e1", 1)
    assert [e.seq for e in result.updates] == [2, 3, 4]


@pytest.mark.redis
async def test_redis_writes_are_coalesced(redis_url: str) -> None:
    """10,000 updates over 100 channels cost a handful of Redis commands, not 10,000."""
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(redis_url)

    async def commands() -> int:
        stats = await client.info("commandstats")
        return sum(int(v["calls"]) for k, v in stats.items() if k not in ("cmdstat_info",))

    try:
        async with store_factory("redis", redis_url) as make:
            pub = Publisher()
            store = await make(snapshot_provider=pub.snapshot, flush_interval_ms=NEVER_MS)
            pub.store = store
            await store.flush()
            before = await commands()
            for i in range(10_000):
                pub.publish(f"book.S{i % 100}")
            await store.flush()
            delta = await commands() - before
            assert 0 < delta <= 10, delta
            snap = await store.snapshot("book.S99")
            assert snap is not None and snap.seq == 100
    finally:
        await client.aclose()


async def test_updates_recorded_during_a_flush_keep_the_history(
    make_store: StoreFactory, store_kind: str
) -> None:
    """The publisher keeps recording while a flush is in flight; nothing is reset or lost."""
    pub = Publisher()
    store = await open_store(make_store, store_kind, pub)
    for round_ in range(5):
        pub.publish_many(CH, 3)
        flushing = asyncio.create_task(store.flush())
        in_flight = 0
        for _ in range(3):
            await asyncio.sleep(0)  # a turn for the flush, then an update while it may run
            in_flight += not flushing.done()
            pub.publish(CH)
        if store_kind == "redis":  # (the memory store's flush has nothing to wait for)
            assert in_flight > 0, "no update came while the flush was in flight"
        await flushing
        await store.flush()
        current = 6 * (round_ + 1)
        result = await store.resume(CH, "e1", 0)
        assert result.snapshot is None
        assert [e.seq for e in result.updates] == list(range(1, current + 1))
        snap = await store.snapshot(CH)
        assert snap is not None and snap.seq == current


async def test_random_histories_against_a_model(make_store: StoreFactory, store_kind: str) -> None:
    """Seeded random runs (bursts, holes, epoch changes, flushes) checked against a model of
    what every store must answer for every since."""
    rng = random.Random(11)
    history_max = 7
    pub = Publisher()
    store = await open_store(make_store, store_kind, pub, history_max=history_max)
    run_first = 1  # first seq of the trailing contiguous recorded run in this epoch
    for step in range(40):
        op = rng.random()
        if op < 0.1:
            pub.restart(f"e{step}")
            run_first = 1
        elif op < 0.25:
            for _ in range(rng.randint(1, 3)):
                pub.publish(CH, record=False)  # a hole the store never sees
            run_first = pub.seq[CH] + 1
        pub.publish_many(CH, rng.randint(1, 9))  # always end on recorded updates
        if rng.random() < 0.7:
            continue  # several bursts per flush
        await store.flush()
        cur = pub.seq[CH]
        first = max(run_first, cur - history_max + 1)
        for since in range(max(-1, cur - 12), cur + 3):
            result = await store.resume(CH, pub.epoch, since)
            if since == cur:
                assert result == Resume(None, ()), (step, since)
            elif first - 1 <= since < cur:
                assert result.snapshot is None, (step, since)
                assert payloads(result.updates) == [e.payload for e in pub.sent[CH][since:]], (
                    step,
                    since,
                )
            else:
                assert result.snapshot is not None and result.updates == (), (step, since)
                assert (result.snapshot.epoch, result.snapshot.seq) == (pub.epoch, cur)
        stale = await store.resume(CH, "no-such-epoch", cur)
        assert stale.snapshot is not None and stale.snapshot.seq == cur
