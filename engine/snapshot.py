"""State snapshots that bound restart time: the engine at input ``in_seq``, plus its state hash.

A snapshot file is::

    <crc32 hex8> {"version":3,"inSeq":N,"outSeq":M,"stateHash":"..","bytes":K}\\n
    <K bytes: the pickled engine>

written to a temporary file, synced and renamed into place, so a crash leaves either the old
snapshot or the new one. The engine is pickled whole; its clock and its journal are not (they
are references to the running process), and are replaced on load by those of a fresh engine from
the factory. Loading checks the checksum and that the loaded engine's ``state_hash()`` equals the
recorded one, so a snapshot that does not reproduce the state is refused, never used.

:func:`restore_with_snapshot` loads the snapshot and replays only the journal records after its
``inSeq``; if the snapshot is missing, damaged or ahead of the journal (the journal is the source
of truth), it falls back to a full :func:`engine.journal.restore`.

Format versions: 2 adds order retention (the order manager's id offset ``_base``, its older
resting orders ``_old_open`` and the engine's next compaction point, all part of the state
hash); 3 adds the engine's per-symbol share totals (``_deposit``) and pickles the engine as
a slotted object. An older snapshot is refused with a :class:`SnapshotError` naming its
version, and :func:`restore_with_snapshot` then replays the whole journal, which rebuilds the
same state.

Snapshots are pickles: only load files this process (or a trusted one) wrote.
"""

from __future__ import annotations

import io
import os
import pickle
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

import orjson

from engine.book import Level
from engine.journal import Journal, JournalError, replay, restore
from engine.orders import Order

VERSION = 3
_OLDER = {
    1: "order retention (format 2)",
    2: "the engine's share totals and its slotted layout (format 3)",
}


class SnapshotError(Exception):
    """A snapshot file that is missing, damaged, or does not reproduce its state."""


class _Snapshottable(Protocol):
    @property
    def in_seq(self) -> int: ...

    @property
    def out_seq(self) -> int: ...

    @property
    def sequencer(self) -> Any: ...

    def state_hash(self) -> str: ...

    def submit_sequenced(self, in_seq: int, ts: int, cmd: Any, /) -> Any: ...


EngineT = TypeVar("EngineT", bound=_Snapshottable)


@dataclass(frozen=True, slots=True)
class SnapshotInfo:
    in_seq: int
    out_seq: int
    state_hash: str
    size_bytes: int


_LINKS = frozenset({"prev", "next", "level"})
_ENDS = frozenset({"head", "tail"})


def _slot_state(obj: object, skip: frozenset[str]) -> dict[str, Any]:
    return {n: getattr(obj, n) for n in type(obj).__slots__ if n not in skip}  # type: ignore[attr-defined]


def _new_order(cls: type[Order], state: dict[str, Any]) -> Order:
    order = cls.__new__(cls)
    for name, value in state.items():
        setattr(order, name, value)
    order.prev = order.next = order.level = None
    return order


def _new_level(cls: type[Level], state: dict[str, Any], orders: list[Order]) -> Level:
    """A level with its FIFO relinked (the links are not pickled: a long level would
    otherwise recurse once per order)."""
    level = cls.__new__(cls)
    for name, value in state.items():
        setattr(level, name, value)
    prev: Order | None = None
    level.head = None
    for order in orders:
        order.level = level
        order.prev = prev
        if prev is None:
            level.head = order
        else:
            prev.next = order
        prev = order
    level.tail = prev
    return level


class _Pickler(pickle.Pickler):
    def __init__(self, file: io.BytesIO, clock: object) -> None:
        super().__init__(file, protocol=pickle.HIGHEST_PROTOCOL)
        self._clock = clock

    def reducer_override(self, obj: object) -> Any:
        kind = type(obj)
        if kind is Order:
            return _new_order, (kind, _slot_state(obj, _LINKS))
        if kind is Level:
            assert isinstance(obj, Level)
            return _new_level, (kind, _slot_state(obj, _ENDS), list(obj.orders()))
        return NotImplemented

    def persistent_id(self, obj: object) -> str | None:
        if obj is self._clock:
            return "clock"
        if isinstance(obj, Journal):
            return "journal"
        return None


class _Unpickler(pickle.Unpickler):
    def __init__(self, file: io.BytesIO, clock: object, journal: object) -> None:
        super().__init__(file)
        self._refs = {"clock": clock, "journal": journal}

    def persistent_load(self, pid: Any) -> object:
        if pid not in self._refs:
            raise pickle.UnpicklingError(f"unknown reference {pid!r}")
        return self._refs[pid]


def write_snapshot(engine: _Snapshottable, path: str | os.PathLike[str]) -> SnapshotInfo:
    """Write the engine's state atomically (temporary file, sync, rename)."""
    buf = io.BytesIO()
    _Pickler(buf, engine.sequencer.clock).dump(engine)
    data = buf.getvalue()
    info = SnapshotInfo(engine.in_seq, engine.out_seq, engine.state_hash(), len(data))
    header = orjson.dumps(
        {
            "version": VERSION,
            "inSeq": info.in_seq,
            "outSeq": info.out_seq,
            "stateHash": info.state_hash,
            "bytes": len(data),
            "crc": zlib.crc32(data),
        }
    )
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(b"%08x " % zlib.crc32(header) + header + b"\n")
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, target)
    dir_fd = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return info


def read_snapshot_info(path: str | os.PathLike[str]) -> SnapshotInfo:
    """The header of a snapshot file (checked), without loading the engine."""
    info, _ = _read(path)
    return info


def _read(path: str | os.PathLike[str]) -> tuple[SnapshotInfo, bytes]:
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise SnapshotError(f"cannot read snapshot: {exc}") from exc
    line, sep, data = raw.partition(b"\n")
    if not sep or len(line) < 10 or line[8:9] != b" ":
        raise SnapshotError("snapshot header is damaged")
    header = line[9:]
    try:
        if zlib.crc32(header) != int(line[:8], 16):
            raise SnapshotError("snapshot header checksum mismatch")
        meta = orjson.loads(header)
    except (ValueError, orjson.JSONDecodeError) as exc:
        raise SnapshotError(f"snapshot header is damaged: {exc}") from exc
    version = meta.get("version")
    if version in _OLDER:
        raise SnapshotError(
            f"snapshot format {version} predates {_OLDER[version]}; restore from the journal"
        )
    if version != VERSION:
        raise SnapshotError(f"unknown snapshot version {version!r}")
    if len(data) != meta["bytes"] or zlib.crc32(data) != meta["crc"]:
        raise SnapshotError("snapshot body is truncated or damaged")
    return SnapshotInfo(meta["inSeq"], meta["outSeq"], meta["stateHash"], len(data)), data


def load_snapshot(
    engine_factory: Callable[..., EngineT],
    path: str | os.PathLike[str],
    *,
    journal: Journal | None = None,
) -> EngineT:
    """The engine a snapshot holds, with the clock of ``engine_factory(journal=journal)`` and
    ``journal`` as its journal sink. Raises :class:`SnapshotError` if the file is damaged or the
    loaded state's hash differs from the recorded one."""
    info, data = _read(path)
    fresh = engine_factory(journal=journal)
    try:
        engine: EngineT = _Unpickler(io.BytesIO(data), fresh.sequencer.clock, journal).load()
    except Exception as exc:  # any unpickling failure means an unusable snapshot
        raise SnapshotError(f"snapshot does not load: {exc}") from exc
    if engine.state_hash() != info.state_hash or engine.in_seq != info.in_seq:
        raise SnapshotError("snapshot does not reproduce its recorded state hash")
    return engine


def restore_with_snapshot(
    engine_factory: Callable[..., EngineT],
    journal: Journal,
    snapshot_path: str | os.PathLike[str],
) -> tuple[EngineT, bool]:
    """Restore from the snapshot plus the journal records after it; ``(engine, used)`` where
    ``used`` says whether the snapshot was used (else a full journal replay was done)."""
    try:
        info = read_snapshot_info(snapshot_path)
        if info.in_seq > journal.last_in_seq:
            raise SnapshotError("snapshot is ahead of the journal")
        journal.flush()
        engine = load_snapshot(engine_factory, snapshot_path, journal=journal)
    except SnapshotError:
        return restore(engine_factory, journal), False
    submit = engine.submit_sequenced
    for in_seq, ts, cmd in replay(journal.path, after=info.in_seq):
        submit(in_seq, ts, cmd)
    if engine.in_seq != journal.last_in_seq:
        raise JournalError(f"restored to inSeq {engine.in_seq}, journal at {journal.last_in_seq}")
    return engine, True
