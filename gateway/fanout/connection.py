"""One client connection: a bounded send queue, its writer task and the slow-client policy.

The hub's bus listener calls :meth:`Connection.deliver` for every live envelope of a
subscribed channel; replies and errors come in through :meth:`Connection.enqueue`. Neither
blocks nor awaits. The writer task wakes when something is pending and hands everything
pending to the transport in ONE ``send`` (batching), so a slow client only ever delays its
own writer.

Past the bound (``queue_max_messages`` / ``queue_max_bytes``):

* market-data channels (book, trades, ticker, candles) are **conflated**: the channel's
  queued items are dropped and it is marked stale; further live envelopes of it are dropped
  until the writer drains, which then sends the store's fresh snapshot (latest value wins);
* the private ``orders`` channel skips nothing: the market-data items are dropped first to
  make room, and if that is not enough the connection is closed with 4008 (``slow``).

Per channel the connection remembers the ``(epoch, seq)`` of the last envelope queued (to
drop duplicates and detect gaps: a gap or an epoch change on the live stream also resyncs the
channel from a snapshot) and of the last envelope handed to the transport
(:meth:`position`, for SSE ids and poll cursors).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from enum import Enum
from typing import TYPE_CHECKING

from gateway.fanout.transport import Outgoing, Transport
from gateway.wire.channels import ORDERS
from gateway.wire.envelope import SNAPSHOT, Envelope
from gateway.wire.errors import WS_CLOSE_SLOW

if TYPE_CHECKING:
    from gateway.config import HubConfig
    from gateway.metrics import TransportMetrics

Resync = Callable[["Connection", dict[str, tuple[str, int] | None]], Awaitable[None]]
"""The hub's resync of stale channels: per channel a fresh snapshot (``None``) or the updates
after ``(epoch, seq)`` (a gap in the live stream)."""


class Mode(Enum):
    LIVE = "live"
    SYNCING = "syncing"
    """A store read is in progress; live envelopes wait in ``pending``."""
    STALE = "stale"
    """Conflated: live envelopes are dropped until the writer resyncs the channel."""


class Subscription:
    """A connection's state for one channel."""

    __slots__ = ("channel", "conflate", "epoch", "mode", "pending", "seq")

    def __init__(self, channel: str) -> None:
        self.channel = channel
        self.conflate = not channel.startswith(ORDERS + ".") and channel != ORDERS
        self.mode = Mode.SYNCING
        self.pending: list[Envelope] = []
        self.epoch: str | None = None
        self.seq: int | None = None


def heartbeat_message(now_us: int) -> bytes:
    return b'{"type":"heartbeat","ts":%d}' % now_us


class Connection:
    """See the module docstring. Built by :meth:`gateway.fanout.hub.Hub.connect`."""

    def __init__(
        self,
        transport: Transport,
        config: HubConfig,
        *,
        account: str | None = None,
        metrics: TransportMetrics | None = None,
        resync: Resync | None = None,
        on_closed: Callable[[Connection], None] | None = None,
    ) -> None:
        self.transport = transport
        self.account = account
        self.config = config
        self.metrics = metrics
        self.subscriptions: dict[str, Subscription] = {}
        self.closed = False
        self.close_code: int | None = None
        self._resync = resync
        self._on_closed = on_closed
        self._queue: list[Outgoing] = []
        self._queued_bytes = 0
        self._stale: dict[str, tuple[str, int] | None] = {}
        self._last_sent: dict[str, Envelope] = {}
        self._max_messages = config.queue_max_messages
        self._max_bytes = config.queue_max_bytes
        self._wake = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None
        self._closer: asyncio.Task[None] | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Start the writer task (needs a running loop). Idempotent."""
        if self._writer is None and not self.closed:
            self._writer = asyncio.get_running_loop().create_task(
                self._write_loop(), name=f"writer-{self.transport.name}"
            )

    async def close(self) -> None:
        """Stop the writer and drop what is queued. Idempotent; does not close the
        transport (its endpoint does that)."""
        self._mark_closed()
        current = asyncio.current_task()
        closer = self._closer
        if closer is not None and closer is not current and not closer.done():
            # a 4008 close in flight: let it write its close frame (bounded wait)
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(asyncio.shield(closer), 5.0)
            if not closer.done():
                closer.cancel()
        for task in (self._closer, self._writer):
            if task is not None and task is not current and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    def close_with(self, code: int, reason: str) -> None:
        """Close the transport with ``code`` on a task of its own (never awaits here)."""
        if self.closed:
            return
        self.close_code = code
        self._mark_closed()
        self._closer = asyncio.get_running_loop().create_task(self._close_transport(code, reason))

    async def wait_closed(self) -> None:
        """Wait until the writer has ended (the client went away or was closed)."""
        for task in (self._writer, self._closer):
            if task is not None:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await asyncio.shield(task)

    def _mark_closed(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._queue = []
        self._queued_bytes = 0
        self._wake.set()
        if self._on_closed is not None:
            self._on_closed(self)

    async def _close_transport(self, code: int, reason: str) -> None:
        writer = self._writer
        if writer is not None and not writer.done():
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await writer
        with contextlib.suppress(Exception):
            await self.transport.close(code, reason)

    # -- queueing (never blocks) -----------------------------------------------------------

    @property
    def queued(self) -> int:
        """Items pending for the writer."""
        return len(self._queue)

    def position(self, channel: str) -> tuple[str, int] | None:
        """``(epoch, seq)`` of the last envelope of ``channel`` handed to the transport (by
        a completed ``send``; during ``send(batch)`` it still excludes that batch)."""
        env = self._last_sent.get(channel)
        return None if env is None else (env.epoch, env.seq)

    def positions(self) -> dict[str, tuple[str, int]]:
        """:meth:`position` of every channel that has one (a copy)."""
        return {ch: (env.epoch, env.seq) for ch, env in self._last_sent.items()}

    def enqueue(self, item: Outgoing) -> None:
        """Queue a control message (or an envelope outside the subscription bookkeeping).
        Control messages are not subject to the bound: they are few and small."""
        if self.closed:
            return
        self._queue.append(item)
        self._queued_bytes += len(item) if type(item) is bytes else len(item.payload)  # type: ignore[union-attr]
        self._wake.set()

    def deliver(self, envelope: Envelope) -> None:
        """A live envelope from the bus for a channel this connection subscribes to."""
        sub = self.subscriptions.get(envelope.channel)
        if sub is None or self.closed:
            return
        mode = sub.mode
        if mode is Mode.LIVE:
            # fast path: the next seq of the same stream, and room in the queue
            seq = sub.seq
            if seq is not None and envelope.seq == seq + 1 and envelope.epoch == sub.epoch:
                size = len(envelope.payload)
                queue = self._queue
                if len(queue) < self._max_messages and self._queued_bytes + size <= self._max_bytes:
                    if not queue:
                        self._wake.set()  # else the writer is awake already
                    queue.append(envelope)
                    self._queued_bytes += size
                    sub.seq = seq + 1
                    return
            self.accept(sub, envelope)
        elif mode is Mode.SYNCING:
            sub.pending.append(envelope)
        # STALE: dropped; the writer resyncs the channel from a snapshot

    def accept(self, sub: Subscription, envelope: Envelope) -> None:
        """Queue a live envelope after the duplicate/gap checks against what is queued."""
        if sub.epoch is not None and envelope.epoch != sub.epoch:
            if envelope.type != SNAPSHOT:
                self.mark_stale(sub)  # the stream restarted: resync from a snapshot
                return
        elif sub.seq is not None:
            if envelope.seq <= sub.seq:
                return  # already queued (store read and live stream overlapped)
            if envelope.seq != sub.seq + 1 and envelope.type != SNAPSHOT:
                self.mark_stale(sub, resume=True)  # a gap on the live stream: fill it
                return
        self.push(sub, envelope)

    def push(self, sub: Subscription, envelope: Envelope, *, force: bool = False) -> None:
        """Queue ``envelope`` for ``sub`` applying the bound (``force``: resume results,
        bounded by the store's history instead)."""
        size = len(envelope.payload)
        if (
            not force
            and (
                len(self._queue) >= self.config.queue_max_messages
                or self._queued_bytes + size > self.config.queue_max_bytes
            )
            and not self._overflow(sub, size)
        ):
            return
        self._queue.append(envelope)
        self._queued_bytes += size
        sub.epoch = envelope.epoch
        sub.seq = envelope.seq
        self._wake.set()

    def drop_queued(self, channels: set[str]) -> None:
        """Remove the queued envelopes of ``channels``."""
        kept: list[Outgoing] = []
        nbytes = 0
        for item in self._queue:
            if type(item) is not bytes and item.channel in channels:  # type: ignore[union-attr]
                continue
            kept.append(item)
            nbytes += len(item) if type(item) is bytes else len(item.payload)  # type: ignore[union-attr]
        self._queue = kept
        self._queued_bytes = nbytes

    def mark_stale(self, sub: Subscription, *, resume: bool = False) -> None:
        """Stop queueing live envelopes of ``sub`` until the writer resyncs it. By default
        (conflation) its queued items are dropped and a fresh snapshot follows; with
        ``resume`` (a gap in the live stream) the queued items stay and the store's updates
        after the last queued one follow."""
        if sub.mode is Mode.STALE:
            return
        since = (sub.epoch, sub.seq) if resume and sub.epoch is not None else None
        if since is None:
            self.drop_queued({sub.channel})
            if self.metrics is not None:
                self.metrics.conflations.inc()
        sub.mode = Mode.STALE
        sub.pending = []
        self._stale[sub.channel] = since  # type: ignore[assignment]
        self._wake.set()

    def _overflow(self, sub: Subscription, size: int) -> bool:
        """The queue is full when ``sub`` wants to add ``size`` bytes: apply the policy;
        True when there is now room for the item."""
        if sub.conflate:
            self.mark_stale(sub)
            return False
        for other in list(self.subscriptions.values()):
            if other.conflate and other.mode is Mode.LIVE:
                self.mark_stale(other)
        if (
            len(self._queue) < self.config.queue_max_messages
            and self._queued_bytes + size <= self.config.queue_max_bytes
        ):
            return True
        if self.metrics is not None:
            self.metrics.slow_disconnects.inc()
        self.close_with(WS_CLOSE_SLOW, "slow")
        return False

    # -- the writer ------------------------------------------------------------------------

    async def _write_loop(self) -> None:
        transport = self.transport
        metrics = self.metrics
        heartbeat_s = self.config.heartbeat_interval_s
        loop = asyncio.get_running_loop()
        wake = self._wake
        try:
            while not self.closed:
                if not self._queue and not self._stale:
                    # idle: sleep until something is queued or a heartbeat is due
                    wake.clear()
                    due = loop.call_later(heartbeat_s, wake.set)
                    try:
                        await wake.wait()
                    finally:
                        due.cancel()
                    if not self._queue and not self._stale and not self.closed:
                        self.enqueue(heartbeat_message(time.time_ns() // 1000))
                    continue
                if self._stale and self._resync is not None:
                    stale = {
                        ch: since
                        for ch, since in self._stale.items()
                        if (sub := self.subscriptions.get(ch)) is not None
                        and sub.mode is Mode.STALE
                    }
                    self._stale = {}
                    for ch in stale:
                        self.subscriptions[ch] = Subscription(ch)
                    if stale:
                        await self._resync(self, stale)
                    continue
                self._stale.clear()
                batch = self._queue
                nbytes = self._queued_bytes
                self._queue = []
                self._queued_bytes = 0
                if not batch:
                    continue
                await transport.send(batch)
                oldest_ts = None
                last_sent = self._last_sent
                for item in batch:
                    if type(item) is not bytes:
                        env: Envelope = item  # type: ignore[assignment]
                        if oldest_ts is None:
                            oldest_ts = env.ts
                        last_sent[env.channel] = env
                if metrics is not None:
                    lag = None if oldest_ts is None else time.time() - oldest_ts / 1e6
                    metrics.sent(len(batch), nbytes, lag)
        except asyncio.CancelledError:
            raise
        except Exception:
            pass  # the client went away (a failed send); the endpoint sees the disconnect
        finally:
            self._mark_closed()
