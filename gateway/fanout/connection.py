"""One client connection: a bounded send queue, written once per loop tick, and the
slow-client policy.

The hub's bus listener calls :meth:`Connection.deliver` for every live envelope of a
subscribed channel; replies and errors come in through :meth:`Connection.enqueue`. Neither
blocks nor awaits: they append to the queue and mark the connection for the
:class:`Flusher`, which at the end of the loop tick hands each marked connection's whole
queue to its transport in ONE synchronous write (batching, no task switch per delivery).
Only a connection whose client is slow (its transport not writable) or that must resync a
channel from the store gets a task, for as long as that lasts.

Every byte a client can make the server hold counts against its bound: the queue plus what
its transport holds (:meth:`Transport.buffered`). Past the bound (``queue_max_messages`` /
``queue_max_bytes``):

* market-data channels (book, trades, ticker, candles) are **conflated**: the channel's
  queued items are dropped and it is marked stale; further live envelopes of it are dropped
  until the client drains, when the store's fresh snapshot is sent (latest value wins);
* the private ``orders`` channel skips nothing: the market-data items are dropped first to
  make room, and if that is not enough the connection is closed with 4008 (``slow``);
* a control message (a reply, an error) that does not fit closes the connection with 4008
  too: a client that keeps asking without reading the answers has nothing to conflate.

Per channel the connection remembers the ``(epoch, seq)`` of the last envelope queued, to
drop duplicates and detect gaps: a gap or an epoch change on the live stream resyncs the
channel from the store.
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

CLOSE_WAIT_S = 5.0
"""How long :meth:`Connection.close` lets an in-flight close (4008) finish."""


class Mode(Enum):
    LIVE = "live"
    SYNCING = "syncing"
    """A store read is in progress; live envelopes wait in ``pending``."""
    STALE = "stale"
    """Conflated: live envelopes are dropped until the connection resyncs the channel."""


NO_PENDING: list[Envelope] = []
"""Shared by every subscription with nothing buffered (never appended to: see ``buffer``)."""


class Subscription:
    """A connection's state for one channel."""

    __slots__ = ("channel", "conflate", "epoch", "mode", "pending", "seq")

    def __init__(self, channel: str) -> None:
        self.channel = channel
        self.conflate = not channel.startswith(ORDERS + ".") and channel != ORDERS
        self.mode = Mode.SYNCING
        self.pending: list[Envelope] = NO_PENDING
        self.epoch: str | None = None
        self.seq: int | None = None

    def buffer(self, envelope: Envelope) -> None:
        """Keep a live envelope that arrived during the store read."""
        if self.pending is NO_PENDING:
            self.pending = [envelope]
        else:
            self.pending.append(envelope)


def heartbeat_message(now_us: int) -> bytes:
    return b'{"type":"heartbeat","ts":%d}' % now_us


class Flusher:
    """Writes every connection marked during a loop tick, in one callback at its end, then
    commits the round's metrics (:meth:`TransportMetrics.commit`): messages and bytes
    exactly, the largest batch, the lag of the oldest envelope written."""

    __slots__ = ("_marked", "_scheduled", "metrics", "now")

    def __init__(self) -> None:
        self.now = time.monotonic()
        """When the current write round started."""
        self._marked: list[Connection] = []
        self._scheduled = False
        self.metrics: set[TransportMetrics] = set()
        """Every connection's metrics (committed after each round)."""

    def mark(self, conn: Connection) -> None:
        self._marked.append(conn)
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self.flush)

    def flush(self) -> None:
        self._scheduled = False
        self.now = time.monotonic()
        marked = self._marked
        self._marked = []
        for conn in marked:
            conn.flush()
        self.commit()

    def commit(self) -> None:
        if self.metrics:
            now = time.time()
            for metrics in self.metrics:
                metrics.commit(now)


class Connection:
    """See the module docstring. Built by :meth:`gateway.fanout.hub.Hub.connect`."""

    __slots__ = (
        "__weakref__",
        "_closer",
        "_flusher",
        "_held",
        "_last_write_s",
        "_marked",
        "_max_bytes",
        "_max_messages",
        "_on_closed",
        "_queue",
        "_queued_bytes",
        "_resync",
        "_slow",
        "_stale",
        "account",
        "close_code",
        "closed",
        "config",
        "metrics",
        "subscriptions",
        "transport",
    )

    def __init__(
        self,
        transport: Transport,
        config: HubConfig,
        *,
        account: str | None = None,
        metrics: TransportMetrics | None = None,
        resync: Resync | None = None,
        on_closed: Callable[[Connection], None] | None = None,
        flusher: Flusher | None = None,
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
        self._flusher = flusher if flusher is not None else Flusher()
        if metrics is not None:
            self._flusher.metrics.add(metrics)
        self._queue: list[Outgoing] = []
        self._queued_bytes = 0
        self._held = 0
        """What the transport held after the last write (or since the client stalled)."""
        self._stale: dict[str, tuple[str, int] | None] | None = None
        self._max_messages = config.queue_max_messages
        self._max_bytes = config.queue_max_bytes
        self._marked = False
        self._last_write_s = time.monotonic()
        """When something was last written (or the connection was made)."""
        self._slow: asyncio.Task[None] | None = None
        self._closer: asyncio.Task[None] | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Write whatever was queued before the connection was registered. Idempotent."""
        if self._queue or self._stale:
            self._mark()

    async def close(self) -> None:
        """Stop writing and drop what is queued. Idempotent; does not close the transport
        (its endpoint does that), but lets a 4008 close in flight finish (bounded)."""
        self._mark_closed()
        current = asyncio.current_task()
        closer = self._closer
        if closer is not None and closer is not current and not closer.done():
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(asyncio.shield(closer), CLOSE_WAIT_S)
            if not closer.done():
                closer.cancel()
        for task in (self._closer, self._slow):
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
        """Wait until a close in flight has ended."""
        for task in (self._slow, self._closer):
            if task is not None:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await asyncio.shield(task)

    def _mark_closed(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._queue = []
        self._queued_bytes = 0
        if self._on_closed is not None:
            self._on_closed(self)

    async def _close_transport(self, code: int, reason: str) -> None:
        slow = self._slow
        if slow is not None and not slow.done():
            slow.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await slow
        with contextlib.suppress(Exception):
            await self.transport.close(code, reason)

    def _close_slow(self) -> None:
        if self.metrics is not None:
            self.metrics.slow_disconnects.inc()
        self.close_with(WS_CLOSE_SLOW, "slow")

    # -- queueing (never blocks) -----------------------------------------------------------

    @property
    def queued(self) -> int:
        """Items waiting for the next write."""
        return len(self._queue)

    @property
    def held_bytes(self) -> int:
        """Bytes this connection makes the server hold: its queue and its transport's."""
        return self._queued_bytes + self._held

    def _mark(self) -> None:
        if not self._marked:
            self._marked = True
            self._flusher.mark(self)

    def _fits(self, size: int) -> bool:
        return (
            len(self._queue) < self._max_messages
            and self._queued_bytes + self._held + size <= self._max_bytes
        )

    def enqueue(self, item: Outgoing) -> None:
        """Queue a control message (or an envelope outside the subscription bookkeeping).
        Subject to the bound like everything else: past it the connection closes 4008."""
        if self.closed:
            return
        size = len(item) if type(item) is bytes else len(item.payload)  # type: ignore[union-attr]
        if not self._fits(size):
            self._close_slow()
            return
        self._queue.append(item)
        self._queued_bytes += size
        self._mark()

    def deliver(self, envelope: Envelope) -> None:
        """A live envelope from the bus for a channel this connection subscribes to."""
        sub = self.subscriptions.get(envelope.channel)
        if sub is None or self.closed:
            return
        mode = sub.mode
        if mode is Mode.LIVE:
            # fast path: the next seq of the same stream, and room within the bound
            seq = sub.seq
            if seq is not None and envelope.seq == seq + 1 and envelope.epoch == sub.epoch:
                size = len(envelope.payload)
                queue = self._queue
                if (
                    len(queue) < self._max_messages
                    and self._queued_bytes + self._held + size <= self._max_bytes
                ):
                    queue.append(envelope)
                    self._queued_bytes += size
                    sub.seq = seq + 1
                    if not self._marked:
                        self._marked = True
                        self._flusher.mark(self)
                    return
            self.accept(sub, envelope)
        elif mode is Mode.SYNCING:
            sub.buffer(envelope)
        # STALE: dropped; the connection resyncs the channel from a snapshot

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
        if self.closed:
            return
        size = len(envelope.payload)
        if not force and not self._fits(size) and not self._overflow(sub, size):
            return
        self._queue.append(envelope)
        self._queued_bytes += size
        sub.epoch = envelope.epoch
        sub.seq = envelope.seq
        self._mark()

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
        """Stop queueing live envelopes of ``sub`` until the connection resyncs it. By
        default (conflation) its queued items are dropped and a fresh snapshot follows; with
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
        sub.pending = NO_PENDING
        if self._stale is None:
            self._stale = {}
        self._stale[sub.channel] = since  # type: ignore[assignment]
        self._mark()

    def _overflow(self, sub: Subscription, size: int) -> bool:
        """The bound is reached when ``sub`` wants to add ``size`` bytes: apply the policy;
        True when there is now room for the item."""
        if sub.conflate:
            self.mark_stale(sub)
            return False
        for other in list(self.subscriptions.values()):
            if other.conflate and other.mode is Mode.LIVE:
                self.mark_stale(other)
        if self._fits(size):
            return True
        self._close_slow()
        return False

    # -- writing ---------------------------------------------------------------------------

    def flush(self) -> None:
        """Write everything queued, now (the :class:`Flusher`, once per tick), unless the
        client is slow or a channel must resync first: then on the slow path's task."""
        self._marked = False
        if self.closed or self._slow is not None:
            return
        if self._stale or not self.transport.can_write():
            self._held = self.transport.buffered()
            self._slow = asyncio.get_running_loop().create_task(self._slow_path())
            return
        if self._queue:
            self._write()

    def heartbeat(self, now_s: float, idle_s: float, ts_us: int) -> None:
        """The hub's sweep (``now_s``: monotonic): a heartbeat (``ts_us``) when nothing was
        written for ``idle_s``."""
        if now_s - self._last_write_s >= idle_s and not self._queue and self._slow is None:
            self.enqueue(heartbeat_message(ts_us))
            self._last_write_s = now_s

    def _write(self) -> None:
        batch = self._queue
        nbytes = self._queued_bytes
        self._queue = []
        self._queued_bytes = 0
        try:
            self._held = self.transport.write(batch)
        except Exception:
            # the client went away; the endpoint sees the disconnect
            self._mark_closed()
            return
        self._last_write_s = self._flusher.now
        m = self.metrics
        if m is not None:
            n = len(batch)
            m.round_messages += n
            m.round_bytes += nbytes
            if n > m.round_depth:
                m.round_depth = n
            first = batch[0]
            if type(first) is not bytes:
                ts = first.ts  # type: ignore[union-attr]
                if not m.round_oldest_ts or ts < m.round_oldest_ts:
                    m.round_oldest_ts = ts

    async def _slow_path(self) -> None:
        transport = self.transport
        try:
            while not self.closed:
                if not transport.can_write():
                    await transport.wait_writable()
                    self._held = transport.buffered()
                    continue
                if self._queue:
                    self._flusher.now = time.monotonic()
                    # what is queued goes first: a resync's snapshot follows it, and a busy
                    # channel that goes stale again meanwhile must not hold back the rest
                    self._write()
                    self._flusher.commit()
                    continue
                stale = self._stale
                if not stale:
                    break
                self._stale = None
                live = {
                    ch: since
                    for ch, since in stale.items()
                    if (sub := self.subscriptions.get(ch)) is not None and sub.mode is Mode.STALE
                }
                for ch in live:
                    self.subscriptions[ch] = Subscription(ch)
                if live and self._resync is not None:
                    await self._resync(self, live)
        except asyncio.CancelledError:
            raise
        except Exception:
            self._mark_closed()  # the client went away mid-wait
        finally:
            if self._slow is asyncio.current_task():
                self._slow = None
