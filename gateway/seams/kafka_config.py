"""Configuration of the Kafka seams (:mod:`gateway.seams.bus_kafka`,
:mod:`gateway.seams.kafka_io`, :mod:`gateway.seams.commands_kafka`).

Kept apart from the implementations so a composition root can build and check it without
importing ``aiokafka``. Every field is settable from the environment as ``QUOTEGATE_KAFKA_<FIELD>``
(:meth:`KafkaConfig.from_env`), and the process roots map their flags onto it.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gateway.config import coerce_setting

COMPRESSIONS = ("none", "gzip")
"""Codecs this install can use without extra native libraries (aiokafka's gzip is built in)."""

_TOPIC_RE = re.compile(r"[A-Za-z0-9._-]{1,200}")
ENV_PREFIX = "QUOTEGATE_KAFKA_"


@dataclass(kw_only=True, frozen=True)
class KafkaConfig:
    """Where the broker is, the three topics and their partition counts, producer tuning.

    * ``commands_topic`` (key = symbol, or the account for a query or a cancel without symbol):
      order entry from every gateway to the engine; partitions shard symbols and keep each
      book's order.
    * ``marketdata_topic`` (key = channel): the publisher's envelopes, read by every gateway
      (no shared consumer group: each node reads every partition).
    * ``events_topic`` (key = the gateway node an answer goes to, else the account): the engine's
      per-command record (its input sequence number, events) and the answers to order entry.

    ``linger_ms`` and ``compression`` tune the producers, ``fetch_max_wait_ms`` how long the
    broker may hold a fetch while it has nothing new (see BENCHMARKS.md, "Distributed").
    ``idempotent``: ask the broker for an idempotent producer id; a broker that refuses it
    (Tansu's memory storage does) leaves the producer ordered but not idempotent, and
    consumers drop repeated envelopes by channel seq (logged once at start).
    ``create_topics``: create missing topics with the partition counts at start
    (``replication_factor`` each); an existing topic is used as it is.
    """

    bootstrap: str = "127.0.0.1:9092"
    commands_topic: str = "quotegate.commands"
    marketdata_topic: str = "quotegate.marketdata"
    events_topic: str = "quotegate.events"
    commands_partitions: int = 4
    marketdata_partitions: int = 8
    events_partitions: int = 4
    replication_factor: int = 1
    create_topics: bool = True
    linger_ms: int = 2
    compression: str = "none"
    max_batch_bytes: int = 256 * 1024
    idempotent: bool = True
    client_id: str = "quotegate"
    fetch_max_wait_ms: int = 10
    engine_group: str = "quotegate-engine"
    request_timeout_ms: int = 10_000

    def __post_init__(self) -> None:
        if not self.bootstrap.strip():
            raise ValueError("kafka bootstrap must name at least one host:port")
        for name in ("commands_topic", "marketdata_topic", "events_topic"):
            if not _TOPIC_RE.fullmatch(getattr(self, name)):
                raise ValueError(f"bad topic name for {name}: {getattr(self, name)!r}")
        for name in ("commands_partitions", "marketdata_partitions", "events_partitions"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if self.replication_factor < 1:
            raise ValueError("replication_factor must be at least 1")
        if self.linger_ms < 0:
            raise ValueError("linger_ms must be >= 0")
        if self.compression not in COMPRESSIONS:
            raise ValueError(f"compression must be one of {', '.join(COMPRESSIONS)}")
        if self.max_batch_bytes < 1024:
            raise ValueError("max_batch_bytes must be at least 1024")
        if self.fetch_max_wait_ms < 0:
            raise ValueError("fetch_max_wait_ms must be >= 0")
        if self.request_timeout_ms < 100:
            raise ValueError("request_timeout_ms must be at least 100")

    @property
    def compression_type(self) -> str | None:
        """``compression`` as aiokafka spells it."""
        return None if self.compression == "none" else self.compression

    @classmethod
    def from_env(
        cls, env: Mapping[str, str] | None = None, *, overrides: Mapping[str, Any] | None = None
    ) -> KafkaConfig:
        """Defaults, then ``QUOTEGATE_KAFKA_*``, then ``overrides`` (``None`` values ignored).
        Bad values raise ``ValueError``."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        base = cls()
        for f in dataclasses.fields(cls):
            raw = env.get(ENV_PREFIX + f.name.upper())
            if raw is not None and raw != "":
                values[f.name] = coerce_setting(getattr(base, f.name), raw, f"kafka {f.name}")
        for key, value in (overrides or {}).items():
            if value is None:
                continue
            if key not in {f.name for f in dataclasses.fields(cls)}:
                raise ValueError(f"unknown kafka setting {key!r}")
            values[key] = coerce_setting(getattr(base, key), value, f"kafka {key}")
        return dataclasses.replace(base, **values)
