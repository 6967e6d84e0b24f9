"""What the reporter consumes: engine events plus the few facts the events do not carry.

The engine's events (:mod:`engine.events`) describe orders and trades. Two commands change the
books without an event of their own, so the runtime hands the reporter a record for each:

* :class:`Listed`: an instrument was defined (its currency and price grid, needed to turn a
  trade into cash amounts);
* :class:`Funded`: a deposit was credited (the amount in cash units or shares).

Closed candles come from the publisher as :class:`CandleClosed`.

Records arrive in *offers*: one offer is everything one command caused (its events, or its
``Listed``/``Funded`` record), or one closed candle. The reporter never splits an offer over
two database transactions, so its progress mark (the last ``in_seq`` written) always falls
between commands.

:class:`ReportSource` is the reporter's input. :class:`QueueSource` is the in-process one of
``quotegate run``: a bounded queue the engine's thread appends to without ever waiting. When it
is full it stops taking offers for the rest of the run (``overflowed``; every offer after is
counted in ``dropped``) so that what was written stays a gap-free prefix of the engine's
history; with a journal, the next start replays the rest (see ``docs/reporting.md``).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Sequence
from typing import Any, NamedTuple, Protocol

from engine.events import Event


class Listed(NamedTuple):
    """An instrument definition: ``cash_per_tick`` cash units per tick and share."""

    in_seq: int
    ts: int
    symbol: str
    currency: str
    tick: str
    price_decimals: int
    tick_units: int
    cash_per_tick: int


class Funded(NamedTuple):
    """A credited deposit: ``amount`` in cash units (10**-8) or shares."""

    in_seq: int
    ts: int
    account: str
    asset: str
    amount: int


class CandleClosed(NamedTuple):
    """A closed candle as the publisher renders it (``t o h l c v n``)."""

    symbol: str
    resolution: str
    candle: dict[str, Any]


Record = Event | Listed | Funded | CandleClosed
Offer = Sequence[Record]


class ReportSource(Protocol):
    """The reporter's input: offers in the engine's order.

    ``take`` waits until at least one offer is pending (or the source is closed: then it
    returns ``[]``) and returns whole offers, about ``max_records`` records at most (one offer
    larger than that comes alone). ``pending`` counts the records not yet taken; ``dropped``
    the records refused since ``overflowed``."""

    @property
    def pending(self) -> int: ...

    @property
    def dropped(self) -> int: ...

    @property
    def overflowed(self) -> bool: ...

    async def take(self, max_records: int) -> list[Offer]: ...

    def close(self) -> None: ...


class QueueSource:
    """The in-process :class:`ReportSource`: a bounded queue of offers (``capacity`` records).

    ``offer`` is the engine side: a few attribute reads and a ``deque.append``, never a wait.
    """

    def __init__(self, capacity: int = 1_000_000) -> None:
        if capacity < 1:
            raise ValueError("the reporter queue needs a capacity of at least 1 record")
        self.capacity = capacity
        self._offers: deque[Offer] = deque()
        self._pending = 0
        self._dropped = 0
        self._overflowed = False
        self._closed = False
        self._wakeup = asyncio.Event()

    @property
    def pending(self) -> int:
        return self._pending

    @property
    def dropped(self) -> int:
        return self._dropped

    @property
    def overflowed(self) -> bool:
        return self._overflowed

    def offer(self, records: Offer) -> None:
        """Queue one offer; past the capacity, refuse it and every later one (counted)."""
        n = len(records)
        if self._overflowed or self._pending + n > self.capacity:
            self._overflowed = True
            self._dropped += n
            return
        self._offers.append(records)
        self._pending += n
        if not self._wakeup.is_set():
            self._wakeup.set()

    async def take(self, max_records: int) -> list[Offer]:
        while not self._offers:
            if self._closed:
                return []
            self._wakeup.clear()
            await self._wakeup.wait()
        out: list[Offer] = []
        taken = 0
        offers = self._offers
        while offers and (not out or taken + len(offers[0]) <= max_records):
            offer = offers.popleft()
            taken += len(offer)
            out.append(offer)
        self._pending -= taken
        return out

    def close(self) -> None:
        """No more offers: ``take`` returns what is left, then ``[]``."""
        self._closed = True
        self._wakeup.set()
