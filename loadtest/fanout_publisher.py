"""The publisher inside every ``quotegate bench fanout`` server process.

It publishes one :func:`~loadtest.fanout_message.update` per message, round-robin over the
channels, stamped with the time it is published, at a fixed rate on an absolute schedule
(``rate`` messages/s over all channels): when the loop is late it catches up (at most
:data:`CATCH_UP_MAX` messages at once) and records how far behind it fell, which is how a
server that cannot keep up shows. ``inf`` publishes one message per loop turn, as fast as the
server lets its loop come round; ``0`` pauses.
"""

from __future__ import annotations

import asyncio
import inspect
import math
import time
from collections.abc import Awaitable, Callable
from typing import Any

from gateway.wire.envelope import Envelope
from loadtest import fanout_message

CATCH_UP_MAX = 1000
"""Most messages published in one go by a publisher that is behind its schedule."""


class Publisher:
    def __init__(
        self, channels: list[str], publish: Callable[[Envelope], Awaitable[None] | None]
    ) -> None:
        self.channels = channels
        self._publish = publish
        self._awaits = False
        self._seqs = dict.fromkeys(channels, 0)
        self._next_channel = 0
        self.rate = 0.0
        self.published = 0
        self.max_behind_s = 0.0
        self._changed = asyncio.Event()
        self._closed = False

    def set_rate(self, rate: float) -> None:
        """Messages per second over all channels (0 pauses, ``inf`` as fast as the loop)."""
        self.rate = rate
        self.max_behind_s = 0.0
        self._changed.set()

    def stats(self) -> dict[str, Any]:
        """Messages published so far, and the furthest behind schedule since the last
        rate change."""
        return {"published": self.published, "max_behind_ms": self.max_behind_s * 1000}

    def close(self) -> None:
        self._closed = True
        self._changed.set()

    async def _one(self) -> None:
        channel = self.channels[self._next_channel]
        self._next_channel = (self._next_channel + 1) % len(self.channels)
        seq = self._seqs[channel] = self._seqs[channel] + 1
        result = self._publish(fanout_message.update(channel, seq))
        self.published += 1
        if result is not None and inspect.isawaitable(result):
            await result

    async def run(self) -> None:
        next_at = 0.0
        while not self._closed:
            rate = self.rate
            if rate <= 0:
                self._changed.clear()
                await self._changed.wait()
                next_at = 0.0
                continue
            if math.isinf(rate):
                await self._one()
                await asyncio.sleep(0)
                continue
            now = time.monotonic()
            if next_at == 0.0 or self._changed.is_set():
                self._changed.clear()
                next_at = now
            self.max_behind_s = max(self.max_behind_s, now - next_at)
            interval = 1.0 / rate
            for _ in range(CATCH_UP_MAX):
                if next_at > now:
                    break
                await self._one()
                next_at += interval
            else:
                next_at = max(next_at, now)  # hopelessly behind: do not build a backlog
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
