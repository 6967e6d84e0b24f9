"""Flags shared by ``quotegate engine`` and ``quotegate gateway``: the broker, its topics and
the producers' tuning. Each flag has an environment variable; a flag wins over the environment
and the environment over the default (:class:`~gateway.seams.kafka_config.KafkaConfig`)."""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping

from gateway.seams.kafka_config import COMPRESSIONS, KafkaConfig

# flag dest -> KafkaConfig field
KAFKA_FLAGS: dict[str, str] = {
    "commands_topic": "commands_topic",
    "marketdata_topic": "marketdata_topic",
    "events_topic": "events_topic",
    "commands_partitions": "commands_partitions",
    "marketdata_partitions": "marketdata_partitions",
    "events_partitions": "events_partitions",
    "kafka_linger_ms": "linger_ms",
    "kafka_compression": "compression",
}


def add_kafka_arguments(parser: argparse.ArgumentParser) -> None:
    a = parser.add_argument
    a(
        "--kafka",
        metavar="HOST:PORT[,...]",
        help="Kafka bootstrap servers (QUOTEGATE_KAFKA or QUOTEGATE_KAFKA_BOOTSTRAP, "
        "default 127.0.0.1:9092)",
    )
    a("--commands-topic", help="QUOTEGATE_KAFKA_COMMANDS_TOPIC, default quotegate.commands")
    a("--marketdata-topic", help="QUOTEGATE_KAFKA_MARKETDATA_TOPIC, default quotegate.marketdata")
    a("--events-topic", help="QUOTEGATE_KAFKA_EVENTS_TOPIC, default quotegate.events")
    a(
        "--commands-partitions",
        type=int,
        help="partitions of a commands topic created at start "
        "(QUOTEGATE_KAFKA_COMMANDS_PARTITIONS, default 4)",
    )
    a(
        "--marketdata-partitions",
        type=int,
        help="partitions of a market-data topic created at start "
        "(QUOTEGATE_KAFKA_MARKETDATA_PARTITIONS, default 8)",
    )
    a(
        "--events-partitions",
        type=int,
        help="partitions of an events topic created at start "
        "(QUOTEGATE_KAFKA_EVENTS_PARTITIONS, default 4)",
    )
    a(
        "--kafka-linger-ms",
        type=int,
        help="producer batching (QUOTEGATE_KAFKA_LINGER_MS, default 2)",
    )
    a(
        "--kafka-compression",
        choices=COMPRESSIONS,
        help="producer compression (QUOTEGATE_KAFKA_COMPRESSION, default none)",
    )


def kafka_config(
    args: argparse.Namespace, env: Mapping[str, str] | None = None, *, client_id: str
) -> KafkaConfig:
    """The flags over ``QUOTEGATE_KAFKA_*`` over the defaults."""
    env = os.environ if env is None else env
    overrides: dict[str, object] = {dest: getattr(args, dest, None) for dest in KAFKA_FLAGS}
    overrides = {KAFKA_FLAGS[k]: v for k, v in overrides.items()}
    bootstrap = getattr(args, "kafka", None) or env.get("QUOTEGATE_KAFKA") or None
    overrides["bootstrap"] = bootstrap
    overrides["client_id"] = client_id
    return KafkaConfig.from_env(env, overrides=overrides)
