"""Coverage-guided fuzzing of the engine (atheris / libFuzzer).

Each input becomes 1-40 command lines (:mod:`fuzz_gen`) run through ``Engine.submit_line`` (a few
as Python values through ``Engine.submit``, one field replaced by an odd value)
twice: with tiny retention bounds (compaction every 2 order ids) and at most 2 resting orders per
account, and with the default config.
After every command :func:`fuzz_checks.check` holds the engine to its invariants and every
event must encode. The lines are journaled as they run; at the end the journal replays into a
fresh engine with the same state hash and byte-identical events, the JSON lines re-run give the
same again, and a snapshot taken part way loads into an engine that continues identically.

    .venv/bin/python tests/fuzz/fuzz_engine.py -max_total_time=600 -max_len=2048 /tmp/corpus
    .venv/bin/python tests/fuzz/fuzz_engine.py crash-<sha>      # replay one input

Without atheris installed, the script replays the files given as arguments.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from functools import partial
from pathlib import Path
from typing import Any

try:
    import atheris
except ImportError:  # replay-only mode
    atheris = None

with atheris.instrument_imports(include=["engine"]) if atheris else contextlib.nullcontext():
    import fuzz_checks
    import fuzz_gen

    from engine import Engine, EngineConfig
    from engine.codec import encode_event
    from engine.commands import Command
    from engine.journal import Journal, JournalConfig, encode_record, restore
    from engine.snapshot import load_snapshot, write_snapshot

CONFIGS = (
    EngineConfig(
        finished_orders_max=3,
        executions_per_account_max=2,
        compact_every_orders=2,
        max_open_orders_per_account=2,
    ),
    EngineConfig(),
)
_SHM = "/dev/shm" if os.path.isdir("/dev/shm") else None  # a tmpfs: cheap fsync
_DIR = Path(tempfile.mkdtemp(prefix="fuzz_engine_", dir=_SHM))


class Clock:
    """A deterministic clock whose position can be copied (for a snapshot's twin)."""

    def __init__(self, now: int = 1_700_000_000_000_000) -> None:
        self.now = now

    def __call__(self) -> int:
        self.now += 7
        return self.now


class Records:
    """A journal sink that keeps the encoded records (it fails where a journal fails)."""

    def __init__(self) -> None:
        self.records: list[bytes] = []

    def append(self, in_seq: int, ts: int, cmd: Command) -> None:
        self.records.append(encode_record(in_seq, ts, cmd))


def _factory(config: EngineConfig, now: int, journal: Any = None) -> Engine:
    return Engine(config, clock=Clock(now), journal=journal)


def run_config(config: EngineConfig, lines: list[fuzz_gen.Item], snap_at: int) -> None:
    journal_path = _DIR / "journal.jsonl"
    snap_path = _DIR / "snapshot.bin"
    journal_path.unlink(missing_ok=True)
    snap_path.unlink(missing_ok=True)
    journal = Journal(JournalConfig(path=journal_path, fsync="never"))
    clock = Clock()
    engine = Engine(config, clock=clock, journal=journal)
    model = fuzz_checks.Model()
    out: list[bytes] = []
    twin: Engine | None = None
    twin_out: list[bytes] = []
    for i, line in enumerate(lines):
        if i == snap_at:
            write_snapshot(engine, snap_path)
            factory = partial(_factory, config, clock.now)
            twin = load_snapshot(factory, snap_path, journal=Records())  # type: ignore[arg-type]
            assert twin.state_hash() == engine.state_hash()
        seq_before = engine.out_seq
        cmd = fuzz_gen.to_command(line)
        pre = fuzz_checks.before(engine, cmd)
        events = fuzz_gen.submit(engine, line)
        out += fuzz_checks.check_events(engine, seq_before, events)
        fuzz_checks.check_semantics(engine, model, pre, events)
        fuzz_checks.check(engine, model, cmd, events)
        if twin is not None:
            twin_out += [encode_event(e, twin.instruments) for e in fuzz_gen.submit(twin, line)]
    assert engine.in_seq == len(lines)
    journal.close()
    final = engine.state_hash()
    if twin is not None:
        assert twin.state_hash() == final
        assert twin_out == out[len(out) - len(twin_out) :]

    # replay of the journal: same events, same state
    replayed: list[bytes] = []

    def collect(events: list[Any]) -> None:
        replayed.extend(encode_event(e, restored_instruments[0]) for e in events)

    restored_instruments: list[Any] = [None]

    def factory(journal: Any = None) -> Engine:
        fresh = Engine(config, clock=Clock(), journal=journal)
        restored_instruments[0] = fresh.instruments
        return fresh

    restored = restore(factory, journal_path, on_events=collect)
    assert restored.state_hash() == final
    assert replayed == out

    # the same lines again (journaled too: a value no JSON encoder writes is malformed only
    # when there is a journal): byte-identical, and the same journal records
    sink = Records()
    again = Engine(config, clock=Clock(), journal=sink)
    out2 = [encode_event(e, again.instruments) for ln in lines for e in fuzz_gen.submit(again, ln)]
    assert out2 == out and again.state_hash() == final
    assert b"".join(sink.records) == journal_path.read_bytes()


def test_one_input(data: bytes) -> None:
    lines = fuzz_gen.command_lines(data)
    snap_at = data[-1] % (len(lines) + 1) if data and data[-1] & 1 else -1
    for config in CONFIGS:
        run_config(config, lines, snap_at)


if __name__ == "__main__":
    fuzz_checks.fuzz_main(test_one_input, atheris)
