"""MemoryBus: the bus contract, plus in-process specifics (synchronous, isolated listeners)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from gateway.seams.bus_memory import MemoryBus
from gateway.wire.envelope import Envelope
from tests.gateway.bus_contract import BusContract, BusPair, Recorder, envelope


class TestMemoryBus(BusContract):
    @pytest.fixture
    async def bus_pair(self) -> AsyncIterator[BusPair]:
        bus = MemoryBus()
        await bus.start()
        yield BusPair(bus, bus)
        await bus.close()


def test_listeners_are_called_synchronously_in_order() -> None:
    bus = MemoryBus()
    calls: list[str] = []
    bus.add_listener(lambda env: calls.append(f"a{env.seq}"))
    bus.add_listener(lambda env: calls.append(f"b{env.seq}"))
    bus.publish(envelope("book.A", 1))
    assert calls == ["a1", "b1"]  # delivered before publish returned


def test_a_failing_listener_is_isolated() -> None:
    bus = MemoryBus()
    rec = Recorder()

    def broken(_env: Envelope) -> None:
        raise ValueError("listener bug")

    bus.add_listener(broken)
    bus.add_listener(rec)
    bus.publish(envelope("book.A", 1))
    bus.publish(envelope("book.A", 2))
    assert rec.seqs("book.A") == [1, 2]
    assert bus.listener_errors == 2


def test_adding_a_listener_twice_delivers_once() -> None:
    bus = MemoryBus()
    rec = Recorder()
    bus.add_listener(rec)
    bus.add_listener(rec)
    bus.publish(envelope("book.A", 1))
    assert len(rec.got) == 1


async def test_close_drops_listeners() -> None:
    bus = MemoryBus()
    rec = Recorder()
    bus.add_listener(rec)
    await bus.close()
    bus.publish(envelope("book.A", 1))
    assert rec.got == []


def test_a_listener_may_remove_itself_while_being_called() -> None:
    bus = MemoryBus()
    rec = Recorder()

    def once(env: Envelope) -> None:
        bus.remove_listener(once)

    bus.add_listener(once)
    bus.add_listener(rec)
    bus.publish(envelope("book.A", 1))
    bus.publish(envelope("book.A", 2))
    assert rec.seqs("book.A") == [1, 2]
