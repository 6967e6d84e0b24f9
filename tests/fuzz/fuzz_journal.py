"""Coverage-guided fuzzing of the journal's reader (atheris / libFuzzer).

Arbitrary bytes, as one record line and as a whole journal file:

* ``record_body`` / ``decode_body`` / ``decode_record`` / ``in_seq_of_body`` raise nothing but
  :class:`~engine.journal.JournalError`; a record that decodes re-encodes (``encode_record``)
  to a record that decodes to the same value, and a format-2 record written by this version
  re-encodes to the same bytes;
* ``scan``, ``replay`` and ``restore`` of a file of those bytes raise nothing but
  ``JournalError``; the
  valid prefix ``scan`` reports is what ``replay`` yields; opening a :class:`Journal` on the
  file cuts exactly the torn tail, after which the file scans clean and appending continues
  the ``inSeq`` numbering.

The bytes are used as they are and also with a valid checksum put in front of each line, so the
fuzzer reaches the JSON decoders behind the checksum.

    .venv/bin/python tests/fuzz/fuzz_journal.py -max_total_time=600 -max_len=4096 /tmp/corpus
"""

from __future__ import annotations

import contextlib
import math
import os
import tempfile
import zlib
from pathlib import Path

try:
    import atheris
except ImportError:  # replay-only mode
    atheris = None

with atheris.instrument_imports(include=["engine"]) if atheris else contextlib.nullcontext():
    import fuzz_checks  # puts the repo root on sys.path

    from engine import Engine
    from engine.commands import CancelOrder
    from engine.journal import Journal, JournalConfig, JournalError, replay, restore, scan
    from engine.journal_format import (
        decode_body,
        decode_record,
        encode_record,
        in_seq_of_body,
        record_body,
    )

_SHM = "/dev/shm" if os.path.isdir("/dev/shm") else None  # a tmpfs: cheap fsync
_DIR = Path(tempfile.mkdtemp(prefix="fuzz_journal_", dir=_SHM))


def framed(data: bytes) -> bytes:
    """Each line of ``data`` with a valid checksum in front."""
    out = []
    for line in data.split(b"\n"):
        if line:
            out.append(b"%08x %b\n" % (zlib.crc32(line), line))
    return b"".join(out)


def finite(value: object) -> bool:
    """Whether a decoded value holds no NaN or infinity (which JSON cannot carry)."""
    if type(value) is float:
        return math.isfinite(value)
    if isinstance(value, list | tuple):
        return all(finite(v) for v in value)
    if type(value) is dict:
        return all(finite(v) for v in value.values())
    return True


def check_line(line: bytes) -> None:
    try:
        body = record_body(line)
    except JournalError:
        return
    if body is None:
        assert decode_record(line) is None
        return
    rec = decode_body(body)
    in_seq = in_seq_of_body(body)
    assert repr(decode_record(line)) == repr(rec)
    if rec is None:
        return
    assert in_seq == rec[0], (in_seq, rec)
    if not finite(rec[2]):
        return  # a non-finite float (1e999): never written by the engine, not JSON (README)
    again = encode_record(*rec)
    assert repr(decode_record(again)) == repr(rec), (line, again)
    if line.startswith(b"[", 9) and line[9:-1] == again[9:-1]:
        assert again == line


def check_file(data: bytes) -> None:
    path = _DIR / "journal.jsonl"
    path.write_bytes(data)
    try:
        result = scan(path)
    except JournalError:
        return
    assert result.total_bytes == len(data)
    assert 0 <= result.good_bytes <= len(data)
    good = data[: result.good_bytes]
    assert good.count(b"\n") == result.records and good[-1:] in (b"", b"\n")
    try:
        records = list(replay(path))
    except JournalError:
        return  # a good checksum over a record that decodes only partly: never cut
    # replay stops at the first record that does not decode; its prefix is scan's
    assert len(records) <= result.records
    if records:
        assert records[-1][0] <= result.last_in_seq
        assert [r[0] for r in records] == list(range(records[0][0], records[0][0] + len(records)))
        # replay after a snapshot's inSeq: the same records past it (when all decode)
        for after in (records[0][0], records[len(records) // 2][0]):
            if after <= 0:
                continue  # after=0 means every record (a valid journal starts at inSeq 1)
            try:
                tail = list(replay(path, after=after))
            except JournalError:
                continue
            if len(records) == result.records:
                assert repr(tail) == repr([r for r in records if r[0] > after])
    # an engine restored from the file: only JournalError, never another exception
    with contextlib.suppress(JournalError):
        restore(lambda journal=None: Engine(clock=lambda: 0, journal=journal), path)
    try:
        with Journal(JournalConfig(path=path, fsync="never")) as journal:
            assert journal.cut_bytes == len(data) - result.good_bytes
            assert journal.last_in_seq == result.last_in_seq
            journal.append(result.last_in_seq + 1, 5, CancelOrder("a", "b"))
    except JournalError:
        return
    after = scan(path)
    assert after.records == result.records + 1
    assert after.last_in_seq == result.last_in_seq + 1
    assert after.good_bytes == after.total_bytes


def test_one_input(data: bytes) -> None:
    mode = data[:1]
    data = data[1:]
    if mode and mode[0] & 1:
        data = framed(data)
    for line in data.split(b"\n"):
        check_line(line + b"\n")
    check_line(data)
    check_file(data)


if __name__ == "__main__":
    fuzz_checks.fuzz_main(test_one_input, atheris)
