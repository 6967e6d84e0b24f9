"""The reporter: engine output into the reporting database, off the engine's path.

A :class:`Reporter` owns one task that takes offers from its :class:`ReportSource` (in
``quotegate run`` the bounded :class:`~gateway.reporting.records.QueueSource` the runtime
appends to), turns them into rows (:class:`~gateway.reporting.translate.Translator`) and
writes each batch in one transaction together with the stream's progress mark
(``last_in_seq``/``last_seq``). A batch is all or nothing, and the translator skips what is at
or before the mark, so replaying events (a restart that replays the journal, a retried batch)
writes every row once.

The engine never waits for it: the source's ``offer`` only appends. A failed write is retried
(every ``retry_interval_ms``) with the same batch; meanwhile the queue fills and, past its
capacity, overflows (see :mod:`gateway.reporting.records`). :meth:`lag_events` (the engine's
last ``seq`` minus the last one written) is exported as the ``quotegate_reporter_lag_events``
gauge.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from gateway.reporting import schema
from gateway.reporting.database import Database, Statement, open_database
from gateway.reporting.records import Offer, QueueSource, ReportSource
from gateway.reporting.translate import Grid, Rows, Translator
from runtime.tasks import cancel_and_wait

log = logging.getLogger("quotegate.reporter")

TRANSLATE_STEP_RECORDS = 256
"""Records translated between two yields to the event loop."""


@dataclass(frozen=True, kw_only=True)
class ReporterConfig:
    """``database_url``: ``sqlite:PATH`` or ``postgresql://...``; ``stream``: the name of the
    engine history being reported (one per journal, or per run without one);
    ``batch_max_records``: records per transaction at most; ``flush_interval_ms``: how long the
    task waits for more after a batch smaller than that; ``queue_capacity_records``: the
    in-process queue's bound; ``retry_interval_ms``: the pause before a failed batch is tried
    again; ``close_timeout_s``: how long ``close`` keeps writing what is queued."""

    database_url: str
    stream: str
    batch_max_records: int = 5000
    flush_interval_ms: int = 50
    queue_capacity_records: int = 1_000_000
    retry_interval_ms: int = 1000
    close_timeout_s: float = 10.0

    def __post_init__(self) -> None:
        if not self.stream:
            raise ValueError("the reporter needs a stream name")
        if self.batch_max_records < 1:
            raise ValueError("batch_max_records must be at least 1")
        if self.flush_interval_ms < 0 or self.retry_interval_ms < 1:
            raise ValueError("flush_interval_ms must be >= 0 and retry_interval_ms >= 1")
        if self.queue_capacity_records < 1:
            raise ValueError("queue_capacity_records must be at least 1")


def statements(rows: Rows, stream: int) -> list[Statement]:
    """The batch's statements, progress mark last (all in one transaction)."""
    progress = [(stream, rows.last_in_seq, rows.last_seq)] if rows.last_in_seq else []
    return [
        (schema.INSERT_INSTRUMENT, rows.instruments),
        (schema.INSERT_ORDER, rows.orders),
        (schema.UPDATE_ORDER, rows.order_updates),
        (schema.INSERT_ORDER_EVENT, rows.order_events),
        (schema.INSERT_EXECUTION, rows.executions),
        (schema.INSERT_BALANCE_CHANGE, rows.balance_changes),
        (schema.UPSERT_CANDLE, rows.candles),
        (schema.SET_PROGRESS, progress),
    ]


async def stream_id(db: Database, name: str, *, create: bool = True) -> int | None:
    """The id of stream ``name`` (created with the next free id if ``create``)."""
    found = await db.fetch("SELECT id FROM streams WHERE name = $1", name)
    if found or not create:
        return int(found[0][0]) if found else None
    await db.transaction(
        [
            (
                "INSERT INTO streams (id, name, created_ts)"
                " SELECT COALESCE(MAX(id), 0) + 1, $1, $2 FROM streams WHERE 1 = 1"
                " ON CONFLICT (name) DO NOTHING",
                [(name, time.time_ns() // 1000)],
            )
        ]
    )
    found = await db.fetch("SELECT id FROM streams WHERE name = $1", name)
    return int(found[0][0])


class Reporter:
    """Writes one stream's engine output to the database (see the module docstring).

    ``source`` defaults to a :class:`QueueSource` of the configured capacity (``queue``);
    ``head`` returns the engine's last ``seq`` (for the lag)."""

    def __init__(
        self,
        config: ReporterConfig,
        *,
        source: ReportSource | None = None,
        database: Database | None = None,
        head: Callable[[], int] = lambda: 0,
    ) -> None:
        self.config = config
        self.queue: QueueSource | None = None
        if source is None:
            source = self.queue = QueueSource(config.queue_capacity_records)
        self.source = source
        self.db = database if database is not None else open_database(config.database_url)
        self._head = head
        self.stream = 0
        self.translator: Translator | None = None
        self.rows_written = 0
        self.batches = 0
        self.write_errors = 0
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._idle = asyncio.Event()
        self._idle.set()
        self._started = False

    # -- state ----------------------------------------------------------------------------

    @property
    def last_in_seq(self) -> int:
        return self.translator.last_in_seq if self.translator is not None else 0

    @property
    def last_seq(self) -> int:
        return self.translator.last_seq if self.translator is not None else 0

    def lag_events(self) -> int:
        """Engine events not written yet (the engine's last ``seq`` minus the reporter's)."""
        return max(0, self._head() - self.last_seq)

    def pending_records(self) -> int:
        return self.source.pending

    def dropped_records(self) -> int:
        return self.source.dropped

    # -- lifecycle ------------------------------------------------------------------------

    async def open(self) -> None:
        """Open the database (migrations), find or create the stream, load its progress mark
        and instruments. Idempotent; ``start`` calls it."""
        if self.translator is not None:
            return
        await self.db.open()
        sid = await stream_id(self.db, self.config.stream)
        assert sid is not None
        self.stream = sid
        mark = await self.db.fetch("SELECT last_in_seq, last_seq FROM streams WHERE id = $1", sid)
        grids = await self.db.fetch(
            "SELECT symbol, currency, price_decimals, tick_units, cash_per_tick"
            " FROM instruments WHERE stream = $1",
            sid,
        )
        self.translator = Translator(
            sid,
            last_in_seq=int(mark[0][0]),
            last_seq=int(mark[0][1]),
            grids={g[0]: Grid(g[1], int(g[2]), int(g[3]), int(g[4])) for g in grids},
        )

    async def start(self) -> None:
        """Open, then start the writer task. Idempotent."""
        await self.open()
        if not self._started:
            self._started = True
            self._task = asyncio.create_task(self._loop(), name="reporter")

    async def write(self, offers: Sequence[Offer]) -> int:
        """Translate and write ``offers`` now, in batches of ``batch_max_records``; the rows
        written. (The task's path; also the restore's, before the task has work.)"""
        written = 0
        batch: list[Offer] = []
        size = 0
        for offer in offers:
            batch.append(offer)
            size += len(offer)
            if size >= self.config.batch_max_records:
                written += await self._write_batch(batch)
                batch, size = [], 0
        if batch:
            written += await self._write_batch(batch)
        return written

    async def _write_batch(self, offers: Sequence[Offer]) -> int:
        async with self._lock:  # one batch at a time: the task's and write()'s
            return await self._write_locked(offers)

    async def _write_locked(self, offers: Sequence[Offer]) -> int:
        translator = self.translator
        if translator is None:
            raise RuntimeError("the reporter is not open")
        before = (translator.last_in_seq, translator.last_seq, dict(translator.grids))
        # translated a few hundred records at a time, yielding in between: a batch of
        # thousands never holds the event loop (the engine's thread) for long
        batch = translator.begin()
        step = 0
        for offer in offers:
            translator.add(batch, (offer,))
            step += len(offer)
            if step >= TRANSLATE_STEP_RECORDS:
                step = 0
                await asyncio.sleep(0)
        rows = translator.finish(batch)
        if not rows.count():
            return 0
        try:
            await self.db.transaction(statements(rows, self.stream))
        except BaseException:
            # not written: the translator's mark goes back, so a retry redoes the batch
            translator.last_in_seq, translator.last_seq, translator.grids = before
            raise
        self.rows_written += rows.count()
        self.batches += 1
        return rows.count()

    async def _loop(self) -> None:
        cfg = self.config
        flush_s = cfg.flush_interval_ms / 1000
        retry_s = cfg.retry_interval_ms / 1000
        overflow_logged = False
        while True:
            offers = await self.source.take(cfg.batch_max_records)
            if not offers:
                return  # the source is closed and empty
            self._idle.clear()
            while True:
                try:
                    await self._write_batch(offers)
                    break
                except asyncio.CancelledError:
                    raise
                except Exception:
                    self.write_errors += 1
                    log.exception("reporter: a batch failed, retrying in %.1f s", retry_s)
                    await asyncio.sleep(retry_s)
            if self.source.overflowed and not overflow_logged:
                overflow_logged = True
                log.error(
                    "reporter: the queue overflowed after inSeq %d; later events are not "
                    "reported in this run (a restart with the journal writes them)",
                    self.last_in_seq,
                )
            if self.source.pending == 0:
                self._idle.set()
            if sum(len(o) for o in offers) < cfg.batch_max_records and flush_s:
                await asyncio.sleep(flush_s)

    async def drain(self, timeout_s: float = 30.0) -> bool:
        """Wait until everything offered so far is written (``False`` on timeout)."""
        deadline = time.monotonic() + timeout_s
        while self.source.pending or not self._idle.is_set():
            if self._task is None or self._task.done() or time.monotonic() > deadline:
                return self.source.pending == 0 and self._idle.is_set()
            await asyncio.sleep(0.005)
        return True

    async def close(self) -> None:
        """Write what is queued (up to ``close_timeout_s``), stop the task, close the
        database. Idempotent."""
        task, self._task = self._task, None
        if task is not None:
            self.source.close()
            try:
                await asyncio.wait_for(asyncio.shield(task), self.config.close_timeout_s)
            except (TimeoutError, Exception):
                log.warning("reporter: closed with %d records unwritten", self.source.pending)
            await cancel_and_wait(task)
        else:
            self.source.close()
        with contextlib.suppress(Exception):
            await self.db.close()

    # -- a restored engine -----------------------------------------------------------------

    async def catch_up(self, in_seq: int, seq: int, restored: Sequence[Offer]) -> None:
        """After a journal restore that reached command ``in_seq`` / event ``seq``: remove what
        the database holds past it (:meth:`truncate_after`), then write what the restore
        replayed past the database's mark (``restored``; older offers are skipped)."""
        if self.last_in_seq > in_seq or self.last_seq > seq:
            await self.truncate_after(in_seq, seq)
        if restored:
            started = time.perf_counter()
            rows = await self.write(restored)
            log.info(
                "reporter: wrote %d rows of the restored history in %.2f s",
                rows,
                time.perf_counter() - started,
            )

    async def truncate_after(self, in_seq: int, seq: int) -> None:
        """Forget what the stream holds past command ``in_seq`` / event ``seq`` (a journal
        whose tail was lost after its rows were written): later rows are deleted and the
        orders they changed are rebuilt from their remaining events."""
        if self.translator is None:
            raise RuntimeError("the reporter is not open")
        if self.last_in_seq <= in_seq and self.last_seq <= seq:
            return
        sid = self.stream
        touched = await self.db.fetch(
            "SELECT order_id, account, client_order_id, symbol, side, type, tif, ts"
            " FROM orders WHERE stream = $1 AND last_seq > $2",
            sid,
            seq,
        )
        rebuilt: list[tuple[Any, ...]] = []
        for row in touched:
            events = await self.db.fetch(
                "SELECT seq, event, price, qty, ts FROM order_events"
                " WHERE stream = $1 AND order_id = $2 AND seq <= $3 ORDER BY seq",
                sid,
                row[0],
                seq,
            )
            state = rebuild_order(events)
            if state is not None:
                rebuilt.append((sid, *row[:7], *state[:4], row[7], *state[4:]))
        await self.db.transaction(
            [(sql, [(sid, seq if mark == "seq" else in_seq)]) for sql, mark in schema.TRUNCATE]
            + [(schema.SET_MARK, [(sid, in_seq, seq)]), (schema.INSERT_ORDER, rebuilt)]
        )
        self.translator.last_in_seq, self.translator.last_seq = in_seq, seq
        log.warning("reporter: rows after inSeq %d (seq %d) removed", in_seq, seq)


def rebuild_order(
    events: Sequence[tuple[Any, ...]],
) -> tuple[str | None, int, int, int, int, int] | None:
    """An order's ``(price, qty, open_qty, filled, updated_ts, last_seq)`` from its events
    ``(seq, event, price, qty, ts)`` in order; ``None`` without its ``accepted``."""
    if not events or events[0][1] != "accepted":
        return None
    _, _, price, qty, ts = events[0]
    open_qty, filled, last_seq = int(qty), 0, int(events[0][0])
    qty = int(qty)
    for seq, event, e_price, e_qty, e_ts in events[1:]:
        if event == "trade":
            filled += int(e_qty)
            open_qty -= int(e_qty)
        elif event == "replaced":
            open_qty = int(e_qty)
            qty = filled + open_qty
            price = e_price
        elif event == "cancelled":
            open_qty = 0
        last_seq, ts = int(seq), int(e_ts)
    return price, qty, open_qty, filled, ts, last_seq
