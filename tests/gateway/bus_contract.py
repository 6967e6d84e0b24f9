"""The MarketDataBus contract (gateway/seams/bus.py) as a reusable test class.

An implementation's test module subclasses :class:`BusContract` and provides the ``bus_pair``
fixture: a :class:`BusPair` whose ``publisher`` and ``subscriber`` are buses of two nodes (the
same object for an in-process bus). Delivery may be asynchronous, so checks wait with
:func:`wait_until` (a generous deadline, never a timing assertion) and the pair's ``settle``
(called after adding a listener) waits until that subscription is live.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from gateway.seams.bus import MarketDataBus
from gateway.wire.envelope import UPDATE, Envelope


async def _no_settle() -> None:
    return None


@dataclass
class BusPair:
    publisher: MarketDataBus
    subscriber: MarketDataBus
    settle: Callable[[], Awaitable[None]] = field(default=_no_settle)


async def wait_until(predicate: Callable[[], bool], timeout_s: float = 20.0) -> None:
    """Poll ``predicate`` until it holds (the deadline only guards against a hang)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError("condition not reached before the deadline")
        await asyncio.sleep(0.001)


def envelope(channel: str, seq: int, epoch: str = "e1") -> Envelope:
    return Envelope.build(UPDATE, channel, epoch, seq, 1_700_000_000_000_000 + seq, {"n": seq})


class Recorder:
    """A listener that only appends (listeners must not block)."""

    def __init__(self) -> None:
        self.got: list[Envelope] = []

    def __call__(self, env: Envelope) -> None:
        self.got.append(env)

    def seqs(self, channel: str) -> list[int]:
        return [e.seq for e in self.got if e.channel == channel]


class BusContract:
    """Subclass in ``test_bus_<impl>.py`` and define the ``bus_pair`` fixture."""

    async def test_every_listener_gets_every_envelope_intact(self, bus_pair: BusPair) -> None:
        a, b = Recorder(), Recorder()
        bus_pair.subscriber.add_listener(a)
        bus_pair.subscriber.add_listener(b)
        await bus_pair.settle()
        sent = [envelope("book.AAPL", i) for i in range(1, 6)]
        for env in sent:
            bus_pair.publisher.publish(env)
        await wait_until(lambda: len(a.got) >= 5 and len(b.got) >= 5)
        assert [e.payload for e in a.got] == [e.payload for e in sent]
        assert a.got == b.got == sent

    async def test_per_channel_order_is_publish_order(self, bus_pair: BusPair) -> None:
        rec = Recorder()
        bus_pair.subscriber.add_listener(rec)
        await bus_pair.settle()
        channels = [f"trades.S{i}" for i in range(8)]
        for seq in range(1, 201):
            for ch in channels:
                bus_pair.publisher.publish(envelope(ch, seq))
        await wait_until(lambda: len(rec.got) >= 200 * len(channels))
        for ch in channels:
            assert rec.seqs(ch) == list(range(1, 201)), ch

    async def test_delivery_is_live_only(self, bus_pair: BusPair) -> None:
        """Nothing is replayed: an envelope delivered before a listener is added never reaches
        it. (Publish is asynchronous on a networked bus, so ``settle`` first lets envelope 1
        arrive; one still in flight when a listener is added may reach it.)"""
        bus_pair.publisher.publish(envelope("ticker.AAPL", 1))
        await bus_pair.settle()
        rec = Recorder()
        bus_pair.subscriber.add_listener(rec)
        await bus_pair.settle()
        bus_pair.publisher.publish(envelope("ticker.AAPL", 2))
        await wait_until(lambda: rec.seqs("ticker.AAPL") == [2])
        assert rec.seqs("ticker.AAPL") == [2]

    async def test_removed_listener_gets_nothing_more(self, bus_pair: BusPair) -> None:
        gone, stays = Recorder(), Recorder()
        bus_pair.subscriber.add_listener(gone)
        bus_pair.subscriber.add_listener(stays)
        await bus_pair.settle()
        bus_pair.publisher.publish(envelope("book.X", 1))
        await wait_until(lambda: len(gone.got) == 1 and len(stays.got) == 1)
        bus_pair.subscriber.remove_listener(gone)
        bus_pair.subscriber.remove_listener(Recorder())  # unknown: ignored
        bus_pair.publisher.publish(envelope("book.X", 2))
        await wait_until(lambda: len(stays.got) == 2)
        assert gone.seqs("book.X") == [1]

    async def test_publish_returns_without_waiting_for_listeners(self, bus_pair: BusPair) -> None:
        """``publish`` is synchronous: it cannot await a listener, broker or network."""
        rec = Recorder()
        bus_pair.subscriber.add_listener(rec)
        await bus_pair.settle()
        result = bus_pair.publisher.publish(envelope("book.Y", 1))  # type: ignore[func-returns-value]
        assert result is None
        await wait_until(lambda: len(rec.got) == 1)

    async def test_start_and_close_are_idempotent(self, bus_pair: BusPair) -> None:
        await bus_pair.publisher.start()
        await bus_pair.subscriber.start()
        await bus_pair.subscriber.close()
        await bus_pair.subscriber.close()
        await bus_pair.publisher.close()
        await bus_pair.publisher.close()
