"""Hub: subscribe (snapshot or resume) then live with no gap and no duplicate, fan-out,
unsubscribe/disconnect, isolation of a blocked client."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator

import pytest

from gateway.config import HubConfig
from gateway.fanout.hub import Hub
from gateway.metrics import Metrics
from gateway.seams.bus import Listener
from gateway.seams.bus_memory import MemoryBus
from gateway.seams.store import Resume
from gateway.seams.store_memory import MemorySnapshotStore
from gateway.wire.envelope import SNAPSHOT, UPDATE, Envelope
from gateway.wire.errors import TooManyConnections
from tests.gateway.conftest import EPOCH, FakePublisher, RecordingTransport, Stack, make_stack
from tests.waiting import until


def seqs(envelopes: list[Envelope]) -> list[tuple[str, int]]:
    return [(e.type, e.seq) for e in envelopes]


def last_seq(transport: RecordingTransport) -> int | None:
    envelopes = transport.envelopes()
    return envelopes[-1].seq if envelopes else None


def assert_gap_free(envelopes: list[Envelope]) -> None:
    for prev, cur in itertools.pairwise(envelopes):
        assert cur.type == SNAPSHOT or cur.seq == prev.seq + 1, seqs(envelopes)


@pytest.fixture
async def hub(stack: Stack) -> AsyncIterator[Hub]:
    h = Hub(HubConfig(), bus=stack.bus, store=stack.store, metrics=stack.metrics)
    await h.start()
    yield h
    await h.close()


async def test_snapshot_then_live(hub: Hub, stack: Stack) -> None:
    transport = RecordingTransport()
    conn = hub.connect(transport)
    stack.publisher.emit_many("book.AAPL", 4)  # seq 5 now
    await hub.subscribe(conn, ["book.AAPL"], {})
    stack.publisher.emit_many("book.AAPL", 3)
    await transport.wait_for(lambda: len(transport.envelopes()) == 4)
    assert seqs(transport.envelopes()) == [(SNAPSHOT, 5), (UPDATE, 6), (UPDATE, 7), (UPDATE, 8)]
    assert hub.subscribers("book.AAPL") == 1


async def test_resume_inside_history_sends_exactly_the_missed(hub: Hub, stack: Stack) -> None:
    stack.publisher.emit_many("book.AAPL", 20)  # seq 21
    for since in (1, 10, 20):
        transport = RecordingTransport()
        conn = hub.connect(transport)
        await hub.subscribe(conn, ["book.AAPL"], {"book.AAPL": ("ep1", since)})
        await transport.wait_for(lambda: len(transport.envelopes()) == 21 - since)  # noqa: B023
        assert seqs(transport.envelopes()) == [(UPDATE, s) for s in range(since + 1, 22)]
        await hub.disconnect(conn)


async def test_resume_when_current_sends_nothing_then_live(hub: Hub, stack: Stack) -> None:
    transport = RecordingTransport()
    conn = hub.connect(transport)
    await hub.subscribe(conn, ["book.AAPL"], {"book.AAPL": ("ep1", 1)})
    stack.publisher.emit("book.AAPL")
    await transport.wait_for(lambda: len(transport.envelopes()) == 1)
    assert seqs(transport.envelopes()) == [(UPDATE, 2)]


async def test_resume_other_epoch_gets_snapshot(hub: Hub, stack: Stack) -> None:
    transport = RecordingTransport()
    conn = hub.connect(transport)
    await hub.subscribe(conn, ["book.AAPL"], {"book.AAPL": ("gone", 1)})
    await transport.wait_for(lambda: len(transport.envelopes()) == 1)
    assert seqs(transport.envelopes()) == [(SNAPSHOT, 1)]


class RacingStore(MemorySnapshotStore):
    """A store whose reads race the live stream: while a read is in flight the publisher
    emits ``during`` updates; ``stale_by`` makes the read return an older state (a store that
    lags the bus)."""

    publisher: FakePublisher
    during = 0
    stale_by = 0

    async def snapshot(self, channel: str) -> Envelope | None:
        snap = await super().snapshot(channel)
        for _ in range(self.during):
            self.publisher.emit(channel)
        await asyncio.sleep(0)
        if snap is not None and self.stale_by:
            old = snap.seq - self.stale_by
            return Envelope.build(SNAPSHOT, channel, snap.epoch, old, snap.ts, {"seq": old})
        return snap


def racing_stack(during: int, stale_by: int) -> Stack:
    stack = make_stack()
    store = RacingStore(snapshot_provider=stack.publisher.snapshot)
    store.publisher = stack.publisher
    store.during = during
    store.stale_by = stale_by
    stack.store = store
    stack.publisher.store = store
    return stack


@pytest.mark.parametrize(("during", "stale_by"), [(0, 0), (3, 0), (3, 2), (0, 2)])
async def test_no_gap_no_duplicate_when_the_store_read_races_live(
    during: int, stale_by: int
) -> None:
    stack = racing_stack(during, stale_by)
    stack.publisher.emit_many("book.AAPL", 10)
    hub = Hub(
        HubConfig(resume_retry_delay_s=0.001), bus=stack.bus, store=stack.store, metrics=Metrics()
    )
    await hub.start()
    transport = RecordingTransport()
    conn = hub.connect(transport)
    await hub.subscribe(conn, ["book.AAPL"], {})
    stack.publisher.emit_many("book.AAPL", 5)
    last = stack.publisher.seqs["book.AAPL"]
    await transport.wait_for(lambda: last_seq(transport) == last)
    got = transport.envelopes()
    assert got[0].type == SNAPSHOT
    assert_gap_free(got)
    assert [e.seq for e in got] == list(range(got[0].seq, last + 1))
    await hub.close()


async def test_fan_out_and_unsubscribe(hub: Hub, stack: Stack) -> None:
    a, b = RecordingTransport(), RecordingTransport()
    ca, cb = hub.connect(a), hub.connect(b)
    await hub.subscribe(ca, ["book.AAPL", "trades.AAPL"], {})
    await hub.subscribe(cb, ["book.AAPL"], {})
    stack.publisher.emit("book.AAPL")
    stack.publisher.emit("trades.AAPL")
    await a.wait_for(lambda: len(a.envelopes()) == 4)
    await b.wait_for(lambda: len(b.envelopes()) == 2)
    assert a.envelopes("book.AAPL")[-1] is b.envelopes()[-1]  # the same encoded envelope
    hub.unsubscribe(ca, ["book.AAPL"])
    assert hub.subscribers("book.AAPL") == 1
    stack.publisher.emit("book.AAPL")
    stack.publisher.emit("trades.AAPL")
    await a.wait_for(lambda: len(a.envelopes("trades.AAPL")) == 3)
    assert len(a.envelopes("book.AAPL")) == 2
    await hub.disconnect(cb)
    assert hub.subscribers("book.AAPL") == 0 and hub.connection_count == 1


async def test_resubscribe_restarts_from_a_snapshot(hub: Hub, stack: Stack) -> None:
    transport = RecordingTransport()
    conn = hub.connect(transport)
    await hub.subscribe(conn, ["book.AAPL"], {})
    stack.publisher.emit("book.AAPL")
    await hub.subscribe(conn, ["book.AAPL"], {})
    stack.publisher.emit("book.AAPL")
    await transport.wait_for(lambda: last_seq(transport) == 3)
    kinds = [e.type for e in transport.envelopes()]
    assert kinds.count(SNAPSHOT) >= 1 and kinds[-1] == UPDATE
    assert hub.subscribers("book.AAPL") == 1


async def test_blocked_client_does_not_delay_others(stack: Stack) -> None:
    hub = Hub(
        HubConfig(queue_max_messages=16), bus=stack.bus, store=stack.store, metrics=stack.metrics
    )
    await hub.start()
    stuck, fine = RecordingTransport(), RecordingTransport()
    stuck.gate.clear()
    cs, cf = hub.connect(stuck), hub.connect(fine)
    await hub.subscribe(cs, ["book.AAPL"], {})
    await hub.subscribe(cf, ["book.AAPL"], {})
    for i in range(1, 1001):
        stack.publisher.emit("book.AAPL")
        if i % 8 == 0:  # the fine client keeps up while the stuck one never drains
            await fine.wait_for(lambda: last_seq(fine) == i + 1)  # noqa: B023
    await fine.wait_for(lambda: last_seq(fine) == 1001)
    assert [e.seq for e in fine.envelopes()] == list(range(1, 1002))
    assert cs.queued <= 16
    assert (stack.metrics.value("quotegate_conflations_total", {"transport": "ws"}) or 0) >= 1
    stuck.gate.set()
    await stuck.wait_for(lambda: last_seq(stuck) == 1001)
    assert stuck.envelopes()[-1].type == SNAPSHOT  # skipped to the latest value
    await hub.close()


async def test_orders_overflow_disconnects_only_that_client(stack: Stack) -> None:
    hub = Hub(
        HubConfig(queue_max_messages=8), bus=stack.bus, store=stack.store, metrics=stack.metrics
    )
    await hub.start()
    stuck = RecordingTransport()
    stuck.gate.clear()
    conn = hub.connect(stuck, account="alice")
    await hub.subscribe(conn, ["orders.alice"], {})
    for _ in range(50):
        stack.publisher.emit("orders.alice", {"event": "accepted"})
    await conn.wait_closed()
    assert stuck.closed == (4008, "slow")
    await until(lambda: hub.connection_count == 0, what="the hub to forget the connection")
    assert hub.connection_count == 0 and hub.subscribers("orders.alice") == 0
    assert stack.metrics.value("quotegate_connections", {"transport": "ws"}) == 0
    await hub.close()


async def test_connection_limit(stack: Stack) -> None:
    hub = Hub(HubConfig(max_connections=2), bus=stack.bus, store=stack.store)
    await hub.start()
    hub.connect(RecordingTransport())
    c2 = hub.connect(RecordingTransport())
    with pytest.raises(TooManyConnections):
        hub.connect(RecordingTransport())
    await hub.disconnect(c2)
    hub.connect(RecordingTransport())
    await hub.close()
    assert hub.connection_count == 0


async def test_close_stops_listening(stack: Stack) -> None:
    """``close`` takes the hub off the bus (idempotently): a closed hub is not called for
    anything published later."""

    class WatchedBus(MemoryBus):
        def __init__(self) -> None:
            super().__init__()
            self.listening: list[object] = []

        def add_listener(self, listener: Listener) -> None:
            super().add_listener(listener)
            self.listening.append(listener)

        def remove_listener(self, listener: Listener) -> None:
            super().remove_listener(listener)
            self.listening = [x for x in self.listening if x != listener]

    bus = WatchedBus()
    hub = Hub(HubConfig(), bus=bus, store=stack.store)
    await hub.start()
    assert len(bus.listening) == 1
    await hub.close()
    await hub.close()
    assert bus.listening == []
    bus.publish(Envelope.build(UPDATE, "book.AAPL", EPOCH, 99, 1, {}))  # nothing raises
    assert bus.listener_errors == 0


async def test_store_failure_drops_the_channel_with_an_error(stack: Stack) -> None:
    class Broken(MemorySnapshotStore):
        async def snapshot(self, channel: str) -> Envelope | None:
            raise ConnectionError("store down")

        async def resume(self, channel: str, epoch: str, seq: int) -> Resume:
            raise ConnectionError("store down")

    hub = Hub(HubConfig(resume_retry_delay_s=0.001), bus=stack.bus, store=Broken())
    await hub.start()
    transport = RecordingTransport()
    conn = hub.connect(transport)
    await hub.subscribe(conn, ["book.AAPL"], {})
    await transport.wait_for(lambda: len(transport.controls()) == 1)
    # no partial history: the channel is dropped and the client told to subscribe again
    [error] = transport.controls()
    assert error["type"] == "error" and error["code"] == "unavailable"
    assert "book.AAPL" not in conn.subscriptions
    stack.publisher.emit("book.AAPL")  # the memory bus delivers synchronously
    assert conn.queued == 0 and transport.envelopes() == []
    await hub.close()


async def test_store_failure_then_recovery_sends_the_snapshot(stack: Stack) -> None:
    failures = [ConnectionError("blip")]

    class Flaky(MemorySnapshotStore):
        async def snapshot(self, channel: str) -> Envelope | None:
            if failures:
                raise failures.pop()
            return await stack.store.snapshot(channel)

    stack.publisher.emit("book.AAPL")
    await stack.store.flush()
    hub = Hub(HubConfig(resume_retry_delay_s=0.001), bus=stack.bus, store=Flaky())
    await hub.start()
    transport = RecordingTransport()
    conn = hub.connect(transport)
    await hub.subscribe(conn, ["book.AAPL"], {})
    await transport.wait_for(lambda: len(transport.envelopes()) == 1)
    assert transport.envelopes()[0].type == "snapshot"
    assert "book.AAPL" in conn.subscriptions
    await hub.close()


class LaggingStore(MemorySnapshotStore):
    """A store that, while ``lagging``, answers a resume with an older snapshot (the Redis
    store behind the bus: it does not have the client's seq yet)."""

    lagging = False

    async def resume(self, channel: str, epoch: str, seq: int) -> Resume:
        found = await super().resume(channel, epoch, seq)
        if self.lagging:
            snap = await super().snapshot(channel)
            assert snap is not None
            old = seq - 2
            stale = Envelope.build(SNAPSHOT, channel, snap.epoch, old, snap.ts, {"seq": old})
            return Resume(stale, ())
        return found


async def test_a_store_behind_the_client_never_sends_it_back() -> None:
    """A resume that the store answers with a snapshot older than the client's position (the
    store lags the bus) sends nothing from the store; the client goes on from its seq."""
    stack = make_stack()
    store = LaggingStore(snapshot_provider=stack.publisher.snapshot)
    stack.store = store
    stack.publisher.store = store
    stack.publisher.emit_many("book.AAPL", 12)  # seq 12
    hub = Hub(HubConfig(resume_retry_delay_s=0.01), bus=stack.bus, store=store)
    await hub.start()
    try:
        transport = RecordingTransport()
        conn = hub.connect(transport)
        store.lagging = True
        await hub.subscribe(conn, ["book.AAPL"], {"book.AAPL": ("ep1", 12)})
        store.lagging = False
        stack.publisher.emit_many("book.AAPL", 2)
        await transport.wait_for(lambda: len(transport.envelopes()) == 2)
        assert seqs(transport.envelopes()) == [(UPDATE, 13), (UPDATE, 14)]
    finally:
        await hub.close()
