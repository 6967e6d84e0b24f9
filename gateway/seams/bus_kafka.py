"""The market-data bus over Kafka: the publisher's envelopes on ``marketdata_topic``.

Each envelope is one record: key = the internal channel name (``book.AAPL``,
``orders.<account>``), so one channel stays in one partition and keeps its order; value = the
envelope's wire bytes, sent as they are (encoded once by the publisher, never re-encoded).

A publishing bus (the engine: ``consume=False``) only produces; ``publish`` queues the record
and returns (:class:`~gateway.seams.kafka_io.Sender`). A consuming bus (each gateway node) reads
every partition from the end at start (live only, no shared consumer group) and calls the
listeners in partition order.

**Fencing** (a standby engine taking over, :mod:`gateway.roots.engine_failover`): a leader's
records carry its fencing token (header ``t``); a new leader first writes a fence marker (header
``fence``, empty value) to every partition, and consumers then drop records of that partition
with a smaller token: a deposed leader's late writes never reach a client.

Consumers drop an update whose seq is not past the last one seen on its channel in the same
epoch (a producer retry without idempotence, an engine taking over that re-publishes its tail):
listeners see each ``(channel, seq)`` at most once, in order. A later epoch, or a snapshot,
always passes.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from gateway.seams.bus import Listener
from gateway.seams.kafka_config import KafkaConfig
from gateway.seams.kafka_io import Sender, TopicReader, ensure_topics
from gateway.wire.envelope import SNAPSHOT, Envelope

log = logging.getLogger("quotegate.kafka")

TOKEN_HEADER = "t"
FENCE_HEADER = "fence"


def header_int(record: Any, name: str) -> int | None:
    """An integer header of a record, or ``None``."""
    for key, value in record.headers or ():
        if key == name:
            try:
                return int(value)
            except ValueError:
                return None
    return None


class KafkaBus:
    """:class:`~gateway.seams.bus.MarketDataBus` over Kafka (see the module docstring)."""

    def __init__(
        self,
        config: KafkaConfig,
        *,
        consume: bool = True,
        publish: bool = True,
        name: str = "bus",
        before_send: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        """``before_send``: see :class:`~gateway.seams.kafka_io.Sender`."""
        self.config = config
        self._topic = config.marketdata_topic
        self._sender = (
            Sender(config, name=f"{name}-md", before_send=before_send) if publish else None
        )
        self._reader = (
            TopicReader(config, self._topic, self._on_record, name=f"{name}-md")
            if consume
            else None
        )
        self._listeners: tuple[Listener, ...] = ()
        self._last: dict[str, tuple[str, int]] = {}
        self._fences: dict[int, int] = {}
        self.token = 0
        """The publishing engine's fencing token, sent with every record (0: none)."""
        self.fenced = 0
        self._started = False
        self.listener_errors = 0
        self.duplicates = 0
        self.bad_records = 0

    @property
    def sender(self) -> Sender | None:
        return self._sender

    async def start(self) -> None:
        if self._started:
            return
        self._started = True
        if self.config.create_topics:
            await ensure_topics(self.config)
        if self._sender is not None:
            await self._sender.start()
        if self._reader is not None:
            await self._reader.start()

    async def close(self) -> None:
        self._started = False
        if self._reader is not None:
            await self._reader.close()
        if self._sender is not None:
            await self._sender.close()
        self._listeners = ()

    def publish(self, envelope: Envelope) -> None:
        if self._sender is None:
            raise RuntimeError("this KafkaBus only consumes")
        token = self.token
        self._sender.send(
            self._topic,
            envelope.payload,
            key=envelope.channel.encode(),
            headers=((TOKEN_HEADER, b"%d" % token),) if token else (),
        )

    async def fence(self, token: int) -> None:
        """Become the publisher with ``token``: a fence marker on every partition (acknowledged
        before this returns), after which consumers drop records with a smaller token."""
        if self._sender is None:
            raise RuntimeError("this KafkaBus only consumes")
        self.token = token
        for partition in await self._sender.partitions(self._topic):
            self._sender.send(
                self._topic, b"", headers=((FENCE_HEADER, b"%d" % token),), partition=partition
            )
        await self._sender.flush()

    async def flush(self) -> None:
        """Wait until everything published so far is acknowledged by the broker."""
        if self._sender is not None:
            await self._sender.flush()

    async def caught_up(self) -> None:
        """Wait until every envelope the topic holds now has reached the listeners."""
        if self._reader is not None:
            await self._reader.caught_up()

    def add_listener(self, listener: Listener) -> None:
        if listener not in self._listeners:
            self._listeners = (*self._listeners, listener)

    def remove_listener(self, listener: Listener) -> None:
        self._listeners = tuple(x for x in self._listeners if x is not listener)

    def _on_record(self, record: Any) -> None:
        if record.headers:
            fence = header_int(record, FENCE_HEADER)
            if fence is not None:
                if fence > self._fences.get(record.partition, 0):
                    self._fences[record.partition] = fence
                return
            token = header_int(record, TOKEN_HEADER) or 0
            if token < self._fences.get(record.partition, 0):
                self.fenced += 1  # a deposed engine's late write
                return
        elif self._fences.get(record.partition, 0):
            self.fenced += 1
            return
        try:
            channel = record.key.decode()
            envelope = Envelope.parse(record.value, channel=channel)
        except Exception:
            self.bad_records += 1
            return
        if envelope.type != SNAPSHOT:
            last = self._last.get(channel)
            if last is not None and last[0] == envelope.epoch and envelope.seq <= last[1]:
                self.duplicates += 1
                return
        self._last[channel] = (envelope.epoch, envelope.seq)
        for listener in self._listeners:
            try:
                listener(envelope)
            except Exception:
                self.listener_errors += 1
