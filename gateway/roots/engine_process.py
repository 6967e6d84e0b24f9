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
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Iterable
from typing import Any

from gateway.roots.distributed_args import add_kafka_arguments, kafka_config
from gateway.roots.embedded import EmbeddedConfig, EmbeddedRuntime
from gateway.seams.bus_kafka import KafkaBus
from gateway.seams.candles_redis import RedisCandleArchive, RedisCandleConfig
from gateway.seams.commands_kafka import CommandServer, method_of
from gateway.seams.kafka_config import KafkaConfig
from gateway.seams.symbols_redis import RedisSymbols
from gateway.trading.order_service_kafka import serve_request
from runtime.tasks import cancel_and_wait

log = logging.getLogger("quotegate.engine")

SYMBOLS_INTERVAL_S = 0.5


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


class EngineProcess:
    """The runtime, its command server and the instrument list (see the module docstring)."""

    def __init__(self, embedded: EmbeddedConfig, kafka: KafkaConfig, *, key_prefix: str = "qg:"):
        if not embedded.redis_url:
            raise ValueError("the engine process needs Redis (--redis URL)")
        self.kafka = kafka
        self.bus = KafkaBus(kafka, consume=False, name="engine", before_send=self._durable)
        archive = RedisCandleArchive(
            RedisCandleConfig(
                url=embedded.redis_url,
                key_prefix=key_prefix,
                retention_ms=embedded.candles_retention_ms,
            )
        )
        self.runtime = EmbeddedRuntime(embedded, bus=self.bus, archive=archive)
        journal = self.runtime.journal
        self.offsets: OffsetLog | None = None
        start: dict[int, int] = {}
        if journal is not None:
            path = f"{journal.config.path}.offsets"
            start = OffsetLog.next_offsets(path, journal.restored_records)
            self.offsets = OffsetLog(path)
        self.server = CommandServer(
            kafka,
            self._handle,
            before=self._before,
            start_offsets=start,
            from_end=journal is None,
        )
        self.symbols = RedisSymbols(embedded.redis_url, key_prefix=key_prefix, reader=False)
        self._task: asyncio.Task[None] | None = None

    async def _durable(self) -> None:
        """Before market data leaves the process: the journal holds the commands that made
        it (written, and synced unless ``--fsync never``). A crash then never leaves clients
        with seqs that the restarted engine numbers differently."""
        journal = self.runtime.journal
        if journal is not None and not journal.journal.closed:
            journal.journal.flush()

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
        return await serve_request(self.runtime.order_service, method, args)

    async def start(self) -> None:
        await self.runtime.start()
        await self.symbols.start()
        await self.symbols.publish(self.runtime.symbols())
        await self.server.start()
        self._task = asyncio.create_task(self._symbols_loop(), name="symbols-publish")

    async def close(self) -> None:
        """Stop taking commands, stop the feed, flush and close. Idempotent."""
        task, self._task = self._task, None
        await cancel_and_wait(task)
        await self.server.close()
        await self.runtime.close()
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
        prefix = getattr(args, "key_prefix", None) or os.environ.get("QUOTEGATE_KEY_PREFIX", "qg:")
        process = EngineProcess(embedded, kafka, key_prefix=prefix)
    except (AccountsError, JournalError, ValueError, OSError) as exc:
        print(f"quotegate engine: {exc}", file=sys.stderr)
        return 2
    return asyncio.run(_serve(process))


async def _serve(process: EngineProcess) -> int:
    stop = asyncio.Event()
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
    lines.append("quotegate engine: ready")
    print("\n".join(lines), file=sys.stderr, flush=True)
    try:
        await stop.wait()
    finally:
        await process.close()
    return 0
