"""The sequencer: numbers every input and every output, and stamps time.

``in_seq`` counts every input (well-formed or not) from 1; ``out_seq`` counts every event
from 1, one counter for the whole engine output; both are gap-free. An input's time is the
command's own ``ts`` when it carries one (replay), otherwise the injected clock's reading in
integer microseconds. The engine reads and bumps ``out_seq`` directly on its hot path.
"""

from __future__ import annotations

import time
from collections.abc import Callable


def wall_clock_us() -> int:
    """Microseconds since the Unix epoch."""
    return time.time_ns() // 1000


class Sequencer:
    __slots__ = ("clock", "in_seq", "out_seq")

    def __init__(self, clock: Callable[[], int] = wall_clock_us) -> None:
        self.clock = clock
        self.in_seq = 0
        self.out_seq = 0

    def stamp(self, ts: int | None) -> tuple[int, int]:
        """Number the next input: ``(in_seq, ts)``."""
        in_seq = self.in_seq = self.in_seq + 1
        return in_seq, (self.clock() if ts is None else ts)

    def resume(self, in_seq: int) -> None:
        """Adopt an input number chosen elsewhere (replay of a journal): the next ``stamp``
        continues after it. It must not go backwards."""
        if in_seq <= self.in_seq:
            raise ValueError(f"input sequence {in_seq} is not after {self.in_seq}")
        self.in_seq = in_seq

    def next_out(self) -> int:
        """Number the next event."""
        seq = self.out_seq = self.out_seq + 1
        return seq
