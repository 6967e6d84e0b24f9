"""The journal: record round trip, torn-tail cutting, fsync policies, restore."""

from __future__ import annotations

import functools
import os
import zlib
from collections.abc import Callable, Iterable
from pathlib import Path

import orjson
import pytest

from engine import Engine, EngineConfig
from engine.codec import encode_event
from engine.commands import (
    CancelOrder,
    Command,
    DefineInstrument,
    Deposit,
    Malformed,
    NewOrder,
    ReplaceOrder,
)
from engine.events import Event
from engine.journal import (
    Journal,
    JournalConfig,
    JournalError,
    decode_record,
    encode_record,
    replay,
    restore,
    scan,
)
from loadtest.cmdgen import CmdGenConfig, generate

COMMANDS: list[Command] = [
    DefineInstrument("ACME", "0.01", 1),
    DefineInstrument("EURX", "0.0005", 10, "EUR", 1000, "50000.5", "0.1", ts=5),
    Deposit("alice", "USD", "1000.50"),
    Deposit("bob", "ACME", 300),
    NewOrder("alice", "a1", "ACME", "buy", "limit", "10.01", 5),
    NewOrder("bob", "b1", "ACME", "sell", "market", None, 3, "IOC", ts=99),
    NewOrder("bob", "b2", "ACME", "sell", "limit", "10.5", 7, "FOK"),
    CancelOrder("alice", "a1"),
    ReplaceOrder("bob", "b2", price="10.4"),
    ReplaceOrder("bob", "b2", qty=4),
    ReplaceOrder("bob", "b2", "10.3", 2, ts=7),
    Malformed("invalid JSON: unexpected character"),
    Malformed("field 'qty' must be an integer", "alice", "a9", 12, "bad_qty"),
    NewOrder("carol", "c1", "NOPE", "sideways", "limit", "abc", 0, "DAY"),
]


def _write(path: Path, commands: list[Command], *, fsync: str = "interval") -> None:
    with Journal(JournalConfig(path=path, fsync=fsync)) as journal:  # type: ignore[arg-type]
        for i, cmd in enumerate(commands, start=1):
            journal.append(i, 1_000 + i, cmd)


def test_values_orjson_cannot_carry_round_trip(tmp_path: Path) -> None:
    odd: list[Command] = [
        NewOrder("\ud800", "x\udfff", "ACME", "buy", "limit", "1.00", 1),
        Malformed("bad \ud83d", "a", None, None, "malformed"),
        Deposit("caf\u00e9 \U0001f600", "USD", "1"),
        NewOrder("a", "b", "ACME", "buy", "limit", "1.00", 10**30),
        Deposit("a", "USD", -(2**64), ts=2**63),
    ]
    for cmd in odd:
        assert decode_record(encode_record(3, 4, cmd)) == (3, 4, cmd)
    path = tmp_path / "journal.log"
    _write(path, odd)
    assert [r[2] for r in replay(path)] == odd


def test_file_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "j" / "journal.log"
    _write(path, COMMANDS)
    assert list(replay(path)) == [(i, 1_000 + i, c) for i, c in enumerate(COMMANDS, start=1)]
    result = scan(path)
    assert (result.records, result.last_in_seq, result.bad_bytes) == (len(COMMANDS), 14, 0)


def test_reopen_continues_numbering(tmp_path: Path) -> None:
    path = tmp_path / "journal.log"
    _write(path, COMMANDS[:3])
    with Journal(JournalConfig(path=path)) as journal:
        assert (journal.last_in_seq, journal.records, journal.cut_bytes) == (3, 3, 0)
        with pytest.raises(JournalError):
            journal.append(5, 0, COMMANDS[3])
        journal.append(4, 0, COMMANDS[3])
    assert [r[0] for r in replay(path)] == [1, 2, 3, 4]


def _damage_truncate(data: bytes) -> bytes:
    return data[:-7]


def _damage_garbage(data: bytes) -> bytes:
    return data + b"\x00\xffgarbage with no newline"


def _damage_flip(data: bytes) -> bytes:
    start = data.rindex(b"\n", 0, len(data) - 1) + 1
    pos = start + 30
    return data[:pos] + bytes([data[pos] ^ 0x01]) + data[pos + 1 :]


def _damage_bad_crc_line(data: bytes) -> bytes:
    return data + b'00000000 {"inSeq":15,"ts":1,"cmd":{"op":"cancel"}}\n'


@pytest.mark.parametrize(
    "damage", [_damage_truncate, _damage_garbage, _damage_flip, _damage_bad_crc_line]
)
def test_torn_tail_is_cut(tmp_path: Path, damage: object) -> None:
    path = tmp_path / "journal.log"
    _write(path, COMMANDS)
    good = path.read_bytes()
    damaged = damage(good)  # type: ignore[operator]
    path.write_bytes(damaged)
    whole_records = COMMANDS if len(damaged) > len(good) else COMMANDS[:-1]
    expected = [(i, 1_000 + i, c) for i, c in enumerate(whole_records, start=1)]
    assert list(replay(path)) == expected  # reading never changes the file
    assert path.read_bytes() == damaged
    with Journal(JournalConfig(path=path)) as journal:
        assert journal.last_in_seq == len(whole_records)
        assert journal.cut_bytes == len(damaged) - len(path.read_bytes())
        assert journal.cut_bytes > 0
        journal.append(journal.last_in_seq + 1, 7, COMMANDS[0])
    assert list(replay(path)) == [*expected, (len(whole_records) + 1, 7, COMMANDS[0])]
    assert scan(path).bad_bytes == 0


def test_gap_in_numbering_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "journal.log"
    path.write_bytes(encode_record(1, 0, COMMANDS[0]) + encode_record(3, 0, COMMANDS[1]))
    with pytest.raises(JournalError):
        Journal(JournalConfig(path=path))


@pytest.mark.parametrize("fsync", ["every", "interval", "never"])
def test_fsync_policies(tmp_path: Path, fsync: str) -> None:
    path = tmp_path / "journal.log"
    config = JournalConfig(path=path, fsync=fsync, fsync_interval_ms=0)  # type: ignore[arg-type]
    journal = Journal(config)
    journal.append(1, 1, COMMANDS[0])
    if fsync == "never":
        assert path.stat().st_size == 0  # still buffered
        assert not journal.sync_due()
    elif fsync == "every":
        assert len(list(replay(path))) == 1  # written and synced before append returns
        assert journal.syncs == 1
    else:
        journal.flush()  # waits for the sync thread
        assert len(list(replay(path))) == 1
        assert journal.syncs >= 1
        assert not journal.sync_due()  # interval 0: every append hands off, nothing left
    n = journal.last_in_seq
    journal.append(n + 1, 9, COMMANDS[3])
    journal.flush()
    assert len(list(replay(path))) == n + 1
    journal.close()
    journal.close()  # idempotent
    assert journal.closed
    with pytest.raises(JournalError):
        journal.append(n + 2, 3, COMMANDS[2])


def test_interval_policy_buffers_until_due(tmp_path: Path) -> None:
    path = tmp_path / "journal.log"
    journal = Journal(JournalConfig(path=path, fsync="interval", fsync_interval_ms=60_000))
    for i, cmd in enumerate(COMMANDS, start=1):
        journal.append(i, i, cmd)
    assert path.stat().st_size == 0
    assert not journal.sync_due()
    journal.close()
    assert len(list(replay(path))) == len(COMMANDS)


def test_sync_due_hands_off_once_the_interval_passed(tmp_path: Path) -> None:
    path = tmp_path / "journal.log"
    with Journal(JournalConfig(path=path, fsync="interval", fsync_interval_ms=60_000)) as journal:
        journal.append(1, 1, COMMANDS[0])
        journal.append(2, 2, COMMANDS[1])
        assert not journal.sync_due()
        journal._deadline_ns = 0  # as if the interval had passed
        assert journal.sync_due()
        assert not journal.sync_due()  # nothing left to hand off
        journal.flush()
        assert len(list(replay(path))) == 2


@pytest.mark.parametrize("fsync", ["interval", "never"])
def test_buffer_limit_forces_a_write(tmp_path: Path, fsync: str) -> None:
    path = tmp_path / "journal.log"
    config = JournalConfig(
        path=path,
        fsync=fsync,  # type: ignore[arg-type]
        fsync_interval_ms=60_000,
        buffer_max_bytes=1,
    )
    journal = Journal(config)
    for i in range(1, 21):
        journal.append(i, i, COMMANDS[i % len(COMMANDS)])
    if fsync == "interval":
        journal._syncer.wait_idle()  # type: ignore[union-attr]
    assert len(list(replay(path))) == 20  # written without flush or close
    journal.close()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"fsync": "sometimes"},
        {"fsync_interval_ms": -1},
        {"fsync_interval_ms": "5"},
        {"buffer_max_bytes": 0},
        {"buffer_max_bytes": 1.5},
        {"path": ""},
    ],
)
def test_bad_config_is_rejected(tmp_path: Path, kwargs: dict[str, object]) -> None:
    args: dict[str, object] = {"path": tmp_path / "j.log", **kwargs}
    with pytest.raises(ValueError):
        JournalConfig(**args)  # type: ignore[arg-type]


def test_empty_and_missing_files(tmp_path: Path) -> None:
    path = tmp_path / "new" / "journal.log"
    with Journal(JournalConfig(path=path)) as journal:
        assert (journal.last_in_seq, journal.records, journal.cut_bytes) == (0, 0, 0)
    assert os.path.getsize(path) == 0
    assert list(replay(path)) == []


# --------------------------------------------------------------------------- with the engine


def _counter_clock() -> Callable[[], int]:
    ticks = [1_000]

    def clock() -> int:
        ticks[0] += 7
        return ticks[0]

    return clock


def _stream() -> list[Command]:
    """A generated stream without ts (so the clock stamps it), with malformed inputs mixed in."""
    config = CmdGenConfig(symbols=4, accounts=3, ts_step_us=0)
    stream: list[Command] = list(generate(config, 3_000))
    for i in range(500, 3_000, 250):
        stream[i] = Malformed(f"bad line {i}", "acct1", f"m{i}", None, "bad_qty")
    return stream


def _run(engine: Engine, commands: Iterable[Command]) -> list[bytes]:
    return [encode_event(e, engine.instruments) for c in commands for e in engine.submit(c)]


def test_restore_gives_the_same_state_and_events(tmp_path: Path) -> None:
    path = tmp_path / "journal.log"
    commands = _stream()
    journal = Journal(JournalConfig(path=path, fsync="never"))
    original = Engine(EngineConfig(), clock=_counter_clock(), journal=journal)
    events = _run(original, commands[:2_000])
    journal.flush()
    assert journal.last_in_seq == 2_000

    # the replayed records give byte-identical events
    fresh = Engine(EngineConfig(), clock=lambda: 0)
    replayed = [
        encode_event(e, fresh.instruments)
        for in_seq, ts, cmd in replay(path)
        for e in fresh.submit_sequenced(in_seq, ts, cmd)
    ]
    assert replayed == events
    assert fresh.state_hash() == original.state_hash()

    # restore from the path (read only), handing the replayed events on
    seen: list[Event] = []
    from_path = restore(
        functools.partial(Engine, EngineConfig(), clock=lambda: 0), path, on_events=seen.extend
    )
    assert from_path.state_hash() == original.state_hash()
    assert from_path.in_seq == 2_000
    assert [encode_event(e, from_path.instruments) for e in seen] == events

    # restore continuing the live journal: new inputs go on from inSeq 2001, and give the
    # same events as an uninterrupted run (whose clock has the same readings)
    journal.close()
    reopened = Journal(JournalConfig(path=path, fsync="never"))
    clock = _counter_clock()
    for _ in range(2_000):
        clock()  # the readings the original run took
    restored = restore(functools.partial(Engine, EngineConfig(), clock=clock), reopened)
    assert restored.state_hash() == original.state_hash()
    assert reopened.last_in_seq == 2_000  # nothing journaled twice
    uninterrupted = Engine(EngineConfig(), clock=_counter_clock())
    assert _run(uninterrupted, commands[:2_000]) == events
    more = _run(restored, commands[2_000:])
    assert more == _run(uninterrupted, commands[2_000:])
    assert restored.state_hash() == uninterrupted.state_hash()
    assert reopened.last_in_seq == 3_000
    assert orjson.loads(more[0])["inSeq"] == 2_001
    reopened.close()
    whole = restore(functools.partial(Engine, EngineConfig(), clock=lambda: 0), path)
    assert whole.state_hash() == restored.state_hash()
    assert whole.in_seq == 3_000


def test_restore_after_a_torn_tail_gives_the_state_before_it(tmp_path: Path) -> None:
    path = tmp_path / "journal.log"
    commands = _stream()[:1_500]
    with Journal(JournalConfig(path=path, fsync="never")) as journal:
        engine = Engine(EngineConfig(), clock=_counter_clock(), journal=journal)
        _run(engine, commands)
    before = Engine(EngineConfig(), clock=_counter_clock())
    _run(before, commands[:-1])
    data = path.read_bytes()
    path.write_bytes(data[:-20])  # the last record is torn
    reopened = Journal(JournalConfig(path=path))
    assert reopened.cut_bytes > 0 and reopened.last_in_seq == 1_499
    restored = restore(functools.partial(Engine, EngineConfig(), clock=lambda: 0), reopened)
    assert restored.state_hash() == before.state_hash()
    reopened.close()


def test_a_bad_ts_is_journaled_as_the_malformed_input(tmp_path: Path) -> None:
    path = tmp_path / "journal.log"
    with Journal(JournalConfig(path=path)) as journal:
        engine = Engine(EngineConfig(), clock=lambda: 5, journal=journal)
        bad = engine.submit_line(b'{"op":"cancel","account":"a","clientOrderId":"x","ts":-1}')
        assert bad[0].reason == "malformed"  # type: ignore[union-attr]
    fresh = Engine(EngineConfig(), clock=lambda: 0)
    (record,) = list(replay(path))
    assert fresh.submit_sequenced(*record) == bad


def test_scan_reads_records_of_another_key_order(tmp_path: Path) -> None:
    path = tmp_path / "journal.log"
    body = b'{"ts":7,"cmd":{"op":"cancel","account":"a","clientOrderId":"x"},"inSeq":1}'
    path.write_bytes(b"%08x " % zlib.crc32(body) + body + b"\n" + encode_record(2, 8, COMMANDS[0]))
    assert scan(path).last_in_seq == 2
    assert [r[:2] for r in replay(path)] == [(1, 7), (2, 8)]
    assert [r[:2] for r in replay(path, after=1)] == [(2, 8)]
    assert list(replay(path, after=2)) == []


def test_replay_after_skips_the_prefix(tmp_path: Path) -> None:
    path = tmp_path / "journal.log"
    _write(path, COMMANDS)
    expected = [(i, 1_000 + i, c) for i, c in enumerate(COMMANDS, start=1)]
    assert list(replay(path, after=5)) == expected[5:]
    path.write_bytes(path.read_bytes()[:-3])  # torn
    assert list(replay(path, after=5)) == expected[5:-1]


def _v1_record(in_seq: int, ts: int, cmd: dict[str, object]) -> bytes:
    body = orjson.dumps({"inSeq": in_seq, "ts": ts, "cmd": cmd})
    return b"%08x " % zlib.crc32(body) + body + b"\n"


def test_an_old_format_journal_is_read_and_continued(tmp_path: Path) -> None:
    path = tmp_path / "journal.log"
    path.write_bytes(
        _v1_record(1, 5, {"op": "instrument", "symbol": "ACME", "tick": "0.01", "lot": 1})
        + _v1_record(2, 6, {"op": "deposit", "account": "a", "asset": "USD", "amount": "9"})
    )
    with Journal(JournalConfig(path=path)) as journal:
        assert (journal.last_in_seq, journal.cut_bytes) == (2, 0)
        journal.append(3, 7, CancelOrder("a", "x"))
    assert list(replay(path)) == [
        (1, 5, DefineInstrument("ACME", "0.01", 1)),
        (2, 6, Deposit("a", "USD", "9")),
        (3, 7, CancelOrder("a", "x")),
    ]
    assert [r[0] for r in replay(path, after=1)] == [2, 3]


def test_a_record_of_an_unknown_format_is_refused_not_cut(tmp_path: Path) -> None:
    path = tmp_path / "journal.log"
    body = b'<3 17 "future">'
    data = encode_record(1, 5, COMMANDS[0]) + b"%08x " % zlib.crc32(body) + body + b"\n"
    path.write_bytes(data)
    with pytest.raises(JournalError, match="unknown format"):
        Journal(JournalConfig(path=path))
    with pytest.raises(JournalError, match="unknown format"):
        list(replay(path))
    with pytest.raises(JournalError, match="unknown format"):
        scan(path)
    assert path.read_bytes() == data


def test_flush_begin_hands_on_now_and_waits_apart(tmp_path: Path) -> None:
    """The two halves of flush: after the returned wait, everything appended is on disk."""
    from engine.commands import Deposit

    for policy in ("interval", "every", "never"):
        path = tmp_path / f"{policy}.log"
        journal = Journal(JournalConfig(path=str(path), fsync=policy, fsync_interval_ms=1000))
        try:
            journal.append(1, 10, Deposit("a", "USD", "1"))
            wait = journal.flush_begin()
            wait()
            assert path.read_bytes().count(b"\n") == 1, policy
        finally:
            journal.close()
