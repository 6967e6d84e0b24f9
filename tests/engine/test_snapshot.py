"""State snapshots: round trip, damage detection, restore = snapshot + journal tail."""

from __future__ import annotations

import functools
import zlib
from collections.abc import Iterable, Sequence
from pathlib import Path

import pytest

from engine import Engine, EngineConfig
from engine.codec import encode_event
from engine.commands import Command, NewOrder
from engine.journal import Journal, JournalConfig, restore
from engine.snapshot import (
    SnapshotError,
    load_snapshot,
    read_snapshot_info,
    restore_with_snapshot,
    write_snapshot,
)
from loadtest.cmdgen import CmdGenConfig, generate, resting

FACTORY = functools.partial(Engine, EngineConfig(), clock=lambda: 0)


def _run(engine: Engine, commands: Iterable[Command]) -> list[bytes]:
    return [encode_event(e, engine.instruments) for c in commands for e in engine.submit(c)]


def _commands() -> list[Command]:
    return list(generate(CmdGenConfig(symbols=4, accounts=3), 3_000))


def test_snapshot_round_trip_continues_identically(tmp_path: Path) -> None:
    commands = _commands()
    engine = FACTORY()
    _run(engine, commands[:2_000])
    info = write_snapshot(engine, tmp_path / "snap")
    assert (info.in_seq, info.state_hash) == (2_000, engine.state_hash())
    assert read_snapshot_info(tmp_path / "snap") == info
    loaded = load_snapshot(FACTORY, tmp_path / "snap")
    assert loaded is not engine and loaded.state_hash() == engine.state_hash()
    assert _run(loaded, commands[2_000:]) == _run(engine, commands[2_000:])
    assert loaded.state_hash() == engine.state_hash()
    # no instance dict, before or after pickling: CPython 3.11 would look every attribute of
    # the hot path up in it once pickling had made one (12 % more instructions per command)
    assert not hasattr(engine, "__dict__") and not hasattr(loaded, "__dict__")


def test_long_price_levels_pickle(tmp_path: Path) -> None:
    config = CmdGenConfig(symbols=1, accounts=2)
    engine = FACTORY()
    _run(engine, list(resting(config, 1)))
    same_level = [
        NewOrder("acct0", f"x{i}", "S000", "buy", "limit", "90.00", 1) for i in range(5_000)
    ]
    _run(engine, same_level)
    write_snapshot(engine, tmp_path / "snap")
    assert load_snapshot(FACTORY, tmp_path / "snap").state_hash() == engine.state_hash()


@pytest.mark.parametrize("where", ["header", "body", "truncated"])
def test_a_damaged_snapshot_is_refused(tmp_path: Path, where: str) -> None:
    engine = FACTORY()
    _run(engine, _commands()[:500])
    path = tmp_path / "snap"
    write_snapshot(engine, path)
    data = bytearray(path.read_bytes())
    if where == "header":
        data[12] ^= 1
    elif where == "body":
        data[-10] ^= 1
    else:
        del data[-5:]
    path.write_bytes(bytes(data))
    with pytest.raises(SnapshotError):
        load_snapshot(FACTORY, path)
    with pytest.raises(SnapshotError):
        load_snapshot(FACTORY, tmp_path / "missing")


def _journaled(
    jpath: Path, commands: list[Command], snapshot: Path | None = None, then: Sequence[Command] = ()
) -> Engine:
    """An engine that journaled ``commands`` to ``jpath``, wrote a snapshot after them (if
    given), then journaled ``then``."""
    with Journal(JournalConfig(path=jpath, fsync="never")) as journal:
        live = Engine(EngineConfig(), clock=lambda: 0, journal=journal)
        _run(live, commands)
        if snapshot is not None:
            write_snapshot(live, snapshot)  # the journal is not pickled, only referenced
        _run(live, then)
    return live


def test_restore_with_snapshot_replays_only_the_tail(tmp_path: Path) -> None:
    commands = _commands()
    jpath, spath = tmp_path / "journal.log", tmp_path / "snap"
    live = _journaled(jpath, commands[:1_500], spath, commands[1_500:2_500])
    journal = Journal(JournalConfig(path=jpath, fsync="never"))
    engine, used = restore_with_snapshot(FACTORY, journal, spath)
    assert used and engine.state_hash() == live.state_hash() and engine.in_seq == 2_500
    # the restored engine journals to the reopened journal and continues the numbering
    twin = restore(FACTORY, jpath)
    assert _run(engine, commands[2_500:]) == _run(twin, commands[2_500:])
    assert journal.last_in_seq == 3_000
    journal.close()


def test_restore_falls_back_to_the_journal(tmp_path: Path) -> None:
    commands = _commands()
    jpath, spath = tmp_path / "journal.log", tmp_path / "snap"
    live = _journaled(jpath, commands[:1_000])
    ahead = FACTORY()
    _run(ahead, commands[:1_200])
    write_snapshot(ahead, spath)  # ahead of the journal: not to be trusted
    with Journal(JournalConfig(path=jpath)) as journal:
        engine, used = restore_with_snapshot(FACTORY, journal, spath)
        assert not used and engine.state_hash() == live.state_hash()
    spath.write_bytes(b"garbage")
    with Journal(JournalConfig(path=jpath)) as journal:
        engine, used = restore_with_snapshot(FACTORY, journal, tmp_path / "nothing")
        assert not used and engine.state_hash() == live.state_hash()


@pytest.mark.parametrize(("version", "predates"), [(1, "order retention"), (2, "share totals")])
def test_an_older_snapshot_is_refused_and_the_journal_replayed(
    tmp_path: Path, version: int, predates: str
) -> None:
    commands = _commands()
    jpath, spath = tmp_path / "journal.log", tmp_path / "snap"
    live = _journaled(jpath, commands[:1_000], spath)
    line, _, body = spath.read_bytes().partition(b"\n")
    header = line[9:].replace(b'"version":3', b'"version":%d' % version)
    spath.write_bytes(b"%08x " % zlib.crc32(header) + header + b"\n" + body)
    with pytest.raises(SnapshotError, match=f"format {version} predates .*{predates}"):
        load_snapshot(FACTORY, spath)
    with Journal(JournalConfig(path=jpath)) as journal:
        engine, used = restore_with_snapshot(FACTORY, journal, spath)
        assert not used and engine.state_hash() == live.state_hash()
