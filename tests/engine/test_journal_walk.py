"""The one reader of a journal file behind ``scan`` and ``replay`` (with and without ``after``):
each line checked once, the gap-free ``inSeq`` enforced in every mode, decoding only of what is
yielded, and the same stop at the first bad line."""

from __future__ import annotations

import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import engine.journal
import engine.journal_format
from engine.commands import Command
from engine.journal import JournalError, encode_record, replay, scan
from tests.engine.test_journal import COMMANDS


def _line(body: bytes) -> bytes:
    return b"%08x " % zlib.crc32(body) + body + b"\n"


def _records(in_seqs: list[int]) -> bytes:
    return b"".join(encode_record(n, 1_000 + n, COMMANDS[n % len(COMMANDS)]) for n in in_seqs)


def _expected(in_seqs: list[int]) -> list[tuple[int, int, Command]]:
    return [(n, 1_000 + n, COMMANDS[n % len(COMMANDS)]) for n in in_seqs]


_READERS: dict[str, Callable[[Path], object]] = {
    "scan": scan,
    "replay": lambda path: list(replay(path)),
    "replay after 2": lambda path: list(replay(path, after=2)),
    "replay after 5": lambda path: list(replay(path, after=5)),
    "replay after all": lambda path: list(replay(path, after=100)),
}


@pytest.mark.parametrize("reader", _READERS)
@pytest.mark.parametrize("gap_at", [2, 4, 7])  # before, at and beyond the ``after`` points
def test_a_gap_is_an_error_in_every_mode(tmp_path: Path, reader: str, gap_at: int) -> None:
    path = tmp_path / "journal.log"
    in_seqs = [n for n in range(1, 10) if n != gap_at]
    path.write_bytes(_records(in_seqs))
    with pytest.raises(JournalError, match=f"inSeq {gap_at + 1} follows {gap_at - 1}"):
        _READERS[reader](path)


@pytest.mark.parametrize("reader", _READERS)
@pytest.mark.parametrize("position", [1, 3, 6])  # the unknown record's line number (0-based)
def test_an_unknown_format_in_the_middle_is_refused(
    tmp_path: Path, reader: str, position: int
) -> None:
    path = tmp_path / "journal.log"
    lines = [encode_record(n, 1_000 + n, COMMANDS[n]) for n in range(1, 9)]
    lines.insert(position, _line(b'<3 17 "future">'))
    path.write_bytes(b"".join(lines))
    with pytest.raises(JournalError, match="unknown format"):
        _READERS[reader](path)


@pytest.mark.parametrize("reader", [*_READERS, "restore"])
@pytest.mark.parametrize(
    "first", [b"[0,5,3,", b"[-3,5,3,", b'{"inSeq":0,"ts":5,"cmd":{"op":"cancel",']
)
def test_an_in_seq_below_1_is_an_error(tmp_path: Path, reader: str, first: bytes) -> None:
    # found by tests/fuzz/fuzz_journal.py: a record numbered 0 (or below) with a good checksum
    # made restore raise ValueError from the sequencer ("input sequence 0 is not after 0")
    # instead of the documented JournalError; the engine numbers its inputs from 1
    from engine import Engine
    from engine.journal import restore

    path = tmp_path / "journal.log"
    tail = b'"a","b",null]' if first.startswith(b"[") else b'"account":"a","clientOrderId":"b"}}'
    path.write_bytes(_line(first + tail))
    read = _READERS.get(reader) or (lambda p: restore(lambda journal=None: Engine(), p))
    with pytest.raises(JournalError, match="numbered from 1"):
        read(path)


def test_a_good_checksum_over_a_record_that_does_not_decode_ends_the_replay(
    tmp_path: Path,
) -> None:
    path = tmp_path / "journal.log"
    # inSeq 4 has a readable inSeq but an unknown op code: not cut as a torn tail by a scan
    # (which does not decode), but a replay that decodes it stops there
    path.write_bytes(_records([1, 2, 3]) + _line(b"[4,1004,99]") + _records([5, 6]))
    assert scan(path).records == 6
    assert list(replay(path)) == _expected([1, 2, 3])
    assert list(replay(path, after=2)) == _expected([3])
    assert list(replay(path, after=4)) == _expected([5, 6])  # not decoded, so not read


def test_a_gap_is_found_even_at_a_record_that_does_not_decode(tmp_path: Path) -> None:
    path = tmp_path / "journal.log"
    path.write_bytes(_records([1, 2]) + _line(b"[4,1004,99]"))
    for read in _READERS.values():
        with pytest.raises(JournalError, match="inSeq 4 follows 2"):
            read(path)


def test_torn_tail_stops_every_mode_at_the_same_record(tmp_path: Path) -> None:
    path = tmp_path / "journal.log"
    data = _records(list(range(1, 9)))
    path.write_bytes(data[:-5])
    result = scan(path)
    assert (result.records, result.last_in_seq) == (7, 7)
    assert result.good_bytes == len(_records(list(range(1, 8))))
    assert list(replay(path)) == _expected(list(range(1, 8)))
    assert list(replay(path, after=5)) == _expected([6, 7])
    assert list(replay(path, after=7)) == []


def _counting(monkeypatch: pytest.MonkeyPatch, module: Any, name: str) -> list[int]:
    calls = [0]
    real = getattr(module, name)

    def counted(*args: Any) -> Any:
        calls[0] += 1
        return real(*args)

    monkeypatch.setattr(module, name, counted)
    return calls


@pytest.mark.parametrize(
    ("after", "decoded"), [(None, 0), (0, 14), (5, 9), (13, 1), (14, 0), (99, 0)]
)
def test_each_line_is_checked_once_and_only_what_is_yielded_is_decoded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, after: int | None, decoded: int
) -> None:
    path = tmp_path / "journal.log"
    path.write_bytes(_records(list(range(1, 15))))
    crcs = _counting(monkeypatch, engine.journal_format, "_crc32")
    decodes = _counting(monkeypatch, engine.journal, "decode_body")
    if after is None:
        assert scan(path).records == 14
    else:
        assert [r[0] for r in replay(path, after=after)] == list(range(max(after, 0) + 1, 15))
    assert crcs[0] == 14  # one checksum per line
    assert decodes[0] == decoded


def test_replay_is_lazy(tmp_path: Path) -> None:
    path = tmp_path / "journal.log"
    path.write_bytes(_records([1, 2, 3]) + _records([5]))  # a gap after three good records
    records = replay(path)
    assert [next(records) for _ in range(3)] == _expected([1, 2, 3])
    with pytest.raises(JournalError, match="gap"):
        next(records)
