"""A replay feed: plays a commands JSON-lines file into the live engine.

Commands are paced by their ``ts`` (microseconds): at recorded speed (``speed=1``), ``speed``
times faster, or as fast as possible (``speed=0``). Commands without ``ts`` go at once. A
malformed line is passed on as :class:`~engine.commands.Malformed` (the engine rejects it);
the feed never stops on bad input.

By default the recorded ``ts`` is dropped so the sequencer stamps live time (orders from REST
interleave with the replay); ``keep_ts=True`` keeps the recorded times, e.g. to rebuild
historic candles as fast as possible.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.codec import decode_command
from engine.commands import Command, DefineInstrument
from runtime.tasks import cancel_and_wait

Submit = Callable[[Command], Any]


@dataclass(kw_only=True)
class ReplayConfig:
    path: str
    speed: float = 1.0  # 1 = recorded speed, 10 = ten times faster, 0 = as fast as possible
    keep_ts: bool = False
    loop: bool = False  # start again from the top at the end of the file
    batch_max: int = 1000  # as fast as possible: yield to the event loop after this many


def read_commands(path: str | Path) -> Iterator[Command]:
    """The commands of a JSON-lines file, in order; blank lines are skipped."""
    with open(path, "rb") as f:
        for line in f:
            if line.strip():
                yield decode_command(line)


def due_offset_s(ts: int | None, first_ts: int | None, speed: float) -> float:
    """Seconds after the start of the replay at which a command with ``ts`` is due."""
    if ts is None or first_ts is None or speed <= 0:
        return 0.0
    return max(0.0, (ts - first_ts) / 1_000_000 / speed)


class ReplayFeed:
    """Submits the commands of a file at the configured pace on its own task.

    ``finished`` is set when the file has been played (never with ``loop=True``).
    """

    def __init__(
        self,
        config: ReplayConfig,
        submit: Submit,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if config.speed < 0:
            raise ValueError("replay speed must be >= 0")
        if not Path(config.path).is_file():
            raise FileNotFoundError(f"replay file {config.path!r} does not exist")
        self.config = config
        self._submit = submit
        self._clock = clock
        self._sleep = sleep
        self._task: asyncio.Task[None] | None = None
        self.finished = asyncio.Event()
        self.submitted = 0
        self.errors = 0

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="replay-feed")

    async def close(self) -> None:
        task, self._task = self._task, None
        await cancel_and_wait(task)

    async def _run(self) -> None:
        while True:
            await self._play_once()
            if not self.config.loop:
                break
        self.finished.set()

    async def _play_once(self) -> None:
        cfg = self.config
        started = self._clock()
        first_ts: int | None = None
        since_yield = 0
        for cmd in read_commands(cfg.path):
            ts = cmd.ts
            if ts is not None and first_ts is None:
                first_ts = ts
            wait = due_offset_s(ts, first_ts, cfg.speed) - (self._clock() - started)
            if wait > 0:
                await self._sleep(wait)
                since_yield = 0
            elif since_yield >= cfg.batch_max:
                await self._sleep(0)
                since_yield = 0
            if not cfg.keep_ts and ts is not None:
                cmd = cmd._replace(ts=None)
            try:
                self._submit(cmd)
                self.submitted += 1
            except Exception:
                self.errors += 1
            since_yield += 1


REPLAY_SCAN_LINES = 10_000


def leading_instruments(path: str, scan_lines: int = REPLAY_SCAN_LINES) -> list[DefineInstrument]:
    """Instrument definitions among the first lines of a replay file (defined before the
    opening deposits, which may be in shares of them)."""
    out: list[DefineInstrument] = []
    for i, cmd in enumerate(read_commands(path)):
        if i >= scan_lines:
            break
        if isinstance(cmd, DefineInstrument):
            out.append(cmd)
    return out
