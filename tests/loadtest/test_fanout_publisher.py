"""The fan-out benchmark's publisher: seqs per channel, round-robin, pause and close."""

from __future__ import annotations

import asyncio
import math
import time

import orjson

from gateway.wire.envelope import Envelope
from loadtest.fanout_publisher import Publisher


async def test_publishes_round_robin_with_per_channel_seqs_and_pauses() -> None:
    got: list[Envelope] = []
    ten = asyncio.Event()

    def publish(envelope: Envelope) -> None:
        got.append(envelope)
        if len(got) >= 10:
            ten.set()

    publisher = Publisher(["book.A", "trades.A"], publish)
    task = asyncio.create_task(publisher.run())
    await asyncio.sleep(0.02)
    assert got == []  # rate 0: paused
    publisher.set_rate(math.inf)
    await asyncio.wait_for(ten.wait(), 5)
    publisher.set_rate(0)
    await asyncio.sleep(0.01)
    count = len(got)
    await asyncio.sleep(0.02)
    assert len(got) == count == publisher.stats()["published"]
    publisher.close()
    await asyncio.wait_for(task, 5)
    assert [e.channel for e in got[:4]] == ["book.A", "trades.A", "book.A", "trades.A"]
    books = [e.seq for e in got if e.channel == "book.A"]
    assert books == list(range(1, len(books) + 1))
    assert all(orjson.loads(e.payload)["ts"] == e.ts > 0 for e in got)


async def test_fixed_rate_awaits_an_async_publish() -> None:
    got: list[int] = []
    five = asyncio.Event()

    async def publish(envelope: Envelope) -> None:
        await asyncio.sleep(0)
        got.append(envelope.seq)
        if len(got) >= 5:
            five.set()

    publisher = Publisher(["book.A"], publish)
    publisher.set_rate(1000.0)
    start = time.monotonic()
    task = asyncio.create_task(publisher.run())
    await asyncio.wait_for(five.wait(), 5)
    await asyncio.sleep(0.05)
    end = time.monotonic()
    publisher.close()
    await asyncio.wait_for(task, 5)
    assert got[:5] == [1, 2, 3, 4, 5]
    # what was published inside a window of the monotonic clock, from the publisher's samples
    window = publisher.window(start, end)
    assert 0 < window["published"] <= len(got) and 0 < window["seconds"] <= end - start
    assert window["max_behind_ms"] >= 0
    assert publisher.window(end + 10, end + 20)["published"] == 0
