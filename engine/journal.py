"""The journal: an append-only file of sequenced input commands, the engine's source of truth.

One record per input command, in input-sequence order::

    <crc32 of the JSON, 8 lowercase hex digits> <JSON>\\n
    JSON (format 2) = [inSeq, ts, opCode, <the command's fields in their NamedTuple order>]
    e.g. [17,1700000000000000,2,"acct1","o9","ACME","buy","limit","10.01",5,"GTC",null]

The first byte of the JSON is the record's format marker: ``[`` is format 2, the positional
record written now (one ``orjson.dumps`` of a plain tuple, no dict); ``{`` is format 1, the
record of earlier versions (``{"inSeq": .., "ts": .., "cmd": {<command_to_json>}}``), still
read, so an old journal replays and can be appended to (a file may hold both). A record with a
good checksum and any other first byte is of a format this version does not know: opening,
scanning or replaying it raises :class:`JournalError` (it is never cut as a torn tail).
Op codes: 0 instrument, 1 deposit, 2 new, 3 cancel, 4 replace, 5 malformed
(:data:`OP_CODES`); the op code plus 16 marks a record written by the stdlib encoder (see
:func:`_body`).

``ts`` is the time the sequencer stamped on the command (the event time); the command is kept
exactly as it arrived, including a :class:`~engine.commands.Malformed` one, so that replaying
it yields the same ``rejected`` event. Records are decoded back field for field, without
re-validation: the engine validates them again when they are replayed, exactly as it did live.

Opening a journal scans it, verifies every checksum and the gap-free ``inSeq`` numbering, and
cuts a torn or corrupt tail (everything from the first bad record on) by truncating the file;
:attr:`Journal.cut_bytes` says how much was cut. Writes are buffered in user space and written
and synced by the fsync policy of :class:`JournalConfig`:

- ``"every"``: every record is written and ``fdatasync``-ed before ``append`` returns;
- ``"interval"``: the first ``append`` at least ``fsync_interval_ms`` after the previous
  hand-off (or one that fills ``buffer_max_bytes``) hands the buffer to a background thread
  that writes and syncs it (group commit: the engine never waits for the disk, and a crash
  loses at most the last interval or so); also :meth:`Journal.sync_due` (for a timer when
  input is quiet), :meth:`Journal.flush` (which waits for the sync) and :meth:`Journal.close`;
- ``"never"``: the buffer is written when it exceeds ``buffer_max_bytes`` and on
  ``flush``/``close``; the operating system decides when it reaches the disk.

Pure Python, stdlib only, no asyncio: the engine calls :meth:`Journal.append` synchronously;
the only concurrency is the ``"interval"`` policy's sync thread, private to the journal.
"""

from __future__ import annotations

import os
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol, TypeVar

import orjson

from engine.commands import Command
from engine.journal_format import (  # the record format; re-exported
    OP_CODES,
    JournalError,
    Record,
    _body,
    command_from_record,
    decode_body,
    decode_record,
    encode_record,
    in_seq_of_body,
    record_body,
)

__all__ = [
    "FSYNC_POLICIES",
    "OP_CODES",
    "FsyncPolicy",
    "Journal",
    "JournalConfig",
    "JournalError",
    "ScanResult",
    "command_from_record",
    "decode_record",
    "encode_record",
    "replay",
    "restore",
    "scan",
]

FsyncPolicy = Literal["every", "interval", "never"]
FSYNC_POLICIES: tuple[str, ...] = ("every", "interval", "never")

_NEVER = 1 << 62
_sync = getattr(os, "fdatasync", os.fsync)
_dumps = orjson.dumps
_OP_CODE = OP_CODES
_crc32 = zlib.crc32
_monotonic_ns = time.monotonic_ns


@dataclass(frozen=True, slots=True, kw_only=True)
class JournalConfig:
    """Where the journal lives and how often it reaches the disk."""

    path: str | os.PathLike[str]
    fsync: FsyncPolicy = "interval"
    fsync_interval_ms: float = 5.0
    buffer_max_bytes: int = 1 << 20

    def __post_init__(self) -> None:
        if self.fsync not in FSYNC_POLICIES:
            raise ValueError(f"fsync must be one of {FSYNC_POLICIES}, not {self.fsync!r}")
        interval = self.fsync_interval_ms
        if isinstance(interval, bool) or not isinstance(interval, int | float) or interval < 0:
            raise ValueError(f"fsync_interval_ms must be a number >= 0, not {interval!r}")
        if isinstance(self.buffer_max_bytes, bool) or not isinstance(self.buffer_max_bytes, int):
            raise ValueError("buffer_max_bytes must be an integer")
        if self.buffer_max_bytes < 1:
            raise ValueError(f"buffer_max_bytes must be >= 1, not {self.buffer_max_bytes}")
        if not str(self.path):
            raise ValueError("path must not be empty")


@dataclass(frozen=True, slots=True)
class ScanResult:
    """What a scan of a journal file found."""

    records: int
    last_in_seq: int  # 0 when empty
    good_bytes: int  # the length of the valid prefix
    total_bytes: int

    @property
    def bad_bytes(self) -> int:
        return self.total_bytes - self.good_bytes


def _walk(
    path: str | os.PathLike[str], decode_after: int | None
) -> Iterator[tuple[int, int, Record | None]]:
    """The one reader of a journal file: ``(line length, inSeq, record)`` for each good line, in
    order, stopping at the first bad one (torn, corrupt, or a good checksum over a record that
    does not decode). Each line's framing and checksum are checked once (:func:`record_body`);
    a record of an unknown format, an ``inSeq`` below 1 or a gap in the ``inSeq`` numbering
    raises :class:`JournalError`. ``decode_after`` says which records are decoded: ``None`` none (a
    scan; the ``inSeq`` is read from the body's prefix), ``n > 0`` those with ``inSeq > n``,
    ``n <= 0`` all (and the ``inSeq`` is taken from the decoded record); the others are
    yielded as ``None``."""
    decode_all = decode_after is not None and decode_after <= 0
    expect: int | None = None  # the inSeq the next record must have (any, for the first)
    with open(path, "rb", buffering=1 << 20) as f:
        for line in f:
            body = record_body(line)
            if body is None:
                return
            rec = decode_body(body) if decode_all else None
            in_seq = in_seq_of_body(body) if rec is None else rec[0]
            if in_seq is None:
                return
            if in_seq < 1:  # (never written: the engine numbers its inputs from 1)
                raise JournalError(f"inSeq {in_seq}: a journal's records are numbered from 1")
            if in_seq != expect and expect is not None:
                raise JournalError(f"inSeq {in_seq} follows {expect - 1}: the journal has a gap")
            expect = in_seq + 1
            if rec is None and decode_after is not None:
                if decode_all:
                    return  # its inSeq reads (so a gap is found), the rest does not: the end
                if in_seq > decode_after:
                    rec = decode_body(body)
                    if rec is None:
                        return
            yield len(line), in_seq, rec


def scan(path: str | os.PathLike[str]) -> ScanResult:
    """Verify a journal file without changing it: the framing, checksum and gap-free
    ``inSeq`` of every record up to the first bad one (``replay`` also decodes the commands)."""
    good = records = last = 0
    for length, in_seq, _ in _walk(path, None):
        good += length
        records += 1
        last = in_seq
    return ScanResult(records, last, good, os.path.getsize(path))


def replay(path: str | os.PathLike[str], *, after: int = 0) -> Iterator[Record]:
    """The good records of a journal file as ``(in_seq, ts, cmd)``, in order; stops at a torn or
    corrupt tail (which :class:`Journal` cuts on open). The file is not changed. Records up to
    ``inSeq`` ``after`` are checked but not decoded nor yielded (replay after a snapshot)."""
    for _, _, rec in _walk(path, after):
        if rec is not None:
            yield rec


# --------------------------------------------------------------------------- writer


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


class _Syncer:
    """Group commit for the ``"interval"`` policy: blocks handed off by the engine thread are
    written and synced by one background thread (the GIL is released while it waits for the
    disk), so an ``append`` never waits for a sync. At most ``max_pending_bytes`` may wait;
    beyond that ``hand_off`` blocks (back-pressure from a slow disk)."""

    def __init__(self, fd: int, max_pending_bytes: int) -> None:
        self._fd = fd
        self._max_pending = max_pending_bytes
        self._cond = threading.Condition()
        self._blocks: list[bytes] = []
        self._pending_bytes = 0
        self._busy = False
        self._stopping = False
        self.error: OSError | None = None
        self.syncs = 0
        self._thread = threading.Thread(target=self._run, name="journal-sync", daemon=True)
        self._thread.start()

    def hand_off(self, data: bytes) -> None:
        with self._cond:
            while self._pending_bytes > self._max_pending and self.error is None:
                self._cond.wait()
            self._raise()
            self._blocks.append(data)
            self._pending_bytes += len(data)
            self._cond.notify_all()

    def wait_idle(self) -> None:
        """Until everything handed off is written and synced."""
        with self._cond:
            while (self._blocks or self._busy) and self.error is None:
                self._cond.wait()
            self._raise()

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self._thread.join()
        self._raise()

    def _raise(self) -> None:
        if self.error is not None:
            raise JournalError(f"journal write failed: {self.error}") from self.error

    def _run(self) -> None:
        cond = self._cond
        while True:
            with cond:
                while not self._blocks and not self._stopping:
                    cond.wait()
                if not self._blocks:
                    return
                blocks, self._blocks = self._blocks, []
                self._pending_bytes = 0
                self._busy = True
                cond.notify_all()
            try:
                _write_all(self._fd, b"".join(blocks))
                _sync(self._fd)
            except OSError as exc:
                with cond:
                    self.error = exc
                    self._busy = False
                    cond.notify_all()
                return
            with cond:
                self._busy = False
                self.syncs += 1
                cond.notify_all()


class Journal:
    """An open journal for appending; a ``JournalSink`` for the engine.

    Opening scans the existing file and cuts a torn tail; :attr:`last_in_seq` is the last
    good record's ``inSeq`` (0 for a new journal), and the next ``append`` must continue it.
    Under the ``"interval"`` policy a background thread writes and syncs (group commit).
    """

    def __init__(self, config: JournalConfig) -> None:
        self.config = config
        self.path = Path(config.path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if not self.path.exists():
            self.path.touch()
        result = scan(self.path)
        self._opened_records = result.records
        self._opened_last = result.last_in_seq
        self.cut_bytes = result.bad_bytes
        if self.cut_bytes:
            os.truncate(self.path, result.good_bytes)
        self._fd: int | None = os.open(self.path, os.O_WRONLY | os.O_APPEND)
        if self.cut_bytes:
            _sync(self._fd)
        self._next_in_seq = result.last_in_seq + 1
        self._buf: list[bytes] = []
        self._buf_bytes = 0
        self._policy = config.fsync
        self._interval_ns = int(config.fsync_interval_ms * 1_000_000)
        self._max_bytes = config.buffer_max_bytes
        # the next append at or after this (monotonic ns) acts on the policy: always for
        # "every", at the end of the interval for "interval", never (by time) for "never"
        self._deadline_ns = 0 if config.fsync == "every" else _NEVER
        self._syncs = 0
        self._syncer: _Syncer | None = None
        if config.fsync == "interval":
            self._syncer = _Syncer(self._fd, 64 * config.buffer_max_bytes)
            self._deadline_ns = time.monotonic_ns() + self._interval_ns

    @property
    def closed(self) -> bool:
        return self._fd is None

    @property
    def last_in_seq(self) -> int:
        """The last record's ``inSeq`` (0 for an empty journal)."""
        return self._next_in_seq - 1

    @property
    def records(self) -> int:
        """Records in the journal (the good ones found on open plus those appended)."""
        return self._opened_records + self._next_in_seq - 1 - self._opened_last

    @property
    def syncs(self) -> int:
        """How many times the file was synced."""
        return self._syncs + (self._syncer.syncs if self._syncer is not None else 0)

    def append(self, in_seq: int, ts: int, cmd: Command) -> None:
        """Record one sequenced input; ``in_seq`` must be ``last_in_seq + 1``."""
        if in_seq != self._next_in_seq or self._fd is None:
            if self._fd is None:
                raise JournalError("the journal is closed")
            raise JournalError(f"inSeq {in_seq} does not follow {self._next_in_seq - 1}")
        try:
            body = _dumps((in_seq, ts, _OP_CODE[type(cmd)]) + cmd)  # noqa: RUF005
        except orjson.JSONEncodeError:
            body = _body(in_seq, ts, cmd)
        record = b"%08x %b\n" % (_crc32(body), body)
        self._buf.append(record)
        self._next_in_seq = in_seq + 1
        self._buf_bytes += len(record)
        if self._buf_bytes >= self._max_bytes or _monotonic_ns() >= self._deadline_ns:
            self._due()

    def _due(self) -> None:
        policy = self._policy
        if policy == "interval":
            self._hand_off()
        elif policy == "every":
            self._write(sync=True)
        else:
            self._write(sync=False)

    def sync_due(self) -> bool:
        """Hand the buffer to the sync thread if the interval has elapsed (for a timer while
        input is quiet); returns whether it did. Only for the ``"interval"`` policy."""
        if self._fd is None or self._syncer is None or not self._buf:
            return False
        if _monotonic_ns() < self._deadline_ns:
            return False
        self._hand_off()
        return True

    def flush(self) -> None:
        """Write the buffer and, unless the policy is ``"never"``, wait until it is synced."""
        if self._fd is None:
            return
        if self._syncer is not None:
            self._hand_off()
            self._syncer.wait_idle()
        else:
            self._write(sync=self._policy == "every")

    def flush_begin(self) -> Callable[[], None]:
        """:meth:`flush` in two halves, for a caller that must not block (an event loop): hand
        the buffer on now (written at once under ``"every"``/``"never"``) and return the wait
        for the sync thread to have written and synced it (a no-op without one). The wait may
        run on another thread; nothing else of the journal may."""
        if self._fd is None:
            return _no_wait
        if self._syncer is not None:
            self._hand_off()
            return self._syncer.wait_idle
        self._write(sync=self._policy == "every")
        return _no_wait

    def close(self) -> None:
        """Write, sync and close; idempotent."""
        if self._fd is None:
            return
        try:
            if self._syncer is not None:
                self._hand_off()
                self._syncer.stop()
            self._write(sync=True)
        finally:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _hand_off(self) -> None:
        assert self._syncer is not None
        self._deadline_ns = _monotonic_ns() + self._interval_ns
        if self._buf:
            data = b"".join(self._buf)
            self._buf.clear()
            self._buf_bytes = 0
            self._syncer.hand_off(data)

    def _write(self, *, sync: bool) -> None:
        fd = self._fd
        assert fd is not None
        if self._buf:
            data = b"".join(self._buf)
            self._buf.clear()
            self._buf_bytes = 0
            _write_all(fd, data)
        if sync:
            _sync(fd)
            self._syncs += 1


def _no_wait() -> None:
    return None


# --------------------------------------------------------------------------- restore


class _Sequenced(Protocol):
    @property
    def in_seq(self) -> int: ...

    def submit_sequenced(self, in_seq: int, ts: int, cmd: Command, /) -> Any: ...


EngineT = TypeVar("EngineT", bound=_Sequenced)


def restore(
    engine_factory: Callable[..., EngineT],
    journal: Journal | str | os.PathLike[str],
    *,
    on_events: Callable[[Any], object] | None = None,
) -> EngineT:
    """An engine at the state the journal records.

    ``engine_factory(journal=...)`` builds a fresh engine (for example
    ``functools.partial(Engine, config, clock=clock)``). Every good record is replayed with
    ``submit_sequenced`` (its recorded ``in_seq`` and ``ts``; the journal sink is not called,
    so nothing is journaled twice). If ``journal`` is an open :class:`Journal`, the engine
    journals to it from then on and new inputs continue its ``inSeq`` numbering; if it is a
    path, the file is only read (a torn tail is skipped, not cut) and the engine has no journal.
    ``on_events`` (for example a market-data publisher's ``on_events``) receives the events of
    each replayed record, so that state derived from events is rebuilt as well.
    """
    if isinstance(journal, Journal):
        journal.flush()
        engine = engine_factory(journal=journal)
        path: str | os.PathLike[str] = journal.path
    else:
        engine = engine_factory(journal=None)
        path = journal
    submit = engine.submit_sequenced
    if on_events is None:
        for in_seq, ts, cmd in replay(path):
            submit(in_seq, ts, cmd)
    else:
        for in_seq, ts, cmd in replay(path):
            events = submit(in_seq, ts, cmd)
            if events:
                on_events(events)
    if isinstance(journal, Journal) and engine.in_seq != journal.last_in_seq:
        raise JournalError(f"restored to inSeq {engine.in_seq}, journal at {journal.last_in_seq}")
    return engine
