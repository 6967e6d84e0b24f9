"""Connection: batching writer, positions, duplicate/gap checks, the slow-client policy."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from gateway.config import HubConfig
from gateway.fanout.connection import Connection, Mode, Subscription
from gateway.fanout.transport import Outgoing
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


async def test_position_is_the_last_envelope_handed_over() -> None:
    conn, transport, _, _ = make()
    live(conn, "book.A", "trades.A")
    seen_during_send: list[tuple[str, int] | None] = []
    original = transport.send

    async def send(batch: Sequence[Outgoing]) -> None:
        seen_during_send.append(conn.position("book.A"))
        await original(batch)

    transport.send = send  # type: ignore[method-assign]
    conn.deliver(env("book.A", 7))
    conn.deliver(env("trades.A", 3))
    conn.start()
    await transport.wait_for(lambda: len(transport.items()) == 2)
    assert seen_during_send == [None]  # during send: not yet
    assert conn.position("book.A") == ("e1", 7)
    assert conn.positions() == {"book.A": ("e1", 7), "trades.A": ("e1", 3)}
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
    transport.gate.clear()  # the client stopped reading
    conn.start()
    conn.deliver(env("book.A", 1))
    # the writer takes seq 1 and blocks in send
    await until(lambda: conn.queued == 0, what="the writer to take seq 1")
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
    conn.start()
    conn.enqueue(b"{}")
    await conn.wait_closed()
    assert conn.closed and closed == [conn]
    conn.enqueue(b"{}")  # ignored once closed
    assert conn.queued == 0
    await conn.close()


async def test_heartbeat_on_idle_link() -> None:
    conn, transport, _, _ = make(HubConfig(heartbeat_interval_s=0.01))
    conn.start()
    await transport.wait_for(lambda: bool(transport.controls()))
    beat = transport.controls()[0]
    assert beat["type"] == "heartbeat" and isinstance(beat["ts"], int)
    await conn.close()


async def test_close_is_idempotent() -> None:
    """``close`` stops the writer and drops what is queued, leaves the transport to its
    endpoint, and can be called again; nothing delivered later is sent."""
    conn, transport, _, _ = make(HubConfig(heartbeat_interval_s=0.01))
    live(conn, "book.A")
    conn.start()
    await transport.wait_for(lambda: bool(transport.controls()))  # the writer runs
    await conn.close()
    await conn.close()
    assert conn.closed
    await asyncio.wait_for(conn.wait_closed(), 5)  # the writer task has ended
    assert transport.closed is None  # the endpoint closes the transport, not close()
    sent = len(transport.items())
    conn.deliver(env("book.A", 1))
    assert conn.queued == 0 and len(transport.items()) == sent  # (no writer left to send)


@pytest.mark.parametrize("channel", ["orders.alice"])
def test_orders_channel_is_not_conflated(channel: str) -> None:
    assert not Subscription(channel).conflate
    assert Subscription("book.A").conflate and Subscription("candles.A.1m").conflate
