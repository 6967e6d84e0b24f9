"""RedisSnapshotStore specifics: key layout, bounds, restarts, outages (contract suite aside)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from gateway.seams.store import Resume, StoreUnavailable
from gateway.seams.store_config import RedisStoreConfig
from gateway.seams.store_redis import FencedError, RedisSnapshotStore
from gateway.wire.envelope import SNAPSHOT, UPDATE, Envelope
from tests.gateway.store_support import Publisher
from tests.services import RedisServer, RedisServerConfig, free_port

pytestmark = pytest.mark.redis

CH = "book.AAPL"
NEVER_MS = 3_600_000


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    c = aioredis.Redis.from_url(redis_url)
    yield c
    await c.aclose()


async def key_names(client: aioredis.Redis, pattern: str) -> list[str]:
    return [k.decode() if isinstance(k, bytes) else k for k in await client.keys(pattern)]


def make(url: str, pub: Publisher | None = None, **kw: object) -> RedisSnapshotStore:
    kw.setdefault("flush_interval_ms", NEVER_MS)
    store = RedisSnapshotStore(
        RedisStoreConfig(url=url, **kw),  # type: ignore[arg-type]
        snapshot_provider=pub.snapshot if pub else None,
    )
    if pub is not None:
        pub.store = store
    return store


async def test_key_layout_and_bounded_history(redis_url: str, client: aioredis.Redis) -> None:
    pub = Publisher()
    store = make(redis_url, pub, history_max=10, key_prefix="t:")
    await store.start()
    try:
        for _ in range(4):
            pub.publish_many(CH, 250)
            await store.flush()
        keys = sorted(await key_names(client, "*"))
        history = [f"t:{{{CH}}}:h:{seq}" for seq in range(991, 1001)]
        assert keys == sorted([*history, f"t:{{{CH}}}:meta", f"t:{{{CH}}}:snap", "t:channels"])
        assert await client.get(f"t:{{{CH}}}:meta") == b"1000 991 e1"
        snap = await client.get(f"t:{{{CH}}}:snap")
        assert isinstance(snap, bytes) and Envelope.parse(snap).seq == 1000
    finally:
        await store.close()


async def test_epoch_change_removes_the_old_history(redis_url: str, client: aioredis.Redis) -> None:
    pub = Publisher()
    store = make(redis_url, pub, key_prefix="t:")
    await store.start()
    try:
        pub.publish_many(CH, 20)
        await store.flush()
        pub.restart("e2")
        pub.publish_many(CH, 2)
        await store.flush()
        keys = set(await key_names(client, f"t:{{{CH}}}:h:*"))
        assert keys == {f"t:{{{CH}}}:h:1", f"t:{{{CH}}}:h:2"}
        assert await client.get(f"t:{{{CH}}}:h:1") == pub.sent[CH][0].payload
    finally:
        await store.close()


async def test_restarted_writer_continues_the_history(redis_url: str) -> None:
    pub = Publisher()
    first = make(redis_url, pub)
    await first.start()
    pub.publish_many(CH, 5)
    await first.close()
    second = make(redis_url, pub)  # same epoch: a publisher restored from its journal
    await second.start()
    try:
        pub.publish_many(CH, 3)
        await second.flush()
        result = await second.resume(CH, "e1", 2)
        assert [e.seq for e in result.updates] == [3, 4, 5, 6, 7, 8]
    finally:
        await second.close()


async def test_readers_on_other_nodes(redis_url: str) -> None:
    pub = Publisher()
    writer = make(redis_url, pub)
    reader = make(redis_url)
    await writer.start()
    await reader.start()
    try:
        pub.publish_many(CH, 3)
        assert await reader.snapshot(CH) is None  # buffered until the flush
        await writer.flush()
        snap = await reader.snapshot(CH)
        assert snap is not None and snap.seq == 3
        assert [e.seq for e in (await reader.resume(CH, "e1", 0)).updates] == [1, 2, 3]
        assert await reader.channels() == [CH]
    finally:
        await reader.close()
        await writer.close()


async def test_key_prefixes_are_isolated(redis_url: str) -> None:
    a_pub, b_pub = Publisher(), Publisher()
    a = make(redis_url, a_pub, key_prefix="a:")
    b = make(redis_url, b_pub, key_prefix="b:")
    await a.start()
    await b.start()
    try:
        a_pub.publish_many(CH, 2)
        b_pub.publish_many("trades.X", 4)
        await a.flush()
        await b.flush()
        assert await a.channels() == [CH]
        assert await b.channels() == ["trades.X"]
        assert await b.snapshot(CH) is None
    finally:
        await a.close()
        await b.close()


async def test_a_missing_history_entry_gives_a_snapshot_not_a_partial_replay(
    redis_url: str, client: aioredis.Redis
) -> None:
    pub = Publisher()
    store = make(redis_url, pub, key_prefix="t:")
    await store.start()
    try:
        pub.publish_many(CH, 10)
        await store.flush()
        await client.delete(f"t:{{{CH}}}:h:6")  # e.g. evicted under maxmemory
        result = await store.resume(CH, "e1", 2)
        assert result.snapshot is not None and result.snapshot.seq == 10
        assert result.updates == ()
        result = await store.resume(CH, "e1", 6)
        assert [e.seq for e in result.updates] == [7, 8, 9, 10]
    finally:
        await store.close()


async def test_private_channel_keeps_its_internal_name(redis_url: str) -> None:
    store = make(redis_url)
    await store.start()
    try:
        ch = "orders.alice"
        snap = Envelope.build(SNAPSHOT, ch, "e1", 1, 1, {"open": []}, wire_channel="orders")
        store.record_snapshot(snap)
        store.record(Envelope.build(UPDATE, ch, "e1", 2, 2, {"x": 1}, wire_channel="orders"))
        await store.flush()
        got = await store.snapshot(ch)
        assert got == snap and got.channel == ch
        result = await store.resume(ch, "e1", 1)
        assert [(e.channel, e.seq) for e in result.updates] == [(ch, 2)]
    finally:
        await store.close()


async def test_background_flush(redis_url: str) -> None:
    pub = Publisher()
    store = make(redis_url, pub, flush_interval_ms=5)
    await store.start()
    try:
        pub.publish_many(CH, 7)
        for _ in range(2000):
            snap = await store.snapshot(CH)
            if snap is not None:
                break
            await asyncio.sleep(0.005)
        assert snap is not None and snap.seq == 7
        assert store.flushes >= 1
    finally:
        await store.close()


async def test_updates_survive_an_outage() -> None:
    """A flush against an unreachable Redis keeps the buffer; the next one writes it all."""
    port = free_port()
    pub = Publisher()
    store = make(f"redis://127.0.0.1:{port}/0", pub, socket_timeout_s=1.0)
    await store.start()
    server = RedisServer(RedisServerConfig(port=port))
    try:
        pub.publish_many(CH, 3)
        with pytest.raises((RedisConnectionError, OSError)):
            await store.flush()
        pub.publish_many(CH, 2)
        server.start()
        await store.flush()
        result = await store.resume(CH, "e1", 0)
        assert [e.seq for e in result.updates] == [1, 2, 3, 4, 5]
        assert await store.resume(CH, "e1", 5) == Resume(None, ())
    finally:
        await store.close()
        server.stop()


async def test_redis_back_empty_gets_every_channel_rebuilt() -> None:
    """Redis killed and restarted empty: reads raise StoreUnavailable (503 at the edge), and the
    first flush after it rebuilds every channel ever written, quiet ones included: snapshot,
    history bound (meta) and the channel set."""
    port = free_port()
    pub = Publisher()
    store = make(f"redis://127.0.0.1:{port}/0", pub, socket_timeout_s=1.0)
    server = RedisServer(RedisServerConfig(port=port))
    server.start()
    await store.start()
    try:
        pub.publish_many(CH, 3)
        pub.publish_many("orders.alice", 2)  # a quiet channel: nothing new after the outage
        await store.flush()
        server.stop()
        with pytest.raises(StoreUnavailable):
            await store.snapshot(CH)
        with pytest.raises(StoreUnavailable):
            await store.resume(CH, "e1", 1)
        with pytest.raises(StoreUnavailable):
            await store.channels()
        pub.publish_many(CH, 2)
        with pytest.raises((RedisConnectionError, OSError)):
            await store.flush()
        assert store.writer_error is not None
        server.start()  # empty
        await store.flush()
        assert store.writer_error is None and store.rebuilds == 1
        assert await store.channels() == sorted([CH, "orders.alice"])
        quiet = await store.snapshot("orders.alice")
        assert quiet is not None and quiet.seq == 2
        busy = await store.snapshot(CH)
        assert busy is not None and busy.seq == 5
        # the updates buffered during the outage are history again; older ones give a snapshot
        assert [e.seq for e in (await store.resume(CH, "e1", 3)).updates] == [4, 5]
        assert (await store.resume(CH, "e1", 1)).snapshot is not None
        assert await store.resume("orders.alice", "e1", 2) == Resume(None, ())
    finally:
        await store.close()
        server.stop()


async def test_redis_emptied_without_a_failed_write_is_noticed_and_rebuilt(
    redis_url: str, client: aioredis.Redis
) -> None:
    pub = Publisher()
    store = make(redis_url, pub, flush_interval_ms=10, verify_interval_ms=50)
    await store.start()
    try:
        pub.publish_many(CH, 3)
        pub.publish_many("orders.alice", 1)
        await store.flush()
        await client.flushdb()  # gone, and no write failed
        for _ in range(200):
            if store.rebuilds:
                break
            await asyncio.sleep(0.01)
        assert store.rebuilds == 1
        assert await store.channels() == sorted([CH, "orders.alice"])
        snap = await store.snapshot("orders.alice")
        assert snap is not None and snap.seq == 1
    finally:
        await store.close()


async def test_pending_buffer_is_bounded() -> None:
    """Past ``pending_max`` buffered updates the oldest are dropped and the history restarts
    after the hole, so resuming across it gives a snapshot."""
    port = free_port()
    pub = Publisher()
    store = make(f"redis://127.0.0.1:{port}/0", pub, socket_timeout_s=1.0, pending_max=5)
    await store.start()
    server = RedisServer(RedisServerConfig(port=port))
    try:
        pub.publish_many(CH, 12)
        with pytest.raises((RedisConnectionError, OSError)):
            await store.flush()
        server.start()
        await store.flush()
        assert [e.seq for e in (await store.resume(CH, "e1", 7)).updates] == [8, 9, 10, 11, 12]
        result = await store.resume(CH, "e1", 6)
        assert result.snapshot is not None and result.snapshot.seq == 12
    finally:
        await store.close()
        server.stop()


async def test_reads_before_start_are_an_error() -> None:
    store = RedisSnapshotStore(RedisStoreConfig(url="redis://127.0.0.1:1/0"))
    with pytest.raises(RuntimeError):
        await store.snapshot(CH)


async def test_a_rewound_stream_drops_the_entries_past_it(
    redis_url: str, client: aioredis.Redis
) -> None:
    store = make(redis_url, key_prefix="t:", history_max=5)
    await store.start()

    def update(seq: int) -> Envelope:
        return Envelope.build(UPDATE, CH, "e1", seq, seq, {"seq": seq})

    try:
        for seq in range(1, 11):
            store.record(update(seq))
        await store.flush()
        for seq in (4, 5, 6):  # same epoch, lower seqs: the history restarts at 4
            store.record(update(seq))
        await store.flush()
        keys = sorted(await key_names(client, f"t:{{{CH}}}:h:*"))
        assert keys == [f"t:{{{CH}}}:h:{seq}" for seq in (4, 5, 6)]
        assert await client.get(f"t:{{{CH}}}:meta") == b"6 4 e1"
        result = await store.resume(CH, "e1", 3)
        assert [e.seq for e in result.updates] == [4, 5, 6]
    finally:
        await store.close()


async def test_a_failed_transaction_keeps_the_batch(redis_url: str, client: aioredis.Redis) -> None:
    """An error reply inside EXEC fails the flush; the batch is retried, not lost."""
    pub = Publisher()
    store = make(redis_url, pub, key_prefix="t:")
    await store.start()
    try:
        await client.set("t:channels", b"not a set")  # makes the SADD fail with WRONGTYPE
        pub.publish_many(CH, 3)
        with pytest.raises(ResponseError):
            await store.flush()
        await client.delete("t:channels")
        pub.publish(CH)
        await store.flush()
        assert [e.seq for e in (await store.resume(CH, "e1", 0)).updates] == [1, 2, 3, 4]
        assert await store.channels() == [CH]
    finally:
        await store.close()


def test_config_is_validated() -> None:
    for bad in ({"flush_duty_max_pct": 0}, {"flush_interval_ms": 0}, {"history_max": 0}):
        with pytest.raises(ValueError):
            RedisStoreConfig(**bad)  # type: ignore[arg-type]


async def test_a_burst_longer_than_the_history_keeps_only_its_tail(
    redis_url: str, client: aioredis.Redis
) -> None:
    pub = Publisher()
    store = make(redis_url, pub, key_prefix="t:", history_max=4)
    await store.start()
    try:
        pub.publish_many(CH, 3)
        await store.flush()
        pub.publish_many(CH, 50)  # one flush: 50 updates, only 50..53 are kept
        await store.flush()
        keys = sorted(await key_names(client, f"t:{{{CH}}}:h:*"))
        assert keys == sorted(f"t:{{{CH}}}:h:{seq}" for seq in range(50, 54))
        assert [e.seq for e in (await store.resume(CH, "e1", 49)).updates] == [50, 51, 52, 53]
    finally:
        await store.close()


async def test_no_history_key_is_ever_orphaned(redis_url: str, client: aioredis.Redis) -> None:
    """Across random bursts, holes, rewinds and epoch changes, the stored history keys are
    exactly ``first..cur`` of the meta."""
    import random

    rng = random.Random(5)
    pub = Publisher()
    store = make(redis_url, pub, key_prefix="t:", history_max=6)
    await store.start()
    try:
        for step in range(120):
            op = rng.random()
            if op < 0.08:
                pub.restart(f"e{step}")
            elif op < 0.2:
                pub.publish(CH, record=False)
            elif op < 0.25 and pub.seq.get(CH, 0) > 3:
                pub.seq[CH] -= 3  # a rewind in the same epoch
            pub.publish_many(CH, rng.randint(1, 10))
            if rng.random() < 0.5:
                continue
            await store.flush()
            meta = await client.get(f"t:{{{CH}}}:meta")
            assert isinstance(meta, bytes)
            cur, first, epoch = meta.decode().split(" ", 2)
            assert (epoch, int(cur)) == (pub.epoch, pub.seq[CH])
            expected = {f"t:{{{CH}}}:h:{seq}" for seq in range(int(first), int(cur) + 1)}
            assert set(await key_names(client, f"t:{{{CH}}}:h:*")) == expected, step
    finally:
        await store.close()


async def test_a_fenced_store_writes_only_while_its_token_is_current(
    redis_url: str, client: aioredis.Redis
) -> None:
    """The engine leader's fencing: a batch is refused whole once another token is current,
    and kept for a retry (a deposed writer never overwrites its successor)."""
    pub = Publisher()
    store = make(redis_url, pub)
    store.fence = ("qg:fence", 7)
    await store.start()
    try:
        await client.set("qg:fence", 7)
        pub.publish_many(CH, 2)
        await store.flush()
        await client.set("qg:fence", 8)  # a new leader took over
        pub.publish_many(CH, 2)
        with pytest.raises(FencedError):
            await store.flush()
        assert [e.seq for e in (await store.resume(CH, "e1", 0)).updates] == [1, 2]
        store.fence = ("qg:fence", 8)
        await store.flush()  # the kept batch goes once the token is ours again
        assert [e.seq for e in (await store.resume(CH, "e1", 0)).updates] == [1, 2, 3, 4]
    finally:
        await store.close()


async def test_before_write_runs_before_each_batch(redis_url: str) -> None:
    pub = Publisher()
    store = make(redis_url, pub)
    seen: list[int] = []

    async def durable() -> None:
        seen.append(len(await store.channels()))  # what Redis holds before the batch

    store.before_write = durable
    await store.start()
    try:
        pub.publish_many(CH, 3)
        await store.flush()
        assert seen == [0]
        assert await store.positions([CH, "book.NONE"]) == {CH: ("e1", 3)}
    finally:
        await store.close()

