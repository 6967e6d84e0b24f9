"""``quotegate bench durability``: what each way of keeping an epoch honest after a crash costs.

An epoch must name one history (``docs/reliability.md``). Two ways to keep that true when the
journal syncs in groups (``--fsync interval``):

- **publish after the group commit**: hold every market-data update until the journal sync that
  covers its command has finished. The price is added to every update's latency: the wait for
  the next hand-off plus the write and ``fdatasync``. This benchmark measures exactly that delay,
  per command, on the real :class:`engine.journal.Journal` (its sync thread instrumented: the
  byte count each ``fdatasync`` covered and when it returned), at a steady command rate; the
  loop sleeps between batches of due commands as an event loop does (a busy loop would hold
  the GIL from the sync thread) and calls ``sync_due`` as the runtime's quiet-input timer;
- **a clean-shutdown mark** (what ``quotegate run`` does): publish at once, write
  ``clean <inSeq>`` into the epoch file at a clean stop and start a new epoch when a restart
  finds none. The price is one synced file write at start and one at stop (measured here
  through :class:`gateway.roots.run_journal.RunJournal`), nothing per update; a crash costs
  resuming clients a snapshot.

For reference the same stream is also appended under ``fsync="every"`` (the engine waits for
the disk on every command: the append time is the delay). Output: one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

import engine.journal as journal_module
from engine.commands import Command, NewOrder
from engine.journal import Journal, JournalConfig
from gateway.roots.run_journal import RunJournal, RunJournalConfig
from loadtest.args import EXIT_BAD_ARGUMENTS, ArgumentCheck


def add_arguments(parser: argparse.ArgumentParser) -> None:
    a = parser.add_argument
    a("--rates", default="1000,20000", help="command rates to measure, commands/s, comma-separated")
    a("--seconds", type=float, default=2.0, help="how long each rate runs, seconds")
    a("--fsync-interval-ms", type=float, default=5.0, help="the journal's group-commit interval")
    a("--every-commands", type=int, default=2000, help="appends timed under fsync=every")
    a("--dir", default=None, help="where the journals go (none: a temporary directory)")


def run(args: argparse.Namespace) -> int:
    check = ArgumentCheck("bench durability", args)
    try:
        rates = [int(x) for x in str(args.rates).split(",") if x.strip()]
    except ValueError:
        rates = []
    if not rates or min(rates) < 1:
        check.problems.append("--rates must be positive integers")
    check.at_least(0.001, "seconds", "fsync_interval_ms")
    check.at_least(1, "every_commands")
    if check.failed():
        return EXIT_BAD_ARGUMENTS
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        result = run_bench(
            Path(tmp), rates, args.seconds, args.fsync_interval_ms, args.every_commands
        )
    print(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())
    return 0


def _command(i: int) -> Command:
    side = "buy" if i % 2 else "sell"
    return NewOrder(
        f"acct{i % 50}",
        f"c{i}",
        f"SYM{i % 20}",
        side,
        "limit",
        f"{100 + i % 7}.{i % 100:02d}",
        1 + i % 9,
        "GTC",
        None,
    )


def _stats_ms(samples_ns: list[int]) -> dict[str, float]:
    ordered = sorted(samples_ns)
    n = len(ordered)

    def at(q: float) -> float:
        return round(ordered[min(n - 1, int(q * n))] / 1e6, 3)

    return {
        "n": n,
        "mean_ms": round(statistics.fmean(ordered) / 1e6, 3),
        "p50_ms": at(0.5),
        "p90_ms": at(0.9),
        "p99_ms": at(0.99),
        "max_ms": round(ordered[-1] / 1e6, 3),
    }


class _Instrumented:
    """Patches the journal module's write and sync so that each sync's covered byte count and
    finish time are known (both run in the sync thread)."""

    def __init__(self) -> None:
        self.written = 0
        self.syncs: list[tuple[int, int]] = []  # (monotonic ns after fdatasync, bytes covered)
        self._saved: tuple[Callable[..., Any], Callable[..., Any]] | None = None

    def __enter__(self) -> _Instrumented:
        write_all, sync = journal_module._write_all, journal_module._sync
        self._saved = (write_all, sync)

        def counting_write(fd: int, data: bytes) -> None:
            write_all(fd, data)
            self.written += len(data)

        def timed_sync(fd: int) -> None:
            sync(fd)
            self.syncs.append((time.monotonic_ns(), self.written))

        journal_module._write_all = counting_write
        journal_module._sync = timed_sync
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._saved is not None
        journal_module._write_all, journal_module._sync = self._saved


def commit_delay(path: Path, rate: int, seconds: float, interval_ms: float) -> dict[str, Any]:
    """Per command: from its append to the end of the fdatasync that covered it."""
    count = int(rate * seconds)
    appended: list[tuple[int, int]] = []  # (monotonic ns of the append, end offset)
    with _Instrumented() as probe:
        journal = Journal(JournalConfig(path=path, fsync="interval", fsync_interval_ms=interval_ms))
        handed = 0
        syncer = journal._syncer
        assert syncer is not None
        hand_off = syncer.hand_off

        def counting_hand_off(data: bytes) -> None:
            nonlocal handed
            handed += len(data)
            hand_off(data)

        syncer.hand_off = counting_hand_off  # type: ignore[method-assign]
        # like the event loop: sleep (the GIL is free for the sync thread), then run what is
        # due, then the quiet-input timer
        period_ns = 1_000_000_000 // rate
        started = time.monotonic_ns()
        i = 0
        while i < count:
            time.sleep(0.0002)
            now = time.monotonic_ns()
            while i < count and started + i * period_ns <= now:
                journal.append(i + 1, now // 1000, _command(i))
                appended.append((time.monotonic_ns(), handed + journal._buf_bytes))
                i += 1
            journal.sync_due()
        deadline = time.monotonic() + 5
        while journal._buf and time.monotonic() < deadline:
            journal.sync_due()
            time.sleep(interval_ms / 1000)
        journal.flush()
        journal.close()
        syncs = list(probe.syncs)
    delays: list[int] = []
    k = 0
    for at_ns, end in appended:
        while syncs[k][1] < end:
            k += 1
        delays.append(syncs[k][0] - at_ns)
    return {"rate_cmd_s": rate, "commands": count, "syncs": len(syncs), **_stats_ms(delays)}


def every_append(path: Path, commands: int) -> dict[str, Any]:
    """``fsync="every"``: how long the engine's append waits for the disk."""
    journal = Journal(JournalConfig(path=path, fsync="every"))
    times: list[int] = []
    for i in range(commands):
        t0 = time.monotonic_ns()
        journal.append(i + 1, i, _command(i))
        times.append(time.monotonic_ns() - t0)
    journal.close()
    return {"commands": commands, **_stats_ms(times)}


def mark_cost(directory: Path, repeats: int = 20) -> dict[str, Any]:
    """The clean-shutdown mark: the epoch decision at start and the mark at stop."""
    path = directory / "mark.log"
    starts: list[int] = []
    stops: list[int] = []
    for i in range(repeats):
        rj = RunJournal(RunJournalConfig(path=str(path)))
        t0 = time.monotonic_ns()
        rj.epoch()  # at start, before this run appends anything
        t1 = time.monotonic_ns()
        rj.journal.append(i + 1, i, _command(i))
        rj.journal.flush()
        t2 = time.monotonic_ns()
        asyncio.run(rj.close())  # journal already synced: the rest is the mark
        stops.append(time.monotonic_ns() - t2)
        starts.append(t1 - t0)
    return {"start": _stats_ms(starts), "stop": _stats_ms(stops)}


def run_bench(
    directory: Path, rates: list[int], seconds: float, interval_ms: float, every_commands: int
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "fsync_interval_ms": interval_ms,
        "cpus": os.cpu_count(),
        "publish_after_commit_added_latency": [
            commit_delay(directory / f"interval-{rate}.log", rate, seconds, interval_ms)
            for rate in rates
        ],
        "fsync_every_append": every_append(directory / "every.log", every_commands),
        "clean_mark_per_start_and_stop": mark_cost(directory),
    }
    return out
