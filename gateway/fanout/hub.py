"""The hub: channel subscriptions of every connection, fed from the market-data bus.

Publish path: the bus calls :meth:`Hub._on_envelope` with each envelope; for every connection
subscribed to ``envelope.channel`` it calls ``conn.deliver(envelope)``, which only appends the
envelope (already encoded bytes) to that connection's bounded queue and marks it for the hub's
:class:`~gateway.fanout.connection.Flusher`. At the end of the loop tick the flusher writes
each marked connection's queue to its transport, synchronously: no task per connection, no
task switch per delivery. Nothing awaits a client.

Heartbeats: one sweep every half ``heartbeat_interval_s`` queues a heartbeat on each
connection that had nothing written since the previous sweep, so an idle stream gets one at
least every ``heartbeat_interval_s``.

Subscribe path (:meth:`Hub.subscribe`): the connection is registered for the channel first,
in *syncing* mode, so live envelopes arriving during the store read are buffered; then the
store is read (``resume`` when the client gives ``since``, else ``snapshot``); the result is
queued, and the buffered live envelopes follow, minus those the read already covered
(``seq <= sent``). If the store lags the bus (a gap between the read and the first buffered
envelope) the missing updates are read again (``HubConfig.resume_retries``). Result: missed
updates or a snapshot, then live, with no gap and no duplicate.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING

from gateway.fanout.connection import NO_PENDING, Connection, Flusher, Mode, Subscription
from gateway.wire.envelope import Envelope
from gateway.wire.errors import UNAVAILABLE, TooManyConnections, error_message

if TYPE_CHECKING:
    from gateway.config import HubConfig
    from gateway.fanout.transport import Transport
    from gateway.metrics import Metrics
    from gateway.seams.bus import MarketDataBus
    from gateway.seams.store import SnapshotStore

Since = Mapping[str, tuple[str, int]]


class Hub:
    """Subscriptions and fan-out. ``start`` adds the bus listener; ``close`` removes it and
    stops every connection (its slow-path task, if any)."""

    def __init__(
        self,
        config: HubConfig,
        *,
        bus: MarketDataBus,
        store: SnapshotStore,
        metrics: Metrics | None = None,
    ) -> None:
        self.config = config
        self.bus = bus
        self.store = store
        self.metrics = metrics
        self._index: dict[str, set[Connection]] = {}
        self._connections: set[Connection] = set()
        self._flusher = Flusher()
        self._heartbeats: asyncio.Task[None] | None = None
        self._started = False

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Listen to the bus. Idempotent."""
        if not self._started:
            self._started = True
            self.bus.add_listener(self._on_envelope)
            self._heartbeats = asyncio.get_running_loop().create_task(
                self._heartbeat_sweeps(), name="hub-heartbeats"
            )

    async def close(self) -> None:
        """Stop listening and close every connection. Idempotent."""
        if self._started:
            self._started = False
            self.bus.remove_listener(self._on_envelope)
        if self._heartbeats is not None:
            self._heartbeats.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._heartbeats
            self._heartbeats = None
        for conn in list(self._connections):
            await self.disconnect(conn)

    @property
    def connection_count(self) -> int:
        return len(self._connections)

    def subscribers(self, channel: str) -> int:
        """How many connections subscribe to ``channel``."""
        return len(self._index.get(channel, ()))

    # -- connections -----------------------------------------------------------------------

    def connect(self, transport: Transport, *, account: str | None = None) -> Connection:
        """Register a client. Raises
        :class:`~gateway.wire.errors.TooManyConnections` at ``max_connections``."""
        if len(self._connections) >= self.config.max_connections:
            raise TooManyConnections()
        tm = self.metrics.transport(transport.name) if self.metrics is not None else None
        conn = Connection(
            transport,
            self.config,
            account=account,
            metrics=tm,
            resync=self._resync,
            on_closed=self._on_closed,
            flusher=self._flusher,
        )
        self._connections.add(conn)
        if tm is not None:
            tm.connections.inc()
        conn.start()
        return conn

    async def disconnect(self, conn: Connection) -> None:
        """Unsubscribe everything and stop writing. Idempotent."""
        self._remove(conn)
        await conn.close()

    def _on_closed(self, conn: Connection) -> None:
        # Called from inside deliver() (a 4008 close) while _on_envelope iterates a set:
        # remove on the next loop turn instead.
        asyncio.get_running_loop().call_soon(self._remove, conn)

    def _remove(self, conn: Connection) -> None:
        if conn not in self._connections:
            return
        self._connections.discard(conn)
        for channel in conn.subscriptions:
            conns = self._index.get(channel)
            if conns is not None:
                conns.discard(conn)
                if not conns:
                    del self._index[channel]
        if conn.metrics is not None:
            conn.metrics.connections.dec()

    # -- subscriptions ---------------------------------------------------------------------

    async def subscribe(
        self, conn: Connection, channels: list[str], since: Since | None = None
    ) -> None:
        """Subscribe ``conn`` to ``channels`` (internal names): per channel the missed updates
        after ``since[channel]`` (when given and still in the store's history) or a snapshot,
        then live updates. Subscribing again to a channel restarts it the same way (a client
        that saw a gap)."""
        if conn.closed or conn not in self._connections:
            return
        since = since or {}
        fresh: list[str] = []
        for channel in dict.fromkeys(channels):
            if channel in conn.subscriptions:
                conn.drop_queued({channel})
            conn.subscriptions[channel] = Subscription(channel)
            self._index.setdefault(channel, set()).add(conn)
            fresh.append(channel)
        await self._sync(conn, {ch: since.get(ch) for ch in fresh})

    def unsubscribe(self, conn: Connection, channels: list[str]) -> None:
        """Stop ``channels`` for ``conn``; their queued envelopes are dropped."""
        gone: set[str] = set()
        for channel in channels:
            if conn.subscriptions.pop(channel, None) is None:
                continue
            gone.add(channel)
            conns = self._index.get(channel)
            if conns is not None:
                conns.discard(conn)
                if not conns:
                    del self._index[channel]
        if gone:
            conn.drop_queued(gone)

    # -- the publish path ------------------------------------------------------------------

    def _on_envelope(self, envelope: Envelope) -> None:
        conns = self._index.get(envelope.channel)
        if conns:
            for conn in conns:
                conn.deliver(envelope)
        if self.metrics is not None:
            self.metrics.envelopes_received.inc()

    async def _heartbeat_sweeps(self) -> None:
        interval_s = self.config.heartbeat_interval_s
        period_s = interval_s / 4
        idle_s = interval_s - period_s  # so a link is never idle longer than the interval
        while True:
            await asyncio.sleep(period_s)
            now_s = time.monotonic()
            ts_us = time.time_ns() // 1000
            for conn in list(self._connections):
                if not conn.closed:
                    conn.heartbeat(now_s, idle_s, ts_us)

    # -- store reads -----------------------------------------------------------------------

    async def _resync(self, conn: Connection, channels: dict[str, tuple[str, int] | None]) -> None:
        """Resync stale channels (called by the connection's slow path): a fresh snapshot for a
        conflated channel, the missed updates for one with a gap."""
        await self._sync(conn, channels)

    async def _sync(self, conn: Connection, wanted: dict[str, tuple[str, int] | None]) -> None:
        if not wanted:
            return
        subs = {ch: conn.subscriptions[ch] for ch in wanted}
        results = await asyncio.gather(
            *(self._read(ch, since) for ch, since in wanted.items()), return_exceptions=True
        )
        for (channel, since), result in zip(wanted.items(), results, strict=True):
            sub = subs[channel]
            if conn.subscriptions.get(channel) is not sub or conn.closed:
                continue  # unsubscribed or subscribed again meanwhile
            if isinstance(result, BaseException):
                # the store failed (after retries): without a snapshot or the missed updates
                # the live stream would be a partial history, so the channel is dropped and
                # the client told to subscribe again
                self.unsubscribe(conn, [channel])
                conn.enqueue(
                    error_message(
                        UNAVAILABLE,
                        f"snapshot store unavailable for {channel}; subscribe again",
                    )
                )
                continue
            snapshot, updates = result
            if snapshot is not None and _behind(snapshot, since):
                # the store lags the client (it has seen newer updates live): nothing to send
                # from it yet; the missing updates are read again before going live
                snapshot = None
            if snapshot is not None:
                conn.push(sub, snapshot, force=True)
            else:
                if since is not None and not updates:
                    sub.epoch, sub.seq = since
                for update in updates:
                    conn.push(sub, update, force=True)
            await self._fill_gap(conn, sub)
            if conn.subscriptions.get(channel) is sub and not conn.closed:
                self._go_live(conn, sub)

    async def _read(
        self, channel: str, since: tuple[str, int] | None
    ) -> tuple[Envelope | None, list[Envelope]]:
        """The store read for a (re)subscription, retried a few times on failure."""
        for attempt in range(self.config.resume_retries):
            try:
                return await self._read_once(channel, since)
            except Exception:
                await asyncio.sleep(self.config.resume_retry_delay_s * (attempt + 1))
        return await self._read_once(channel, since)

    async def _read_once(
        self, channel: str, since: tuple[str, int] | None
    ) -> tuple[Envelope | None, list[Envelope]]:
        if since is None:
            return await self.store.snapshot(channel), []
        epoch, seq = since
        resumed = await self.store.resume(channel, epoch, seq)
        return resumed.snapshot, list(resumed.updates)

    async def _fill_gap(self, conn: Connection, sub: Subscription) -> None:
        """When the store lags the bus, the first buffered live update may be past the
        store's newest: read the missing updates again (a few times) before going live."""
        for attempt in range(self.config.resume_retries):
            if sub.epoch is None or sub.seq is None:
                return
            first = next((e for e in sub.pending if e.epoch == sub.epoch and e.seq > sub.seq), None)
            if first is None or first.seq == sub.seq + 1:
                return
            await asyncio.sleep(self.config.resume_retry_delay_s * (attempt + 1))
            if conn.subscriptions.get(sub.channel) is not sub or conn.closed:
                return
            with contextlib.suppress(Exception):
                resumed = await self.store.resume(sub.channel, sub.epoch, sub.seq)
                if conn.subscriptions.get(sub.channel) is not sub or conn.closed:
                    return
                if resumed.snapshot is not None:
                    if resumed.snapshot.seq > sub.seq or resumed.snapshot.epoch != sub.epoch:
                        conn.push(sub, resumed.snapshot, force=True)
                else:
                    for update in resumed.updates:
                        if update.seq > sub.seq:
                            conn.push(sub, update, force=True)

    def _go_live(self, conn: Connection, sub: Subscription) -> None:
        pending = sub.pending
        sub.pending = NO_PENDING
        sub.mode = Mode.LIVE
        for envelope in pending:
            if sub.mode is not Mode.LIVE:
                break
            conn.accept(sub, envelope)


def _behind(snapshot: Envelope, since: tuple[str, int] | None) -> bool:
    """Whether a store's snapshot is older than (or as old as) what the client already has."""
    return since is not None and snapshot.epoch == since[0] and snapshot.seq <= since[1]
