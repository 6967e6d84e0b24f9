"""Standby engines and failover (``quotegate engine --failover``).

Every engine started with ``--failover`` starts as a **standby**: it restores its own journal,
then follows the **engine log** (records on the events topic with key ``quotegate.engine.log``,
so all in one partition, in order) and applies each record exactly as the leader ran it
(:meth:`~gateway.roots.embedded.EmbeddedRuntime.apply_sequenced`: journaled locally, run through
``Engine.submit_sequenced``, the publisher fed; its envelopes kept per channel, not published).
Its state is hot: the same engine, the same publisher seqs.

Meanwhile it tries to take the **lease** (:class:`~gateway.seams.lease_redis.RedisLease`) every
``poll_ms``. The engine that gets it **takes over** (:meth:`Failover.take_over`):

1. the snapshot store is fenced with the new token (a deposed leader's Redis writes fail);
2. a fence marker goes to every market-data partition (gateways drop the old leader's later
   records) and one to the engine log (standbys drop its later log records);
3. it reads the engine log to the end: everything the old leader logged before the fence;
4. it leaves shadow mode: the kept envelopes newer than Redis's are recorded, all of them are
   published again (gateways drop the seqs they already have: the old leader's last unsent
   envelopes reach clients, nothing twice);
5. it starts as leader: the feed (with fresh client order ids), the command channel from the
   offsets the log recorded, the lease renewal.

As **leader** each journaled record is also written to the engine log (a tee on the journal),
with its fencing token and, for a Kafka command, its source partition and offset. Nothing leaves
the leader before its log records are acknowledged by the broker: market data, store batches and
answers to the gateways all wait for the log (``durable``). So whatever a client saw, a standby
has. A leader that cannot renew its lease within the TTL stops taking commands and exits
(``deposed``); whatever it still sends is fenced.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from engine.commands import Command
from engine.journal_format import decode_record, encode_record
from gateway.roots.embedded import EmbeddedRuntime
from gateway.seams.bus_kafka import FENCE_HEADER, TOKEN_HEADER, KafkaBus, header_int
from gateway.seams.kafka_config import KafkaConfig
from gateway.seams.kafka_io import Sender, TopicReader, ensure_topics
from gateway.seams.lease_redis import RedisLease
from gateway.seams.store_redis import RedisSnapshotStore
from runtime.tasks import cancel_and_wait

log = logging.getLogger("quotegate.failover")

LOG_KEY = b"quotegate.engine.log"
SOURCE_HEADER = "src"


class EngineLog:
    """Both sides of the engine log: the leader's tee, a standby's follower."""

    def __init__(self, config: KafkaConfig, runtime: EmbeddedRuntime, *, name: str) -> None:
        self.config = config
        self.runtime = runtime
        self.sender = Sender(config, name=f"{name}-log")
        self.token = 0
        self.source: tuple[int, int] | None = None
        """The Kafka record being run (partition, offset), set by the command server."""
        self.next_offsets: dict[int, int] = {}
        self._fence = 0
        self._reader = TopicReader(
            config, config.events_topic, self._on_record, name=f"{name}-follow", from_end=False
        )
        self.applied = 0
        self.fenced = 0
        self.gap: str | None = None

    # -- leader ------------------------------------------------------------------------------

    def tee(self, in_seq: int, ts: int, cmd: Command) -> None:
        """The journal tee: one log record per journaled command (only while leader)."""
        if not self.token:
            return
        headers: list[tuple[str, bytes]] = [(TOKEN_HEADER, b"%d" % self.token)]
        if self.source is not None:
            headers.append((SOURCE_HEADER, b"%d:%d" % self.source))
        self.sender.send(
            self.config.events_topic, encode_record(in_seq, ts, cmd), key=LOG_KEY, headers=headers
        )

    async def fence(self, token: int) -> None:
        self.sender.send(
            self.config.events_topic, b"", key=LOG_KEY, headers=((FENCE_HEADER, b"%d" % token),)
        )
        await self.sender.flush()

    # -- standby -----------------------------------------------------------------------------

    async def follow(self) -> None:
        if self.config.create_topics:
            await ensure_topics(self.config)
        await self.sender.start()
        await self._reader.start()

    async def caught_up(self) -> None:
        await self._reader.caught_up()

    async def stop_following(self) -> None:
        """Stop applying records now (the consumer itself is closed by ``close``)."""
        await self._reader.pause()

    async def close(self) -> None:
        await self._reader.close()
        await self.sender.close()

    def _on_record(self, record: Any) -> None:
        if record.key != LOG_KEY:
            return  # an answer to a gateway
        fence = header_int(record, FENCE_HEADER)
        if fence is not None:
            self._fence = max(self._fence, fence)
            return
        token = header_int(record, TOKEN_HEADER) or 0
        if token < self._fence:
            self.fenced += 1  # a deposed leader's late record
            return
        decoded = decode_record(record.value)
        if decoded is None:
            log.error("engine log: an undecodable record at offset %d", record.offset)
            return
        in_seq, ts, cmd = decoded
        engine = self.runtime.engine
        if in_seq <= engine.in_seq:
            self._note_source(record)
            return  # already here (restored from the local journal)
        if in_seq != engine.in_seq + 1:
            self.gap = f"the engine log jumps from inSeq {engine.in_seq} to {in_seq}"
            log.error("engine log: %s; this standby cannot follow", self.gap)
            return
        self.runtime.apply_sequenced(in_seq, ts, cmd)
        self._note_source(record)
        self.applied += 1

    def _note_source(self, record: Any) -> None:
        for name, value in record.headers or ():
            if name == SOURCE_HEADER:
                partition, offset = (int(x) for x in bytes(value).split(b":"))
                if offset + 1 > self.next_offsets.get(partition, 0):
                    self.next_offsets[partition] = offset + 1


class Failover:
    """The lease loop of one engine: standby until it takes over, then leader until deposed."""

    def __init__(
        self,
        *,
        lease: RedisLease,
        engine_log: EngineLog,
        bus: KafkaBus,
        store: RedisSnapshotStore,
        become_leader: Callable[[int], Awaitable[None]],
        deposed: Callable[[], None],
        poll_ms: int = 100,
    ) -> None:
        self.lease = lease
        self.log = engine_log
        self.bus = bus
        self.store = store
        self._become_leader = become_leader
        self._deposed = deposed
        self._poll_s = poll_ms / 1000
        self._task: asyncio.Task[None] | None = None
        self.leader = asyncio.Event()
        self.takeover_s: float | None = None

    async def start(self) -> None:
        await self.log.follow()
        self._task = asyncio.create_task(self._run(), name="engine-lease")

    async def close(self) -> None:
        task, self._task = self._task, None
        await cancel_and_wait(task)
        if self.leader.is_set():
            try:
                await self.lease.release()
            except Exception as exc:
                log.warning("lease: release failed: %s", exc)
        await self.log.close()
        await self.lease.close()

    async def _run(self) -> None:
        token = 0
        while not token:
            try:
                token = await self.lease.acquire()
            except Exception as exc:
                log.warning("lease: cannot reach Redis: %s", exc)
            if not token:
                await asyncio.sleep(self._poll_s)
        loop = asyncio.get_running_loop()
        started = loop.time()
        renewing = asyncio.create_task(self._renew(token), name="engine-lease-renew")
        try:
            await self.take_over(token)
            self.takeover_s = loop.time() - started
            log.warning("leader, fencing token %d (took over in %.3f s)", token, self.takeover_s)
            self.leader.set()
            await renewing
        finally:
            await cancel_and_wait(renewing)

    async def take_over(self, token: int) -> None:
        loop = asyncio.get_running_loop()
        marks = [loop.time()]
        self.store.fence = (self.lease.fence_key, token)
        await self.bus.start()
        await asyncio.gather(self.bus.fence(token), self.log.fence(token))
        marks.append(loop.time())
        await self.log.caught_up()
        await self.log.stop_following()
        marks.append(loop.time())
        if self.log.gap is not None:
            raise RuntimeError(f"cannot take over: {self.log.gap}")
        self.log.token = token
        await self._become_leader(token)
        marks.append(loop.time())
        fence_s, catch_s, lead_s = (b - a for a, b in itertools.pairwise(marks))
        log.info(
            "takeover: fences %.3f s, log caught up %.3f s, leading %.3f s",
            fence_s,
            catch_s,
            lead_s,
        )

    async def _renew(self, token: int) -> None:
        loop = asyncio.get_running_loop()
        ttl_s = self.lease.ttl_ms / 1000
        held_until = loop.time() + ttl_s
        while True:
            await asyncio.sleep(ttl_s / 3)
            now = loop.time()
            try:
                ok = await self.lease.renew()
            except Exception as exc:
                log.warning("lease: renewal failed: %s", exc)
                ok = None
            if ok:
                held_until = now + ttl_s
            elif ok is False or loop.time() >= held_until:
                log.error("lease lost (token %d): this engine is deposed", token)
                self._deposed()
                return
