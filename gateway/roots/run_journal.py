"""The journal of ``quotegate run``: durable commands, restore on start, a stable epoch.

:class:`RunJournal` owns an :class:`engine.journal.Journal` for the embedded runtime
(:mod:`gateway.roots.embedded`):

- **Opening** (at construction) scans the file and cuts a torn tail, logging how many bytes
  went. ``restored_records`` is the number of good records found: the commands of earlier runs.
- **Restore**: :meth:`replay` runs every record through ``Engine.submit_sequenced`` (nothing is
  journaled twice) and hands each record's command and events to the runtime, which rebuilds
  the publisher from them. It also notes which ``(account, asset)`` pairs were funded, so that
  opening deposits are not made (and credited) a second time.
- **Epoch**: the publisher's epoch lives next to the journal (``PATH.epoch``). It is kept across
  restarts while the journal holds the history it numbers, so resuming clients keep their place;
  a journal without records, or a lost epoch file, starts a new one.
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
        self._task: asyncio.Task[None] | None = None

    @property
    def coid_prefix(self) -> str:
        """Prefix for a feed's client order ids in this run: empty for a new journal, else
        unique per start (the inSeq the run starts after grows with every run that ordered)."""
        return f"r{self.restored_records}." if self.restored_records else ""

    def epoch(self, *, reuse: bool = True) -> str:
        """The publisher's epoch: the saved one if the journal holds records (and ``reuse``),
        else a new one, saved for the next start."""
        if reuse and self.restored_records:
            with contextlib.suppress(OSError, UnicodeDecodeError):
                saved = self.epoch_path.read_text("ascii").strip()
                if _EPOCH_RE.fullmatch(saved):
                    return saved
        epoch = new_epoch()
        tmp = self.epoch_path.with_name(self.epoch_path.name + ".tmp")
        with open(tmp, "w", encoding="ascii") as f:
            f.write(epoch + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.epoch_path)
        return epoch

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
        """Stop the sync task, then write, sync and close the journal. Idempotent."""
        task, self._task = self._task, None
        await cancel_and_wait(task)
        self.journal.close()

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
