"""The command channel over Kafka: gateways ask, the engine answers.

A request is one record on ``commands_topic``: key = its shard key (the order's symbol, else the
account), headers ``node`` = the asking gateway and ``method``, value = JSON
``{"req": id, "node": node, "method": m, "args": {...}}``. The engine reads every partition in
partition order (:class:`CommandServer`) and answers on ``events_topic`` with the same header and
``{"req": id, "result": ...}`` or ``{"req": id, "error": {"code": .., "message": ..}}``.

:class:`CommandClient` (a gateway) reads ``events_topic`` from the end and keeps only records
whose ``node`` header is its own (other records are skipped without being decoded); a request
without an answer within ``timeout_s`` raises :class:`~gateway.wire.errors.GatewayError`
``timeout`` (HTTP 504): the command may still run later, and the client learns its fate from
its ``orders`` stream or a query. A request that cannot even be handed to the broker within
the timeout is the same ``timeout``.

:class:`CommandServer` calls ``before(records)`` with each fetched batch before handling any
of it (the engine notes each record's offset next to its journal), then ``handle(method,
args)`` for each request in partition order, produces the answers, and commits the offsets
of handled records to the ``engine_group`` consumer group (for lag monitoring; restarts take
their positions from ``start_offsets``, see :mod:`gateway.roots.engine_process`).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import secrets
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError
from aiokafka.structs import OffsetAndMetadata

from gateway.seams.kafka_config import KafkaConfig
from gateway.seams.kafka_io import Sender, TopicReader, ensure_topics, partitions_of
from gateway.wire.errors import BAD_REQUEST, INTERNAL, TIMEOUT, GatewayError
from runtime.tasks import cancel_and_wait

log = logging.getLogger("quotegate.commands")

NODE_HEADER = "node"
METHOD_HEADER = "method"
Handle = Callable[[str, dict[str, Any]], Awaitable[Any]]
Before = Callable[[list[Any]], None]


def new_node_id(kind: str = "gw") -> str:
    """A node's id (a gateway's, an engine's): unique per process start."""
    return f"{kind}-" + secrets.token_hex(6)


def _header(record: Any, wanted: str) -> bytes | None:
    for name, value in record.headers or ():
        if name == wanted:
            return bytes(value)
    return None


def method_of(record: Any) -> bytes | None:
    """A request's method, from its header (without decoding the value)."""
    return _header(record, METHOD_HEADER)


class CommandClient:
    """A gateway's side of the command channel (see the module docstring)."""

    def __init__(self, config: KafkaConfig, *, node: str, timeout_s: float = 5.0) -> None:
        if timeout_s <= 0:
            raise ValueError("the command timeout must be positive")
        self.config = config
        self.node = node
        self.timeout_s = timeout_s
        self._node_bytes = node.encode()
        self._sender = Sender(config, name=f"{node}-cmd")
        self._reader = TopicReader(config, config.events_topic, self._on_record, name=f"{node}-ev")
        self._waiting: dict[str, asyncio.Future[Any]] = {}
        self._ids = itertools.count(1)
        self._started = False
        self.timeouts = 0

    async def start(self) -> None:
        if self._started:
            return
        self._started = True
        if self.config.create_topics:
            await ensure_topics(self.config)
        await self._reader.start()  # before the first request: its answer must not be missed
        await self._sender.start()

    async def close(self) -> None:
        self._started = False
        for future in self._waiting.values():
            if not future.done():
                future.cancel()
        await self._sender.close()
        await self._reader.close()

    async def call(self, method: str, key: str, args: Mapping[str, Any]) -> Any:
        """Send one request and wait for its answer (``GatewayError`` on an error answer or
        the timeout)."""
        if not self._started:
            raise GatewayError(INTERNAL, "the command channel is not started")
        req = f"{self.node}.{next(self._ids)}"
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiting[req] = future
        body = {"req": req, "node": self.node, "method": method, "args": dict(args)}
        try:
            self._sender.send(
                self.config.commands_topic,
                orjson.dumps(body),
                key=key.encode(),
                headers=((NODE_HEADER, self._node_bytes), (METHOD_HEADER, method.encode())),
            )
            return await asyncio.wait_for(future, self.timeout_s)
        except TimeoutError:
            self.timeouts += 1
            raise GatewayError(
                TIMEOUT,
                f"the engine did not answer within {self.timeout_s:g} s; the command may "
                "still be executed (check the order's status)",
            ) from None
        finally:
            self._waiting.pop(req, None)

    def _on_record(self, record: Any) -> None:
        if _header(record, NODE_HEADER) != self._node_bytes:
            return
        msg = orjson.loads(record.value)
        future = self._waiting.get(msg.get("req"))
        if future is None or future.done():
            return  # answered after its timeout, or for an earlier process of this node id
        error = msg.get("error")
        if error is not None:
            future.set_exception(GatewayError(str(error["code"]), str(error["message"])))
        else:
            future.set_result(msg.get("result"))


class CommandServer:
    """The engine's side: reads every partition of ``commands_topic`` and answers requests."""

    def __init__(
        self,
        config: KafkaConfig,
        handle: Handle,
        *,
        before: Before | None = None,
        start_offsets: Mapping[int, int] | None = None,
        from_end: bool = False,
        events: Sender | None = None,
        max_records: int = 500,
    ) -> None:
        self.config = config
        self._handle = handle
        self._before = before
        self._start_offsets = dict(start_offsets or {})
        self._from_end = from_end
        self._events = events or Sender(config, name="engine-answers")
        self._owns_events = events is None
        self._max_records = max_records
        self._consumer: AIOKafkaConsumer | None = None
        self._connected: tuple[AIOKafkaConsumer, list[TopicPartition]] | None = None
        self._task: asyncio.Task[None] | None = None
        self.current: tuple[int, int] | None = None
        """(partition, offset) of the request being handled, else ``None``."""
        self.handled = 0
        self.bad_requests = 0
        self.commit_errors = 0

    def set_start_offsets(self, offsets: Mapping[int, int]) -> None:
        """Where to start each partition (before ``start``)."""
        self._start_offsets = dict(offsets)

    async def connect(self) -> None:
        """Connect and learn the partitions without reading yet (a standby engine does this
        ahead of a takeover). Idempotent."""
        if self._connected is not None:
            return
        cfg = self.config
        if cfg.create_topics:
            await ensure_topics(cfg)
        if self._owns_events:
            await self._events.start()
        consumer = AIOKafkaConsumer(
            bootstrap_servers=cfg.bootstrap,
            client_id=f"{cfg.client_id}-engine-commands",
            group_id=cfg.engine_group,
            enable_auto_commit=False,
            auto_offset_reset="latest" if self._from_end else "earliest",
            fetch_max_wait_ms=cfg.fetch_max_wait_ms,
            request_timeout_ms=max(cfg.request_timeout_ms, 40_000),
        )
        await consumer.start()
        try:
            partitions = await partitions_of(consumer, cfg.commands_topic)
        except BaseException:
            await consumer.stop()
            raise
        self._connected = (consumer, partitions)

    async def start(self) -> None:
        """Seek (``start_offsets``, the group's offsets, the end or the beginning) and start
        reading. Idempotent."""
        if self._consumer is not None:
            return
        await self.connect()
        assert self._connected is not None
        consumer, partitions = self._connected
        consumer.assign(partitions)
        await self._seek(consumer, partitions)
        self._consumer = consumer
        self._task = asyncio.create_task(self._loop(consumer), name="engine-commands")

    async def _seek(self, consumer: AIOKafkaConsumer, partitions: list[TopicPartition]) -> None:
        """``start_offsets`` first, else the group's committed offset, else the end or the
        beginning (``from_end``)."""
        rest: list[TopicPartition] = []
        for tp in partitions:
            offset = self._start_offsets.get(tp.partition)
            if offset is None:
                with contextlib.suppress(KafkaError):
                    offset = await consumer.committed(tp)
            if offset is None:
                rest.append(tp)
            else:
                consumer.seek(tp, offset)
        if rest:
            if self._from_end:
                await consumer.seek_to_end(*rest)
            else:
                await consumer.seek_to_beginning(*rest)
        for tp in partitions:
            await consumer.position(tp)

    async def close(self) -> None:
        task, self._task = self._task, None
        await cancel_and_wait(task)
        self._consumer = None
        connected, self._connected = self._connected, None
        if connected is not None:
            with contextlib.suppress(Exception):
                await connected[0].stop()
        if self._owns_events:
            await self._events.close()

    async def _loop(self, consumer: AIOKafkaConsumer) -> None:
        while True:
            try:
                batch = await consumer.getmany(timeout_ms=200, max_records=self._max_records)
            except KafkaError as exc:
                log.warning("commands: fetch failed (retrying): %s", exc)
                await asyncio.sleep(0.2)
                continue
            if not batch:
                continue
            records = [r for recs in batch.values() for r in recs]
            if self._before is not None:
                self._before(records)
            for record in records:
                await self._one(record)
            commits = {tp: OffsetAndMetadata(recs[-1].offset + 1, "") for tp, recs in batch.items()}
            try:
                await consumer.commit(commits)
            except KafkaError as exc:
                self.commit_errors += 1
                log.debug("commands: offset commit failed: %s", exc)

    async def _one(self, record: Any) -> None:
        try:
            msg = orjson.loads(record.value)
            req, node, method = msg["req"], msg["node"], msg["method"]
            args = msg.get("args") or {}
            if not (isinstance(req, str) and isinstance(node, str) and isinstance(method, str)):
                raise TypeError("req, node and method must be strings")
            if not isinstance(args, dict):
                raise TypeError("args must be an object")
        except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
            self.bad_requests += 1
            log.warning("commands: skipped a malformed request at %s: %s", record.offset, exc)
            return
        self.current = (record.partition, record.offset)
        try:
            answer: dict[str, Any] = {"req": req, "result": await self._handle(method, args)}
        except GatewayError as exc:
            answer = {"req": req, "error": {"code": exc.code, "message": exc.message}}
        except (KeyError, TypeError, ValueError) as exc:
            answer = {"req": req, "error": {"code": BAD_REQUEST, "message": str(exc)[:200]}}
        except Exception:
            log.exception("commands: %s failed", method)
            answer = {"req": req, "error": {"code": INTERNAL, "message": "internal error"}}
        finally:
            self.current = None
        self.handled += 1
        self._events.send(
            self.config.events_topic,
            orjson.dumps(answer),
            key=node.encode(),
            headers=((NODE_HEADER, node.encode()),),
        )
