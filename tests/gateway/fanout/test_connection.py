"""Connection: batching writer, positions, duplicate/gap checks, the slow-client policy."""

from __future__ import annotations

import asyncio
import time

import pytest

from gateway.config import HubConfig
from gateway.fanout.connection import Connection, Mode, Subscription
from gateway.metrics import Metrics
from gateway.wire.envelope import SNAPSHOT, UPDATE, Envelope
from tests.gateway.conftest import RecordingTransport
from tests.waiting import until


def env(
    channel: str, seq: int, *, epoch: str = "e1", kind: str = UPDATE, size: int = 0
) -> Envelope:
    return Envelope.build(kind, channel, epoch, seq, 1_000_000 + seq, {"i": seq, "p": "x" * size})


class Resyncs:
    """The hub's resync, recorded: marks the channels live at a given snapshot."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []
        self.snapshot_seq = 100
        self.since: dict[str, tuple[str, int] | None] = {}

    async def __call__(self, conn: Connection, channels: dict[str, tuple[str, int] | None]) -> None:
        self.calls.append(sorted(channels))
        self.since.update(channels)
        for ch in channels:
            sub = conn.subscriptions[ch]
            conn.push(sub, env(ch, self.snapshot_seq, kind=SNAPSHOT), force=True)
            sub.mode = Mode.LIVE


def live(conn: Connection, *channels: str) -> None:
    for ch in channels:
        sub = Subscription(ch)
        sub.mode = Mode.LIVE
        conn.subscriptions[ch] = sub


async def stalled(
    config: HubConfig, *channels: str
) -> tuple[Connection, RecordingTransport, Metrics]:
    """A started connection, live on ``channels``, whose client has stopped reading."""
    conn, transport, metrics, _ = make(config)
    live(conn, *channels)
    transport.gate.clear()
    conn.start()
    return conn, transport, metrics


def make(
    config: HubConfig | None = None,
) -> tuple[Connection, RecordingTransport, Metrics, Resyncs]:
    transport = RecordingTransport()
    metrics = Metrics()
    resync = Resyncs()
    conn = Connection(
        transport,
        config or HubConfig(),
        metrics=metrics.transport("ws"),
        resync=resync,
    )
    return conn, transport, metrics, resync


async def test_everything_pending_goes_in_one_send() -> None:
    conn, transport, metrics, _ = make()
    live(conn, "book.A")
    conn.enqueue(b'{"type":"pong"}')
    for seq in range(1, 51):
        conn.deliver(env("book.A", seq))
    conn.start()
    await transport.wait_for(lambda: len(transport.items()) == 51)
    assert len(transport.batches) == 1
    assert transport.batches[0][0] == b'{"type":"pong"}'
    assert [e.seq for e in transport.envelopes()] == list(range(1, 51))
    assert metrics.value("quotegate_messages_sent_total", {"transport": "ws"}) == 51
    await conn.close()


async def test_live_deliveries_are_written_at_the_end_of_the_tick_without_a_task() -> None:
    conn, transport, _, _ = make()
    live(conn, "book.A", "trades.A")
    conn.deliver(env("book.A", 7))
    conn.deliver(env("trades.A", 3))
    assert transport.batches == []  # nothing written inside the publish call
    await asyncio.sleep(0)  # the end of the tick
    assert [[(e.channel, e.seq) for e in b] for b in transport.batches] == [  # type: ignore[union-attr]
        [("book.A", 7), ("trades.A", 3)]
    ]
    assert conn._slow is None  # no task for a client that keeps up
    await conn.close()


async def test_duplicates_dropped_and_gap_resyncs() -> None:
    conn, transport, _, resync = make()
    live(conn, "book.A")
    conn.deliver(env("book.A", 1))
    conn.deliver(env("book.A", 1))  # duplicate
    conn.deliver(env("book.A", 2))
    conn.deliver(env("book.A", 4))  # gap: 3 is missing
    conn.start()
    await transport.wait_for(lambda: any(e.type == SNAPSHOT for e in transport.envelopes()))
    assert resync.calls == [["book.A"]]
    assert resync.since == {"book.A": ("e1", 2)}  # resumed after the last queued update
    assert [(e.type, e.seq) for e in transport.envelopes()] == [
        (UPDATE, 1),
        (UPDATE, 2),
        (SNAPSHOT, 100),
    ]
    conn.deliver(env("book.A", 101))
    await transport.wait_for(lambda: transport.envelopes()[-1].seq == 101)
    await conn.close()


async def test_new_epoch_update_resyncs_but_snapshot_passes() -> None:
    conn, transport, _, resync = make()
    live(conn, "book.A", "book.B")
    conn.deliver(env("book.A", 5))
    conn.deliver(env("book.A", 1, epoch="e2"))  # an update of a new stream: needs a snapshot
    conn.deliver(env("book.B", 5))
    conn.deliver(env("book.B", 1, epoch="e2", kind=SNAPSHOT))  # a snapshot starts it
    conn.start()
    await transport.wait_for(lambda: len(transport.envelopes()) == 3)
    assert resync.calls == [["book.A"]] and resync.since == {"book.A": None}
    assert [(e.type, e.seq) for e in transport.envelopes("book.A")] == [(SNAPSHOT, 100)]
    assert [(e.channel, e.epoch, e.seq) for e in transport.envelopes("book.B")] == [
        ("book.B", "e1", 5),
        ("book.B", "e2", 1),
    ]
    await conn.close()


async def test_overflow_conflates_market_data_channel() -> None:
    conn, transport, metrics, resync = make(HubConfig(queue_max_messages=10))
    live(conn, "book.A", "trades.A")
    conn.deliver(env("book.A", 1))
    await until(lambda: conn.queued == 0, what="the write at the end of the tick")
    transport.gate.clear()  # the client stopped reading
    conn.deliver(env("trades.A", 1))
    for seq in range(2, 200):
        conn.deliver(env("book.A", seq))  # never blocks
    assert conn.queued <= 10
    assert metrics.value("quotegate_conflations_total", {"transport": "ws"}) == 1
    assert conn.subscriptions["book.A"].mode is Mode.STALE
    transport.gate.set()
    await transport.wait_for(lambda: any(e.type == SNAPSHOT for e in transport.envelopes()))
    assert resync.calls == [["book.A"]]
    assert [(e.type, e.seq) for e in transport.envelopes("book.A")] == [
        (UPDATE, 1),
        (SNAPSHOT, 100),
    ]
    assert [e.seq for e in transport.envelopes("trades.A")] == [1]  # other channel intact
    await conn.close()


async def test_byte_bound_also_conflates() -> None:
    conn, _, metrics = await stalled(HubConfig(queue_max_bytes=10_000), "book.A")
    for seq in range(1, 30):
        conn.deliver(env("book.A", seq, size=1000))
    assert metrics.value("quotegate_conflations_total", {"transport": "ws"}) == 1
    await conn.close()


async def test_orders_overflow_drops_market_data_first() -> None:
    conn, _, metrics = await stalled(HubConfig(queue_max_messages=10), "book.A", "orders.alice")
    for seq in range(1, 10):
        conn.deliver(env("book.A", seq))
    conn.deliver(env("orders.alice", 1))
    conn.deliver(env("orders.alice", 2))  # full: book is conflated to make room
    assert not conn.closed
    assert conn.subscriptions["book.A"].mode is Mode.STALE
    assert metrics.value("quotegate_slow_disconnects_total", {"transport": "ws"}) == 0
    await conn.close()


async def test_orders_overflow_closes_4008() -> None:
    conn, transport, metrics = await stalled(HubConfig(queue_max_messages=10), "orders.alice")
    for seq in range(1, 30):
        conn.deliver(env("orders.alice", seq))  # never blocks, never raises
    assert conn.closed
    assert metrics.value("quotegate_slow_disconnects_total", {"transport": "ws"}) == 1
    await conn.wait_closed()
    assert transport.closed == (4008, "slow")
    await conn.close()


async def test_failed_send_closes_connection() -> None:
    closed: list[Connection] = []
    transport = RecordingTransport()
    transport.fail = True
    conn = Connection(transport, HubConfig(), on_closed=closed.append)
    conn.enqueue(b"{}")
    await asyncio.sleep(0)  # the write fails at the end of the tick
    assert conn.closed and closed == [conn]
    conn.enqueue(b"{}")  # ignored once closed
    assert conn.queued == 0
    await conn.close()


async def test_heartbeat_only_when_nothing_was_written_for_the_idle_time() -> None:
    conn, transport, _, _ = make()
    live(conn, "book.A")
    conn.deliver(env("book.A", 1))
    await asyncio.sleep(0)
    written = time.monotonic()
    conn.heartbeat(written + 0.5, 1.0, 123)  # written half a second ago: no heartbeat
    await asyncio.sleep(0)
    assert transport.controls() == []
    conn.heartbeat(written + 1.5, 1.0, 456)  # idle for longer: a heartbeat
    await asyncio.sleep(0)
    assert transport.controls() == [{"type": "heartbeat", "ts": 456}]
    await conn.close()


async def test_replies_count_against_the_bound_and_close_4008() -> None:
    """A client that keeps asking and never reads: its replies are held for it, so they are
    bounded like everything else (issue: pongs/errors outside the bound grew without end)."""
    conn, transport, metrics = await stalled(HubConfig(queue_max_bytes=1000))
    for i in range(200):
        conn.enqueue(b'{"type":"pong","id":%d}' % i)
    assert conn.closed and conn.held_bytes == 0
    assert metrics.value("quotegate_slow_disconnects_total", {"transport": "ws"}) == 1
    await conn.wait_closed()
    assert transport.closed == (4008, "slow")


async def test_what_the_transport_holds_counts_against_the_bound() -> None:
    conn, transport, metrics = await stalled(HubConfig(queue_max_bytes=10_000), "book.A")
    transport.held = 9_500  # written but not taken by the client
    conn.deliver(env("book.A", 1))
    await asyncio.sleep(0)  # not writable: the slow path waits for the client
    assert conn.held_bytes > 9_500
    conn.deliver(env("book.A", 2, size=1000))
    assert metrics.value("quotegate_conflations_total", {"transport": "ws"}) == 1
    await conn.close()


async def test_close_is_idempotent() -> None:
    """``close`` stops writing (and the slow path's task) and drops what is queued, leaves
    the transport to its endpoint, and can be called again; nothing delivered later is sent."""
    conn, transport, _, _ = make()
    live(conn, "book.A")
    conn.deliver(env("book.A", 1))
    await transport.wait_for(lambda: len(transport.envelopes()) == 1)
    transport.gate.clear()  # the client stalls: the slow path waits for it
    conn.deliver(env("book.A", 2))
    await until(lambda: conn._slow is not None, what="the slow path")
    await conn.close()
    await conn.close()
    assert conn.closed
    await asyncio.wait_for(conn.wait_closed(), 5)  # the slow path's task has ended
    assert conn._slow is None
    assert transport.closed is None  # the endpoint closes the transport, not close()
    transport.gate.set()
    conn.deliver(env("book.A", 3))
    await asyncio.sleep(0.01)
    assert conn.queued == 0 and [e.seq for e in transport.envelopes()] == [1]


@pytest.mark.parametrize("channel", ["orders.alice"])
def test_orders_channel_is_not_conflated(channel: str) -> None:
    assert not Subscription(channel).conflate
    assert Subscription("book.A").conflate and Subscription("candles.A.1m").conflate
