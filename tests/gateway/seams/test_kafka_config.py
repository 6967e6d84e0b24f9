"""KafkaConfig: defaults, the environment, overrides, and the values it refuses."""

from __future__ import annotations

import pytest

from gateway.seams.kafka_config import KafkaConfig


def test_defaults_name_the_three_topics() -> None:
    c = KafkaConfig()
    assert (c.commands_topic, c.marketdata_topic, c.events_topic) == (
        "quotegate.commands",
        "quotegate.marketdata",
        "quotegate.events",
    )
    assert c.idempotent and c.compression_type is None


def test_environment_then_overrides() -> None:
    env = {
        "QUOTEGATE_KAFKA_BOOTSTRAP": "k1:9092,k2:9092",
        "QUOTEGATE_KAFKA_MARKETDATA_PARTITIONS": "16",
        "QUOTEGATE_KAFKA_IDEMPOTENT": "no",
        "QUOTEGATE_KAFKA_COMPRESSION": "gzip",
    }
    c = KafkaConfig.from_env(env, overrides={"marketdata_partitions": 32, "linger_ms": None})
    assert c.bootstrap == "k1:9092,k2:9092"
    assert c.marketdata_partitions == 32  # the override wins
    assert c.linger_ms == 2  # None leaves the default
    assert c.idempotent is False and c.compression_type == "gzip"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("commands_partitions", 0),
        ("marketdata_topic", "bad topic"),
        ("compression", "snappy"),
        ("linger_ms", -1),
        ("bootstrap", " "),
        ("fetch_max_wait_ms", -1),
    ],
)
def test_bad_values_are_refused(field: str, value: object) -> None:
    with pytest.raises(ValueError):
        KafkaConfig(**{field: value})  # type: ignore[arg-type]


def test_bad_environment_values_name_the_setting() -> None:
    with pytest.raises(ValueError, match="events_partitions"):
        KafkaConfig.from_env({"QUOTEGATE_KAFKA_EVENTS_PARTITIONS": "many"})
    with pytest.raises(ValueError, match="unknown kafka setting"):
        KafkaConfig.from_env({}, overrides={"partitions": 3})
