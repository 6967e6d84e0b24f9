"""Where the journal's cost per command goes: ``quotegate bench engine --phases journal``.

The same pre-generated stream runs through a fresh engine once per journal sink, the sinks
interleaved within each repeat (so a slow minute of the machine hits them all alike), and each
sink's median wall-clock microseconds per command is reported together with its difference from
running without a journal. From the cheapest to the real thing:

- ``none``: no journal;
- ``call``: a sink whose ``append`` does nothing (the call itself);
- ``encode``: the record's JSON, built as :meth:`engine.journal.Journal.append` builds it (one
  ``orjson.dumps`` of the positional tuple);
- ``record``: the whole record line, :func:`engine.journal_format.encode_record` (the JSON, its
  CRC-32 and the framing), thrown away;
- ``never``: :class:`~engine.journal.Journal` with ``fsync="never"`` (records buffered and
  written by the megabyte, never synced);
- ``interval``: the journal as the ``throughput`` phase runs it (group commit by a background
  thread every ``--fsync-interval-ms``).

The difference between two neighbours is what that step adds in place, with the engine's own
working set competing for the caches, which is more than the same step costs in a loop alone.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import orjson

from engine import JournalSink
from engine.commands import Command
from engine.journal import OP_CODES, FsyncPolicy, Journal, JournalConfig, encode_record

SINKS = ("none", "call", "encode", "record", "never", "interval")

Throughput = Callable[[Sequence[Command], JournalSink | None], tuple[float, float]]
"""Runs the commands through a fresh engine with a journal sink: commands/s by the wall clock
and per CPU second (``loadtest.bench_engine._throughput``)."""

_dumps = orjson.dumps


class _Call:
    __slots__ = ()

    def append(self, in_seq: int, ts: int, cmd: Command) -> None:
        pass


class _Encode:
    __slots__ = ()

    def append(self, in_seq: int, ts: int, cmd: Command) -> None:
        _dumps((in_seq, ts, OP_CODES[type(cmd)]) + cmd)  # noqa: RUF005 (as Journal.append)


class _Record:
    __slots__ = ()

    def append(self, in_seq: int, ts: int, cmd: Command) -> None:
        encode_record(in_seq, ts, cmd)


def _sink(name: str, path: Path, interval_ms: float) -> JournalSink | None:
    if name == "none":
        return None
    if name == "call":
        return _Call()
    if name == "encode":
        return _Encode()
    if name == "record":
        return _Record()
    fsync: FsyncPolicy = "never" if name == "never" else "interval"
    return Journal(JournalConfig(path=path, fsync=fsync, fsync_interval_ms=interval_ms))


def bench_journal_cost(
    throughput: Throughput,
    commands: Sequence[Command],
    directory: str,
    *,
    repeat: int,
    fsync_interval_ms: float,
) -> dict[str, Any]:
    """``{"journal_cost": [{"sink", "us_per_cmd", "over_none_us", "runs"}, ...]}`` in
    :data:`SINKS` order; ``us_per_cmd`` is the median over ``repeat`` interleaved rounds of
    ``throughput`` (the ``throughput`` phase's own timing: a fresh engine, the journal's close
    included), by the wall clock."""
    runs: dict[str, list[float]] = {name: [] for name in SINKS}
    path = Path(directory) / "cost.journal"
    for _ in range(repeat):
        for name in SINKS:
            path.unlink(missing_ok=True)
            wall_rate, _ = throughput(commands, _sink(name, path, fsync_interval_ms))
            runs[name].append(1e6 / wall_rate)
    path.unlink(missing_ok=True)
    base = statistics.median(runs["none"])
    rows = []
    for name in SINKS:
        median = statistics.median(runs[name])
        rows.append(
            {
                "sink": name,
                "us_per_cmd": round(median, 3),
                "over_none_us": round(median - base, 3),
                "runs": [round(v, 3) for v in runs[name]],
            }
        )
    return {"journal_cost": rows}


def describe(rows: Sequence[dict[str, Any]]) -> str:
    """One log line: each sink's median and its difference from ``none``."""
    parts = [
        f"{row['sink']} {row['us_per_cmd']:.2f}"
        + ("" if row["sink"] == "none" else f" ({row['over_none_us']:+.2f})")
        for row in rows
    ]
    return "journal cost (median us/command, difference from none): " + "; ".join(parts)
