"""The Kafka flags of ``quotegate engine`` and ``quotegate gateway``: flag over environment over
default."""

from __future__ import annotations

import argparse

from gateway.roots.distributed_args import add_kafka_arguments, kafka_config


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_kafka_arguments(parser)
    return parser.parse_args(list(argv))


def test_flags_win_over_the_environment() -> None:
    env = {"QUOTEGATE_KAFKA": "envhost:9092", "QUOTEGATE_KAFKA_COMMANDS_PARTITIONS": "8"}
    c = kafka_config(
        _parse("--kafka", "flaghost:9092", "--marketdata-topic", "md.x"), env, client_id="t"
    )
    assert c.bootstrap == "flaghost:9092"
    assert c.marketdata_topic == "md.x"
    assert c.commands_partitions == 8
    assert c.client_id == "t"


def test_the_environment_names_the_broker_without_a_flag() -> None:
    assert kafka_config(_parse(), {"QUOTEGATE_KAFKA": "e:1"}, client_id="t").bootstrap == "e:1"
    env = {"QUOTEGATE_KAFKA_BOOTSTRAP": "b:2"}
    assert kafka_config(_parse(), env, client_id="t").bootstrap == "b:2"
    assert kafka_config(_parse(), {}, client_id="t").bootstrap == "127.0.0.1:9092"
