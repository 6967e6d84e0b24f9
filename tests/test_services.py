"""The shared fixtures start real servers that answer."""

from __future__ import annotations

import asyncio

import pytest
import redis


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
async def test_kafka_bootstrap_serves_what_it_was_sent(kafka_bootstrap: str) -> None:
    """The broker the Kafka tests get stores a record and hands it back, in order and intact
    (a fixture that only accepted connections would let those tests pass for the wrong
    reason). The product's own Kafka code has its own tests."""
    import uuid

    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    topic = f"qg-fixture-{uuid.uuid4().hex[:8]}"
    sent = [b"first", b"second \x00\xff", b"third"]
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    try:
        for value in sent:
            await producer.send_and_wait(topic, value, key=b"k")
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=kafka_bootstrap, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        got: list[bytes] = []
        async with asyncio.timeout(30):
            while len(got) < len(sent):
                batch = await consumer.getmany(timeout_ms=500)
                got.extend(r.value for records in batch.values() for r in records)
    finally:
        await consumer.stop()
    assert got == sent
