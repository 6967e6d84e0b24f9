"""The publisher inside every ``quotegate bench fanout`` server process.

It publishes one :func:`~loadtest.fanout_message.update` per message, round-robin over the
channels, stamped with the time it is published, at a fixed rate on an absolute schedule
(``rate`` messages/s over all channels). A late loop catches up a few messages at a time
(:data:`CATCH_UP_MAX`, then one loop turn for the server), and a schedule more than
:data:`BACKLOG_MAX_S` behind is given up (the publisher then publishes less than asked, which
is how a server that cannot keep up shows). ``inf`` publishes one message per loop turn, as
fast as the server lets its loop come round; ``0`` pauses.

Every :data:`SAMPLE_S` it notes ``(monotonic time, messages published, how far behind)``, so
that :meth:`Publisher.window` answers for a window of the parent's clock even when the
server's loop answers the question late (``time.monotonic`` is the same clock in every
process of the machine).
"""

from __future__ import annotations

import asyncio
import inspect
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from gateway.wire.envelope import Envelope
from loadtest import fanout_message

CATCH_UP_MAX = 10
"""Most messages published in one go by a publisher that is behind its schedule."""
BACKLOG_MAX_S = 1.0
"""How far behind the schedule may fall before it is reset (the missed messages never sent)."""
SAMPLE_S = 0.01
SAMPLES_MAX = 100_000


class Publisher:
    def __init__(
        self, channels: list[str], publish: Callable[[Envelope], Awaitable[None] | None]
    ) -> None:
        self.channels = channels
        self._publish = publish
        self._seqs = dict.fromkeys(channels, 0)
        self._next_channel = 0
        self.rate = 0.0
        self.published = 0
        self.behind_s = 0.0
        self._samples: deque[tuple[float, int, float]] = deque(maxlen=SAMPLES_MAX)
        self._sampled_at = 0.0
        self._changed = asyncio.Event()
        self._closed = False

    def set_rate(self, rate: float) -> None:
        """Messages per second over all channels (0 pauses, ``inf`` as fast as the loop)."""
        self.rate = rate
        self._changed.set()

    def stats(self) -> dict[str, Any]:
        return {"published": self.published, "behind_ms": self.behind_s * 1000}

    def window(self, start: float, end: float) -> dict[str, Any]:
        """Messages published between the monotonic times ``start`` and ``end`` (as of the
        samples nearest inside), and the furthest behind schedule in between."""
        self._sample(time.monotonic(), force=True)
        inside = [s for s in self._samples if start <= s[0] <= end]
        if len(inside) < 2:
            return {"published": 0, "seconds": 0.0, "max_behind_ms": 0.0}
        return {
            "published": inside[-1][1] - inside[0][1],
            "seconds": inside[-1][0] - inside[0][0],
            "max_behind_ms": max(s[2] for s in inside) * 1000,
        }

    def close(self) -> None:
        self._closed = True
        self._changed.set()

    def _sample(self, now: float, *, force: bool = False) -> None:
        if force or now - self._sampled_at >= SAMPLE_S:
            self._sampled_at = now
            self._samples.append((now, self.published, self.behind_s))

    async def _one(self) -> None:
        channel = self.channels[self._next_channel]
        self._next_channel = (self._next_channel + 1) % len(self.channels)
        seq = self._seqs[channel] = self._seqs[channel] + 1
        result = self._publish(fanout_message.update(channel, seq))
        self.published += 1
        if result is not None and inspect.isawaitable(result):
            await result
        self._sample(time.monotonic())  # a publish may take long (an awaited emit)

    async def run(self) -> None:
        next_at = 0.0
        while not self._closed:
            rate = self.rate
            now = time.monotonic()
            self._sample(now)
            if rate <= 0:
                self.behind_s = 0.0
                self._changed.clear()
                await self._changed.wait()
                next_at = 0.0
                continue
            if math.isinf(rate):
                self.behind_s = 0.0
                await self._one()
                await asyncio.sleep(0)
                continue
            if next_at == 0.0 or self._changed.is_set():
                self._changed.clear()
                next_at = now
            self.behind_s = max(0.0, now - next_at)
            if self.behind_s > BACKLOG_MAX_S:
                next_at = now - BACKLOG_MAX_S
            interval = 1.0 / rate
            for _ in range(CATCH_UP_MAX):
                if next_at > now:
                    break
                await self._one()
                next_at += interval
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
