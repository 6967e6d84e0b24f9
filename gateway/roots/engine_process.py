"""``quotegate engine --kafka B --redis R``: the engine process of distributed mode.

The embedded runtime (:mod:`gateway.roots.embedded`: engine, publisher, feed, journal) with a
Kafka bus in place of the memory bus and the Redis candle archive in place of SQLite, plus:

* the **command channel's server** (:class:`~gateway.seams.commands_kafka.CommandServer`): the
  gateways' order entry and private queries, read from every partition of the commands topic in
  partition order and run through the runtime's one sequencing point, answered on the events
  topic;
* the **instrument list** in Redis (:class:`~gateway.seams.symbols_redis.RedisSymbols`) for the
  gateways' ``GET /v1/symbols`` and channel checks.

Snapshots and per-channel history go to Redis (``--redis``, required); market data goes to the
market-data topic, each hand-over to the producer only after the journal has flushed the
commands that made it (``_durable``).

**Restart** (with ``--journal PATH``): the runtime restores the engine and the publisher from the
journal and keeps the epoch, so every channel's seq continues where it was and the Redis history
lines up. Which Kafka records the journal already holds is in ``PATH.offsets``
(:class:`OffsetLog`): before a fetched batch runs, one line ``<inSeq> <partition> <offset>`` per
record is written (one ``write``), naming the input sequence number the record gets. At start the
server seeks each partition past the last record whose ``inSeq`` the journal holds; a record the
journal lost is read again, none is run twice. Partitions the file does not name start at the
consumer group's committed offset, else at the beginning (at the end without a journal).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import dataclasses
import logging
import os
import signal
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from redis.exceptions import RedisError

from engine.commands import Command
from gateway.roots.distributed_args import add_kafka_arguments, kafka_config
from gateway.roots.embedded import EmbeddedRuntime
from gateway.roots.embedded_config import EmbeddedConfig
from gateway.roots.engine_failover import EngineLog, Failover
from gateway.seams.bus_kafka import KafkaBus
from gateway.seams.candles_redis import RedisCandleArchive, RedisCandleConfig
from gateway.seams.commands_kafka import CommandServer, method_of, new_node_id
from gateway.seams.kafka_config import KafkaConfig
from gateway.seams.kafka_io import Sender
from gateway.seams.lease_redis import RedisLease
from gateway.seams.store_redis import RedisSnapshotStore
from gateway.seams.symbols_redis import RedisSymbols
from gateway.trading.order_service_kafka import serve_request
from runtime.tasks import cancel_and_wait

log = logging.getLogger("quotegate.engine")

SYMBOLS_INTERVAL_S = 0.5
REPUBLISH_MAX = 256
"""Envelopes per channel a new leader publishes again from what it kept as a standby: what
the old leader may not have sent (its market data waits only for its log records, so the
unsent part is a few hand-overs at most)."""


class OffsetLog:
    """``PATH.offsets``: which commands-topic record got which input sequence number."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    @staticmethod
    def next_offsets(path: str, last_in_seq: int) -> dict[int, int]:
        """Per partition, the offset after the last record whose ``inSeq`` is at most
        ``last_in_seq`` (what the journal holds)."""
        out: dict[int, int] = {}
        with contextlib.suppress(FileNotFoundError), open(path, "rb") as f:
            for line in f:
                parts = line.split()
                if len(parts) != 3:
                    continue  # a torn last line
                try:
                    in_seq, partition, offset = (int(x) for x in parts)
                except ValueError:
                    continue
                if in_seq <= last_in_seq and offset + 1 > out.get(partition, -1):
                    out[partition] = offset + 1
        return out

    def note(self, entries: Iterable[tuple[int, int, int]]) -> None:
        data = b"".join(b"%d %d %d\n" % entry for entry in entries)
        if data:
            os.write(self._fd, data)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self._fd)


@dataclass(frozen=True, kw_only=True)
class FailoverConfig:
    """``--failover``: compete for the leader lease (``lease_ttl_ms``), standby until taken;
    ``node_id`` names this engine in the lease."""

    node_id: str
    lease_ttl_ms: int = 1000
    poll_ms: int = 100


class EngineProcess:
    """The runtime, its command server and the instrument list (see the module docstring);
    with ``failover``, a standby until it takes the lease (:mod:`gateway.roots.engine_failover`)."""

    def __init__(
        self,
        embedded: EmbeddedConfig,
        kafka: KafkaConfig,
        *,
        key_prefix: str = "qg:",
        failover: FailoverConfig | None = None,
    ):
        if not embedded.redis_url:
            raise ValueError("the engine process needs Redis (--redis URL)")
        if failover is not None:
            if embedded.journal is None:
                raise ValueError("--failover needs a journal (--journal PATH)")
            if embedded.publisher is not None and any(embedded.publisher.conflate_ms.values()):
                raise ValueError("--failover needs every change published (no --conflate-ms)")
        self.kafka = kafka
        self.key_prefix = key_prefix
        self.bus = KafkaBus(kafka, consume=False, name="engine", before_send=self._durable)
        archive = RedisCandleArchive(
            RedisCandleConfig(
                url=embedded.redis_url,
                key_prefix=key_prefix,
                retention_ms=embedded.candles_retention_ms,
            )
        )
        # market data, store batches and answers wait for the journal's sync (_durable)
        self.runtime = EmbeddedRuntime(
            embedded,
            bus=self.bus,
            archive=archive,
            journal_tee=self._tee,
            synced_before_publish=True,
        )
        journal = self.runtime.journal
        self.offsets: OffsetLog | None = None
        start: dict[int, int] = {}
        if journal is not None:
            path = f"{journal.config.path}.offsets"
            start = OffsetLog.next_offsets(path, journal.restored_records)
            self.offsets = OffsetLog(path)
        self._start_offsets = start
        self._answers = Sender(kafka, name="engine-answers", before_send=self._durable)
        self.server = CommandServer(
            kafka,
            self._handle,
            before=self._before,
            start_offsets=start,
            from_end=journal is None,
            events=self._answers,
        )
        self.symbols = RedisSymbols(embedded.redis_url, key_prefix=key_prefix, reader=False)
        store = self.runtime.store
        if isinstance(store, RedisSnapshotStore):
            store.before_write = self._durable
        self.failover: Failover | None = None
        self.engine_log: EngineLog | None = None
        if failover is not None:
            assert isinstance(store, RedisSnapshotStore)
            self.engine_log = EngineLog(kafka, self.runtime, name=failover.node_id)
            self.failover = Failover(
                lease=RedisLease(
                    embedded.redis_url,
                    node=failover.node_id,
                    key_prefix=key_prefix,
                    ttl_ms=failover.lease_ttl_ms,
                ),
                engine_log=self.engine_log,
                bus=self.bus,
                store=store,
                become_leader=self._lead,
                deposed=self._deposed,
                poll_ms=failover.poll_ms,
            )
        self._task: asyncio.Task[None] | None = None
        self.stopped = asyncio.Event()
        self.exit_code = 0

    def _tee(self, in_seq: int, ts: int, cmd: Command) -> None:
        if self.engine_log is not None:
            self.engine_log.tee(in_seq, ts, cmd)

    async def _durable(self) -> None:
        """Before anything leaves the process (market data, store batches, answers): the
        journal holds the commands behind it (written, and synced unless ``--fsync never``)
        and, with failover, the broker has acknowledged their engine-log records. A crash then
        never leaves clients with seqs that the next engine numbers differently."""
        journal = self.runtime.journal
        if journal is not None and not journal.journal.closed:
            await asyncio.to_thread(journal.journal.flush_begin())  # the loop never blocks
        if self.engine_log is not None and self.engine_log.token:
            await self.engine_log.sender.flush()

    def _before(self, records: list[Any]) -> None:
        """Note the inSeq each record will get (only ``submit`` takes one) before any runs."""
        if self.offsets is None:
            return
        in_seq = self.runtime.engine.in_seq
        entries = []
        for record in records:
            if method_of(record) == b"submit":
                in_seq += 1
            entries.append((in_seq, record.partition, record.offset))
        self.offsets.note(entries)

    async def _handle(self, method: str, args: dict[str, Any]) -> Any:
        if self.engine_log is not None:
            self.engine_log.source = self.server.current
        try:
            return await serve_request(self.runtime.order_service, method, args)
        finally:
            if self.engine_log is not None:
                self.engine_log.source = None

    async def start(self) -> None:
        await self.symbols.start()
        if self.failover is None:
            await self.runtime.open()
            # what the previous run may have died before sending (gateways drop what they have)
            tail, self.runtime.restored_tail = self.runtime.restored_tail, []
            for envelope in tail:
                self.bus.publish(envelope)
            await self.runtime.begin()
            await self._serve_commands(self._start_offsets)
            return
        runtime = self.runtime
        runtime.shadow = True
        runtime.shadow_pending = []
        await runtime.open(storage=False)
        # everything a takeover needs, connected ahead; the store refuses writes until then
        assert isinstance(runtime.store, RedisSnapshotStore)
        runtime.store.fence = (self.failover.lease.fence_key, 0)
        await runtime.start_storage()
        await self._answers.start()
        await self.server.connect()
        await self.failover.start()

    async def _serve_commands(self, offsets: dict[int, int]) -> None:
        await self.symbols.publish(self.runtime.symbols())
        await self._answers.start()
        self.server.set_start_offsets(offsets)
        await self.server.start()
        self._task = asyncio.create_task(self._symbols_loop(), name="symbols-publish")

    async def _lead(self, token: int) -> None:
        """Take over as leader (:meth:`Failover.take_over` has fenced and caught up)."""
        runtime = self.runtime
        assert isinstance(runtime.store, RedisSnapshotStore)
        runtime.set_coid_prefix(f"f{token}.")
        envelopes = runtime.take_shadow()
        runtime.shadow = False
        stored = await runtime.store.positions(sorted({e.channel for e in envelopes}))
        counts = collections.Counter(e.channel for e in envelopes)
        skip = {ch: max(0, n - REPUBLISH_MAX) for ch, n in counts.items()}
        for envelope in envelopes:  # per channel in seq order; the newest REPUBLISH_MAX
            if skip[envelope.channel]:
                skip[envelope.channel] -= 1
                continue
            epoch, seq = stored.get(envelope.channel, ("", 0))
            if envelope.epoch != epoch or envelope.seq > seq:
                runtime.store.record(envelope)
            self.bus.publish(envelope)  # gateways drop the seqs they already have
        pending, runtime.shadow_pending = runtime.shadow_pending or [], None
        runtime.record_snapshots(pending)
        await runtime.begin()
        assert self.engine_log is not None
        offsets = dict(self._start_offsets)
        for partition, offset in self.engine_log.next_offsets.items():
            offsets[partition] = max(offset, offsets.get(partition, 0))
        await self._serve_commands(offsets)

    def _deposed(self) -> None:
        self.exit_code = 3
        self.stopped.set()

    async def close(self) -> None:
        """Stop taking commands, stop the feed, flush and close. Idempotent."""
        task, self._task = self._task, None
        await cancel_and_wait(task)
        await self.server.close()
        if self.failover is not None:
            await self.failover.close()
        await self.runtime.close()
        await self._answers.close()
        await self.symbols.close()
        if self.offsets is not None:
            self.offsets.close()

    async def _symbols_loop(self) -> None:
        while True:
            await asyncio.sleep(SYMBOLS_INTERVAL_S)
            try:
                await self.symbols.publish(self.runtime.symbols())
            except Exception as exc:
                log.debug("symbols: publish failed: %s", exc)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from gateway.roots.run import add_engine_arguments

    add_engine_arguments(parser)
    add_kafka_arguments(parser)
    parser.add_argument(
        "--key-prefix", help="prefix of every Redis key (QUOTEGATE_KEY_PREFIX, default qg:)"
    )
    parser.add_argument(
        "--failover",
        action="store_true",
        default=None,
        help="run as one of several engines: a standby until it takes the leader lease "
        "(QUOTEGATE_FAILOVER=1; needs --journal)",
    )
    parser.add_argument(
        "--lease-ttl-ms",
        type=int,
        help="with --failover: the leader lease's TTL; a standby takes over within about "
        "this after the leader dies (QUOTEGATE_LEASE_TTL_MS, default 1000)",
    )
    parser.add_argument(
        "--node-id", help="this engine's name in the lease (QUOTEGATE_NODE_ID, default random)"
    )


def run(args: argparse.Namespace) -> int:
    from engine.journal import JournalError
    from gateway.roots.run import embedded_config, settings
    from gateway.trading.accounts import AccountsError

    try:
        s = settings(args)
        logging.basicConfig(
            level=str(s["log_level"]).upper(),
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        )
        embedded = embedded_config(s)
        kafka = kafka_config(args, client_id="quotegate-engine")
        env = os.environ
        prefix = getattr(args, "key_prefix", None) or env.get("QUOTEGATE_KEY_PREFIX", "qg:")
        failover = None
        if args.failover or env.get("QUOTEGATE_FAILOVER", "") in ("1", "true", "yes"):
            failover = FailoverConfig(
                node_id=args.node_id or env.get("QUOTEGATE_NODE_ID") or new_node_id("engine"),
                lease_ttl_ms=args.lease_ttl_ms or int(env.get("QUOTEGATE_LEASE_TTL_MS", 1000)),
            )
            if embedded.redis_url:
                embedded = _shared_epoch(embedded, prefix)
        process = EngineProcess(embedded, kafka, key_prefix=prefix, failover=failover)
    except (AccountsError, JournalError, ValueError, OSError, RedisError) as exc:
        print(f"quotegate engine: {exc}", file=sys.stderr)
        return 2
    return asyncio.run(_serve(process))


def _shared_epoch(embedded: EmbeddedConfig, prefix: str) -> EmbeddedConfig:
    """With failover every engine numbers the same history: the epoch is the one in Redis
    (``P epoch``), set by the first engine ever started on it."""
    import redis

    from gateway.marketdata.publisher import PublisherConfig
    from gateway.marketdata.sequencing import new_epoch

    assert embedded.redis_url is not None
    client = redis.Redis.from_url(embedded.redis_url, socket_timeout=5)
    try:
        key = f"{prefix}epoch"
        client.set(key, new_epoch(), nx=True)
        raw = client.get(key)
    finally:
        client.close()
    epoch = raw.decode() if isinstance(raw, bytes) else str(raw)
    publisher = dataclasses.replace(embedded.publisher or PublisherConfig(), epoch=epoch)
    return dataclasses.replace(embedded, publisher=publisher)


async def _serve(process: EngineProcess) -> int:
    stop = process.stopped
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await process.start()
    except Exception as exc:
        print(f"quotegate engine: cannot start: {exc}", file=sys.stderr)
        await process.close()
        return 1
    runtime = process.runtime
    lines = [
        f"quotegate engine: kafka {process.kafka.bootstrap} redis {runtime.config.redis_url} "
        f"feed={runtime.config.feed} symbols={','.join(s['symbol'] for s in runtime.symbols())}",
    ]
    if runtime.journal is not None:
        lines.append(
            f"quotegate engine: journal {runtime.journal.config.path} "
            f"({runtime.restored_commands} commands restored)"
        )
    if runtime.accounts.demo_key is not None:
        lines.append(f"quotegate engine: demo account 'demo', API key: {runtime.accounts.demo_key}")
    if process.failover is not None:
        lines.append(f"quotegate engine: standby {process.failover.lease.node}")
    lines.append("quotegate engine: ready")
    print("\n".join(lines), file=sys.stderr, flush=True)
    announce = asyncio.create_task(_announce(process)) if process.failover is not None else None
    try:
        await stop.wait()
    finally:
        await cancel_and_wait(announce)
        await process.close()
    return process.exit_code


async def _announce(process: EngineProcess) -> None:
    failover = process.failover
    assert failover is not None
    await failover.leader.wait()
    print(
        f"quotegate engine: leader, token {failover.lease.token}, took over in "
        f"{failover.takeover_s or 0:.3f} s",
        file=sys.stderr,
        flush=True,
    )
