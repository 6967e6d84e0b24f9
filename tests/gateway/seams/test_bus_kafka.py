"""KafkaBus: the bus contract against a real Kafka-protocol broker (Tansu, or $KAFKA_BOOTSTRAP),
publisher and subscriber on separate buses (two nodes), plus what Kafka adds: record layout,
duplicate suppression and several subscribing nodes."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from aiokafka import AIOKafkaConsumer

from gateway.seams.bus_kafka import KafkaBus
from gateway.seams.kafka_config import KafkaConfig
from gateway.seams.kafka_io import Sender
from gateway.wire.envelope import SNAPSHOT, Envelope
from tests.gateway.bus_contract import BusContract, BusPair, Recorder, envelope, wait_until

pytestmark = pytest.mark.kafka


def kafka_config(bootstrap: str, partitions: int = 3) -> KafkaConfig:
    tag = uuid.uuid4().hex[:10]
    return KafkaConfig(
        bootstrap=bootstrap,
        commands_topic=f"t{tag}.commands",
        marketdata_topic=f"t{tag}.marketdata",
        events_topic=f"t{tag}.events",
        commands_partitions=1,
        marketdata_partitions=partitions,
        events_partitions=1,
        linger_ms=1,
    )


class TestKafkaBus(BusContract):
    @pytest.fixture
    async def bus_pair(self, kafka_bootstrap: str) -> AsyncIterator[BusPair]:
        config = kafka_config(kafka_bootstrap)
        publisher = KafkaBus(config, consume=False, name="pub")
        subscriber = KafkaBus(config, publish=False, name="sub")
        await publisher.start()
        await subscriber.start()

        async def settle() -> None:
            await publisher.flush()
            await subscriber.caught_up()

        yield BusPair(publisher, subscriber, settle)
        await subscriber.close()
        await publisher.close()


async def test_records_are_keyed_by_channel_and_carry_the_wire_bytes(
    kafka_bootstrap: str,
) -> None:
    config = kafka_config(kafka_bootstrap)
    bus = KafkaBus(config, consume=False)
    await bus.start()
    try:
        sent = [envelope("orders.alice", 1), envelope("book.AAPL", 1)]
        for env in sent:
            bus.publish(env)
        await bus.flush()
    finally:
        await bus.close()
    consumer = AIOKafkaConsumer(
        config.marketdata_topic, bootstrap_servers=kafka_bootstrap, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        got: dict[bytes, bytes] = {}
        while len(got) < 2:
            for records in (await consumer.getmany(timeout_ms=1000)).values():
                got.update((r.key, r.value) for r in records)
    finally:
        await consumer.stop()
    assert got == {b"orders.alice": sent[0].payload, b"book.AAPL": sent[1].payload}


async def test_repeated_seqs_reach_listeners_once(kafka_bootstrap: str) -> None:
    """A retried or re-published update (same channel, epoch and seq) is dropped; a snapshot and
    a new epoch always pass."""
    config = kafka_config(kafka_bootstrap)
    pub = KafkaBus(config, consume=False)
    sub = KafkaBus(config, publish=False)
    await pub.start()
    await sub.start()
    rec = Recorder()
    sub.add_listener(rec)
    try:
        for seq in (1, 2, 2, 1, 3):
            pub.publish(envelope("trades.X", seq))
        pub.publish(Envelope.build(SNAPSHOT, "trades.X", "e1", 3, 1, {"n": 3}))
        pub.publish(envelope("trades.X", 1, epoch="e2"))
        await wait_until(lambda: len(rec.got) >= 5)
        await pub.flush()
        await sub.caught_up()
        assert [(e.epoch, e.seq, e.type) for e in rec.got] == [
            ("e1", 1, "update"),
            ("e1", 2, "update"),
            ("e1", 3, "update"),
            ("e1", 3, SNAPSHOT),
            ("e2", 1, "update"),
        ]
        assert sub.duplicates == 2
    finally:
        await sub.close()
        await pub.close()


async def test_every_node_gets_every_envelope(kafka_bootstrap: str) -> None:
    """No shared consumer group: two gateway nodes each read all partitions."""
    config = kafka_config(kafka_bootstrap, partitions=4)
    pub = KafkaBus(config, consume=False)
    nodes = [KafkaBus(config, publish=False, name=f"n{i}") for i in range(2)]
    recs = [Recorder(), Recorder()]
    await pub.start()
    for node, rec in zip(nodes, recs, strict=True):
        await node.start()
        node.add_listener(rec)
    try:
        channels = [f"book.S{i}" for i in range(10)]
        for seq in range(1, 21):
            for ch in channels:
                pub.publish(envelope(ch, seq))
        await wait_until(lambda: all(len(r.got) >= 200 for r in recs))
        for ch in channels:
            assert recs[0].seqs(ch) == recs[1].seqs(ch) == list(range(1, 21))
    finally:
        for node in nodes:
            await node.close()
        await pub.close()


async def test_a_consume_only_bus_refuses_to_publish(kafka_bootstrap: str) -> None:
    bus = KafkaBus(kafka_config(kafka_bootstrap), publish=False)
    with pytest.raises(RuntimeError):
        bus.publish(envelope("book.A", 1))


async def test_sender_buffer_is_bounded(kafka_bootstrap: str) -> None:
    """Records queued beyond ``pending_max`` (a broker that cannot keep up) drop the oldest."""
    sender = Sender(kafka_config(kafka_bootstrap), name="bounded", pending_max=3)
    for i in range(5):  # not started: nothing is handed over
        sender.send("t", b"%d" % i)
    assert sender.dropped == 2
    assert [item[1] for item in sender._pending] == [b"2", b"3", b"4"]
