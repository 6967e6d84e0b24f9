"""The journal of ``quotegate run``: durable commands, restore on start, a stable epoch.

:class:`RunJournal` owns an :class:`engine.journal.Journal` for the embedded runtime
(:mod:`gateway.roots.embedded`):

- **Opening** (at construction) scans the file and cuts a torn tail, logging how many bytes
  went. ``restored_records`` is the number of good records found: the commands of earlier runs.
- **Restore**: :meth:`replay` runs every record through ``Engine.submit_sequenced`` (nothing is
  journaled twice) and hands each record's command and events to the runtime, which rebuilds
  the publisher from them. It also notes which ``(account, asset)`` pairs were funded, so that
  opening deposits are not made (and credited) a second time.
- **Epoch**: the publisher's epoch lives next to the journal (``PATH.epoch``). An epoch names one
  history, so it is kept across a restart only when the restart can prove that everything
  published under it is in the journal: after a clean shutdown (``close()`` writes the mark
  ``clean <inSeq>`` into the epoch file once the journal is synced and closed; the next start
  consumes it before publishing anything), or always under ``fsync="every"`` (every command is
  on the disk before its events are published). After a crash (``kill -9``, power loss) under
  ``interval`` or ``never`` the last published updates may be missing from the journal, so the
  restart starts a new epoch and resuming clients get snapshots instead of a different history
  under the same numbers. A journal without records, or a lost epoch file, also starts a new
  one. :attr:`RunJournal.epoch_reason` says why.
- **Client order ids** of a feed's orders get a per-start prefix (:attr:`coid_prefix`), so a
  restarted feed cannot collide with the orders its previous run left open.
- **Sync**: under ``fsync="interval"`` a task calls ``Journal.sync_due()`` every interval, so the
  last commands of a burst reach the disk without waiting for the next command. ``close()``
  (idempotent) stops it, then writes, syncs and closes the journal.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from engine.commands import Command, Deposit
from engine.core import JournalSink
from engine.events import Event, Rejected
from engine.journal import FSYNC_POLICIES, FsyncPolicy, Journal, JournalConfig, replay
from gateway.marketdata.sequencing import new_epoch
from runtime.tasks import cancel_and_wait

log = logging.getLogger("quotegate.journal")

_EPOCH_RE = re.compile(r"[0-9a-z]{1,32}")
_STREAM_RE = re.compile(r"j[0-9a-z]{15}")
CLEAN_MARK = "clean"
"""Second line of the epoch file after a clean shutdown: ``clean <last inSeq>``."""

SubmitSequenced = Callable[[int, int, Command], list[Event]]
Replayed = Callable[[int, Command, list[Event]], None]


@dataclass(frozen=True, kw_only=True)
class RunJournalConfig:
    """``path``: the journal file (its directory is created); ``fsync``: ``every``,
    ``interval`` or ``never`` (see ``docs/journal.md``); ``fsync_interval_ms``: the group-commit
    interval of ``interval``, also the period of the sync task."""

    path: str
    fsync: FsyncPolicy = "interval"
    fsync_interval_ms: float = 5.0

    def __post_init__(self) -> None:
        if not self.path:
            raise ValueError("the journal needs a path")
        if self.fsync not in FSYNC_POLICIES:
            raise ValueError(
                f"fsync must be one of {', '.join(FSYNC_POLICIES)}, not {self.fsync!r}"
            )
        if self.fsync_interval_ms <= 0:
            raise ValueError("fsync_interval_ms must be positive")


class RunJournal:
    """The runtime's journal (see the module docstring). Opening cuts a torn tail."""

    def __init__(self, config: RunJournalConfig) -> None:
        self.config = config
        self.journal = Journal(
            JournalConfig(
                path=config.path, fsync=config.fsync, fsync_interval_ms=config.fsync_interval_ms
            )
        )
        self.cut_bytes = self.journal.cut_bytes
        if self.cut_bytes:
            log.warning(
                "journal %s: cut a torn tail of %d bytes after inSeq %d",
                config.path,
                self.cut_bytes,
                self.journal.last_in_seq,
            )
        self.restored_records = self.journal.last_in_seq
        self.epoch_path = Path(f"{config.path}.epoch")
        self.funded: set[tuple[str, str]] = set()
        self.current_epoch: str | None = None
        self.epoch_reason = ""
        """Why :meth:`epoch` kept or replaced the saved epoch (for the log and the banner)."""
        self._task: asyncio.Task[None] | None = None

    @property
    def coid_prefix(self) -> str:
        """Prefix for a feed's client order ids in this run: empty for a new journal, else
        unique per start (the inSeq the run starts after grows with every run that ordered)."""
        return f"r{self.restored_records}." if self.restored_records else ""

    def epoch(self, *, reuse: bool = True, synced_before_publish: bool = False) -> str:
        """The publisher's epoch: the saved one when the journal holds records, ``reuse`` is
        allowed and the previous run provably published nothing the journal lacks (a clean
        shutdown mark at the journal's last ``inSeq``, ``fsync="every"``, or a runtime that
        publishes only what the journal has synced: ``synced_before_publish``, the engine
        process of distributed mode under ``every``/``interval``); else a new one.
        Either way the file is rewritten without the mark (synced) before this returns, so a
        crash of this run cannot pass for a clean shutdown."""
        saved, clean_at = self._read_epoch_file()
        last = self.journal.last_in_seq
        if not self.restored_records:
            why = "a journal without records"
        elif not reuse:
            why = "conflated channels (seqs a replay does not reproduce)"
        elif saved is None:
            why = f"no saved epoch in {self.epoch_path}"
        elif self.config.fsync == "every" or (
            synced_before_publish and self.config.fsync != "never"
        ):
            why = ""
        elif clean_at is None:
            why = f"no clean shutdown recorded (fsync={self.config.fsync}): the last published "
            why += "updates may be missing from the journal"
        elif clean_at != last:
            why = f"the clean shutdown mark is at inSeq {clean_at}, the journal at {last}"
        else:
            why = ""
        if why or saved is None:
            epoch = new_epoch()
            self.epoch_reason = f"new epoch {epoch}: {why}"
            if self.restored_records:
                log.warning("journal %s: %s", self.config.path, self.epoch_reason)
        else:
            epoch = saved
            self.epoch_reason = f"epoch {epoch} kept: " + (
                f"clean shutdown at inSeq {last}"
                if clean_at == last
                else "fsync=every"
                if self.config.fsync == "every"
                else "published only what the journal had synced"
            )
        self._write_epoch_file(epoch, clean_at=None)
        self.current_epoch = epoch
        return epoch

    def _read_epoch_file(self) -> tuple[str | None, int | None]:
        """``(epoch, clean-shutdown inSeq)`` from the epoch file, ``None`` for what is not
        there or not well formed."""
        try:
            lines = self.epoch_path.read_text("ascii").split("\n")
        except (OSError, UnicodeDecodeError):
            return None, None
        epoch = lines[0].strip()
        if not _EPOCH_RE.fullmatch(epoch):
            return None, None
        clean_at: int | None = None
        if len(lines) > 1:
            word, _, number = lines[1].strip().partition(" ")
            if word == CLEAN_MARK and number.isascii() and number.isdigit():
                clean_at = int(number)
        return epoch, clean_at

    def _write_epoch_file(self, epoch: str, *, clean_at: int | None) -> None:
        """Write the epoch file atomically and durably (temporary file, fsync, rename, fsync of
        the directory)."""
        text = epoch + "\n" + (f"{CLEAN_MARK} {clean_at}\n" if clean_at is not None else "")
        tmp = self.epoch_path.with_name(self.epoch_path.name + ".tmp")
        with open(tmp, "w", encoding="ascii") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.epoch_path)
        _sync_directory(self.epoch_path.parent)

    def stream_name(self) -> str:
        """The name the reporting database knows this journal's history by (``PATH.stream``):
        kept while the journal holds records, a new one for a new journal."""
        path = Path(f"{self.config.path}.stream")
        if self.restored_records:
            with contextlib.suppress(OSError, UnicodeDecodeError):
                saved = path.read_text("ascii").strip()
                if _STREAM_RE.fullmatch(saved):
                    return saved
        name = "j" + new_epoch(15)
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "w", encoding="ascii") as f:
            f.write(name + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        return name

    def replay(self, submit_sequenced: SubmitSequenced, replayed: Replayed) -> int:
        """Run the journal's records through ``submit_sequenced`` and hand each command and its
        events to ``replayed(ts, cmd, events)``; returns how many records ran."""
        self.journal.flush()
        n = 0
        funded = self.funded
        for in_seq, ts, cmd in replay(self.journal.path):
            events = submit_sequenced(in_seq, ts, cmd)
            if type(cmd) is Deposit and not (events and type(events[0]) is Rejected):
                funded.add((cmd.account, cmd.asset))
            replayed(ts, cmd, events)
            n += 1
        return n

    async def start(self) -> None:
        """Start the periodic sync (``interval`` policy). Idempotent."""
        if self._task is None and self.config.fsync == "interval" and not self.journal.closed:
            self._task = asyncio.create_task(self._sync_loop(), name="journal-sync")

    async def close(self) -> None:
        """Stop the sync task, then write, sync and close the journal and, when that worked,
        mark the shutdown clean in the epoch file (the next start may keep the epoch).
        Idempotent."""
        task, self._task = self._task, None
        await cancel_and_wait(task)
        was_open = not self.journal.closed
        self.journal.close()
        if was_open and self.current_epoch is not None:
            self._write_epoch_file(self.current_epoch, clean_at=self.journal.last_in_seq)

    async def _sync_loop(self) -> None:
        interval_s = max(0.001, self.config.fsync_interval_ms / 1000)
        journal = self.journal
        while True:
            await asyncio.sleep(interval_s)
            try:
                journal.sync_due()
            except Exception:  # surfaces again on the next append, where the engine sees it
                log.exception("journal %s: sync failed", self.config.path)
                return


def _sync_directory(path: Path) -> None:
    """fsync a directory, so a rename inside it survives a power loss (where supported)."""
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


JournalTee = Callable[[int, int, Command], None]


class TeeSink:
    """A journal sink that also hands each record to ``tee`` (after the journal took it)."""

    __slots__ = ("_append", "_tee")

    def __init__(self, sink: JournalSink, tee: JournalTee) -> None:
        self._append = sink.append
        self._tee = tee

    def append(self, in_seq: int, ts: int, cmd: Command) -> None:
        self._append(in_seq, ts, cmd)
        self._tee(in_seq, ts, cmd)
