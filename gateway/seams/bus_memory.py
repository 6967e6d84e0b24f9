"""In-process market-data bus: listeners are called synchronously, in publish order."""

from __future__ import annotations

from gateway.seams.bus import Listener
from gateway.wire.envelope import Envelope


class MemoryBus:
    """The :class:`~gateway.seams.bus.MarketDataBus` of one process.

    ``publish`` calls every listener directly, so per-channel order is publish order and
    nothing is buffered. Listeners only enqueue (the hub's per-connection queues), so this
    never waits for a client. A listener that raises is isolated: the error is counted and the
    remaining listeners still get the envelope.
    """

    def __init__(self) -> None:
        self._listeners: tuple[Listener, ...] = ()
        self.listener_errors = 0

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        self._listeners = ()

    def publish(self, envelope: Envelope) -> None:
        for listener in self._listeners:
            try:
                listener(envelope)
            except Exception:
                self.listener_errors += 1

    def add_listener(self, listener: Listener) -> None:
        if listener not in self._listeners:
            self._listeners = (*self._listeners, listener)

    def remove_listener(self, listener: Listener) -> None:
        self._listeners = tuple(x for x in self._listeners if x is not listener)
