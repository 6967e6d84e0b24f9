"""The market-data bus: carries encoded envelopes from the one publisher to every gateway.

Implementations: :mod:`gateway.seams.bus_memory` (one process) and, in distributed mode,
:mod:`gateway.seams.bus_kafka` (a Kafka topic, keyed by channel).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from gateway.wire.envelope import Envelope

Listener = Callable[[Envelope], None]


class MarketDataBus(Protocol):
    """Publish/subscribe for envelopes.

    Guarantees every implementation keeps (the contract tests check them):

    * **Ordering**: per channel, listeners see envelopes in publish order (seq ascending).
      Across channels there is no order.
    * **Delivery**: at most once, live only. Nothing is replayed: a listener added later sees
      only what the bus delivers after it was added (on a networked bus an envelope still in
      flight when the listener is added may reach it). A consumer that finds a seq gap (a
      restart, a lost connection) refills it from the :class:`~gateway.seams.store.SnapshotStore`.
    * **Never blocks the publisher**: ``publish`` returns at once; it does not wait for
      listeners, brokers or the network. Implementations buffer and flush on their own task.
    * Listeners run on the event loop and must not block; they only enqueue.
    """

    async def start(self) -> None:
        """Connect and start background tasks. Idempotent."""

    async def close(self) -> None:
        """Flush what is buffered where possible, stop tasks, release. Idempotent."""

    def publish(self, envelope: Envelope) -> None:
        """Hand an envelope to every listener (of every node). Never blocks."""

    def add_listener(self, listener: Listener) -> None:
        """Call ``listener`` with every envelope published from now on."""

    def remove_listener(self, listener: Listener) -> None:
        """Stop calling ``listener``. Unknown listeners are ignored."""
