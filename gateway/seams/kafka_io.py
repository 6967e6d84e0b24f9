"""The Kafka building blocks under the bus and the command channel (``aiokafka``).

* :func:`ensure_topics` creates the three topics with their partition counts (an existing topic
  is used as it is).
* :class:`Sender`: a producer whose ``send`` is synchronous and never blocks: records go to a
  bounded buffer that the sender's own task hands to the producer (which batches per partition,
  ``linger_ms``, and keeps per-partition order: one request in flight per partition).
  ``flush()`` waits until everything handed over so far is acknowledged. ``before_send`` runs
  before each hand-over of what is queued (the engine makes its journal durable there, so no
  record leaves the process ahead of the commands that made it).
* :class:`TopicReader`: reads every partition of one topic without a consumer group (each node
  reads everything), from the end or from given offsets, and calls ``on_record`` for each
  record in partition order. ``caught_up()`` waits until it has read what the topic held when
  called.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError

from gateway.seams.kafka_config import KafkaConfig
from runtime.tasks import cancel_and_wait

log = logging.getLogger("quotegate.kafka")

TOPIC_EXISTS = 36  # Kafka's TOPIC_ALREADY_EXISTS error code
Headers = Sequence[tuple[str, bytes]]
OnRecord = Callable[[Any], None]


async def ensure_topics(config: KafkaConfig) -> None:
    """Create the commands, market-data and events topics if they are missing."""
    wanted = [
        NewTopic(config.commands_topic, config.commands_partitions, config.replication_factor),
        NewTopic(config.marketdata_topic, config.marketdata_partitions, config.replication_factor),
        NewTopic(config.events_topic, config.events_partitions, config.replication_factor),
    ]
    admin = AIOKafkaAdminClient(
        bootstrap_servers=config.bootstrap,
        client_id=f"{config.client_id}-admin",
        request_timeout_ms=config.request_timeout_ms,
    )
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [t for t in wanted if t.name not in existing]
        if not missing:
            return
        response = await admin.create_topics(missing)
        for topic, code, *rest in response.topic_errors:
            if code not in (0, TOPIC_EXISTS):
                raise KafkaError(f"cannot create topic {topic}: error {code} {rest}")
    finally:
        await admin.close()


class Sender:
    """A producer behind a synchronous, bounded ``send`` (see the module docstring).

    ``pending_max`` bounds the records waiting for the producer; past it the oldest are
    dropped and counted in ``dropped`` (a broker down for long must not grow memory without
    bound). ``errors`` counts records the producer failed to deliver.
    """

    def __init__(
        self,
        config: KafkaConfig,
        *,
        name: str,
        pending_max: int = 100_000,
        before_send: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self._config = config
        self._name = name
        self._before_send = before_send
        self._pending: deque[tuple[str, bytes, bytes | None, Headers, int | None]] = deque(
            maxlen=pending_max
        )
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._producer: AIOKafkaProducer | None = None
        self._task: asyncio.Task[None] | None = None
        self._inflight: set[asyncio.Future[Any]] = set()
        self.idempotent = False
        self.sent = 0
        self.errors = 0
        self.dropped = 0

    async def start(self) -> None:
        """Connect the producer (idempotent when the broker grants a producer id). Idempotent."""
        if self._producer is not None:
            return
        producer = await self._connect(self._config.idempotent)
        if producer is None:
            log.warning(
                "kafka %s: the broker refused an idempotent producer id; sending ordered "
                "without idempotence (consumers drop repeated seqs)",
                self._name,
            )
            producer = await self._connect(False)
            assert producer is not None
        self._producer = producer
        self._task = asyncio.create_task(self._pump(producer), name=f"kafka-send-{self._name}")

    async def _connect(self, idempotent: bool) -> AIOKafkaProducer | None:
        cfg = self._config
        producer = AIOKafkaProducer(
            bootstrap_servers=cfg.bootstrap,
            client_id=f"{cfg.client_id}-{self._name}",
            linger_ms=cfg.linger_ms,
            compression_type=cfg.compression_type,
            max_batch_size=cfg.max_batch_bytes,
            max_request_size=max(cfg.max_batch_bytes, 1024 * 1024),
            enable_idempotence=idempotent,
            acks="all",
            request_timeout_ms=cfg.request_timeout_ms,
        )
        try:
            await producer.start()
        except KafkaError:
            with contextlib.suppress(Exception):
                await producer.stop()
            if idempotent:
                return None
            raise
        self.idempotent = idempotent
        return producer

    async def close(self) -> None:
        """Hand over and deliver what is buffered (bounded by the request timeout), stop.
        Idempotent."""
        producer, self._producer = self._producer, None
        if producer is None:
            return
        try:
            await asyncio.wait_for(self._drain(producer), self._config.request_timeout_ms / 1000)
        except (TimeoutError, KafkaError) as exc:
            log.warning("kafka %s: closing with undelivered records: %s", self._name, exc)
        task, self._task = self._task, None
        await cancel_and_wait(task)
        with contextlib.suppress(Exception):
            await producer.stop()

    def send(
        self,
        topic: str,
        value: bytes,
        *,
        key: bytes | None = None,
        headers: Headers = (),
        partition: int | None = None,
    ) -> None:
        """Queue one record (to ``partition``, else the key's); never blocks."""
        pending = self._pending
        if len(pending) == pending.maxlen:
            self.dropped += 1
        pending.append((topic, value, key, headers, partition))
        self._idle.clear()
        self._wake.set()

    async def partitions(self, topic: str) -> list[int]:
        """The topic's partition numbers (from the producer's metadata)."""
        if self._producer is None:
            raise RuntimeError("the sender is not started")
        return sorted(await self._producer.partitions_for(topic))

    async def flush(self) -> None:
        """Wait until every record sent so far is acknowledged (or failed)."""
        if self._producer is None:
            return
        await self._drain(self._producer)

    async def _drain(self, producer: AIOKafkaProducer) -> None:
        if self._task is None or self._task.done():
            await self._hand_over(producer)
        await self._idle.wait()
        if self._inflight:
            await asyncio.gather(*list(self._inflight), return_exceptions=True)

    async def _pump(self, producer: AIOKafkaProducer) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            await self._hand_over(producer)

    async def _hand_over(self, producer: AIOKafkaProducer) -> None:
        pending = self._pending
        count = len(pending)
        if count and self._before_send is not None:
            await self._before_send()  # covers what was queued before it, not what came since
            count = min(count, len(pending))
        for _ in range(count):
            topic, value, key, headers, partition = pending.popleft()
            try:
                future = await producer.send(
                    topic, value, key=key, headers=list(headers), partition=partition
                )
            except KafkaError as exc:
                self.errors += 1
                log.warning("kafka %s: send failed: %s", self._name, exc)
                continue
            self._inflight.add(future)
            future.add_done_callback(self._delivered)
        if pending:
            self._wake.set()
        else:
            self._idle.set()

    def _delivered(self, future: asyncio.Future[Any]) -> None:
        self._inflight.discard(future)
        if future.cancelled() or future.exception() is not None:
            self.errors += 1
            if self.errors == 1 or self.errors % 1000 == 0:
                log.warning("kafka %s: %d records not delivered", self._name, self.errors)
        else:
            self.sent += 1


class TopicReader:
    """Reads every partition of ``topic`` (no consumer group) and calls ``on_record`` with each
    record (an aiokafka ``ConsumerRecord``). ``start_offsets``: partition -> next offset;
    partitions not named start at the end (``from_end``) or the beginning."""

    def __init__(
        self,
        config: KafkaConfig,
        topic: str,
        on_record: OnRecord,
        *,
        name: str,
        from_end: bool = True,
        start_offsets: Mapping[int, int] | None = None,
        max_records: int = 2000,
    ) -> None:
        self._config = config
        self._topic = topic
        self._on_record = on_record
        self._name = name
        self._from_end = from_end
        self._start_offsets = dict(start_offsets or {})
        self._max_records = max_records
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None
        self._partitions: list[TopicPartition] = []
        self.received = 0
        self.errors = 0

    async def start(self) -> None:
        """Assign every partition and seek. Idempotent."""
        if self._consumer is not None:
            return
        cfg = self._config
        consumer = AIOKafkaConsumer(
            bootstrap_servers=cfg.bootstrap,
            client_id=f"{cfg.client_id}-{self._name}",
            enable_auto_commit=False,
            auto_offset_reset="latest" if self._from_end else "earliest",
            fetch_max_wait_ms=cfg.fetch_max_wait_ms,
            request_timeout_ms=max(cfg.request_timeout_ms, 40_000),
        )
        await consumer.start()
        try:
            self._partitions = await partitions_of(consumer, self._topic)
            consumer.assign(self._partitions)
            await seek(consumer, self._partitions, self._start_offsets, from_end=self._from_end)
        except BaseException:
            await consumer.stop()
            raise
        self._consumer = consumer
        self._task = asyncio.create_task(self._loop(consumer), name=f"kafka-read-{self._name}")

    async def pause(self) -> None:
        """Stop handing records to ``on_record`` (the consumer stays open until ``close``)."""
        task, self._task = self._task, None
        await cancel_and_wait(task)

    async def close(self) -> None:
        """Stop reading. Idempotent."""
        task, self._task = self._task, None
        await cancel_and_wait(task)
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            with contextlib.suppress(Exception):
                await consumer.stop()

    async def caught_up(self, timeout_s: float = 30.0) -> None:
        """Wait until every record the topic holds now has been handed to ``on_record``."""
        consumer = self._consumer
        if consumer is None:
            return
        ends: dict[TopicPartition, int] = await consumer.end_offsets(self._partitions)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        for tp, end in ends.items():
            while await consumer.position(tp) < end:
                if loop.time() > deadline:
                    raise TimeoutError(f"kafka {self._name}: not caught up with {tp}")
                await asyncio.sleep(0.005)

    async def _loop(self, consumer: AIOKafkaConsumer) -> None:
        on_record = self._on_record
        while True:
            try:
                batch = await consumer.getmany(timeout_ms=200, max_records=self._max_records)
            except KafkaError as exc:
                self.errors += 1
                log.warning("kafka %s: fetch failed (retrying): %s", self._name, exc)
                await asyncio.sleep(0.2)
                continue
            for records in batch.values():
                self.received += len(records)
                for record in records:
                    try:
                        on_record(record)
                    except Exception:
                        self.errors += 1
                        log.exception("kafka %s: a record handler failed", self._name)


async def partitions_of(
    consumer: AIOKafkaConsumer, topic: str, timeout_s: float = 30.0
) -> list[TopicPartition]:
    """The topic's partitions (waits for the metadata; the topic must exist)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        await consumer.topics()  # refreshes the metadata
        found = consumer.partitions_for_topic(topic)
        if found:
            return [TopicPartition(topic, p) for p in sorted(found)]
        if loop.time() > deadline:
            raise KafkaError(f"topic {topic} does not exist")
        await asyncio.sleep(0.1)


async def seek(
    consumer: AIOKafkaConsumer,
    partitions: Sequence[TopicPartition],
    offsets: Mapping[int, int],
    *,
    from_end: bool,
) -> None:
    """Seek each partition to ``offsets[p]``, else to the end or the beginning."""
    rest = []
    for tp in partitions:
        if tp.partition in offsets:
            consumer.seek(tp, offsets[tp.partition])
        else:
            rest.append(tp)
    if rest:
        if from_end:
            await consumer.seek_to_end(*rest)
        else:
            await consumer.seek_to_beginning(*rest)
    for tp in partitions:  # resolve lazy seeks now, so that "live from here" means now
        await consumer.position(tp)
