"""The embedded runtime: everything of ``quotegate run`` except the HTTP server.

One engine, one publisher, one process. Every command, from the feed or from REST order entry,
goes through :meth:`EmbeddedRuntime.submit`, the single sequencing point (the event loop is the
only thread that touches the engine)::

    command -> engine.submit -> publisher.on_events(events) -> sink(envelope):
                                                             store.record + bus.publish

A periodic task calls ``publisher.flush_due(now)`` for conflated channels. The snapshot store
is in memory, or Redis with ``redis_url``; closed candles go to a SQLite archive.

With ``database_url`` a :class:`~gateway.reporting.reporter.Reporter` gets each command's
offer through its bounded queue (never waited on), after a journal restore first what it had
not written; it serves ``services.history`` (``docs/reporting.md``).

With a journal (``journal``, :mod:`gateway.roots.run_journal`) every command is journaled by the
engine; ``start()`` first replays an existing journal (engine and publisher rebuilt, the
replayed envelopes recorded in the store but not published on the bus), then skips the setup
commands the journal already holds (instruments defined, accounts funded), cancels the orders
the synthetic feed's previous run left open and starts the feed at the last prices with fresh
client order ids. After setup the runtime freezes the GC's view of the long-lived state and
raises the generation-0 threshold (``gc_threshold``): collections then stay short.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any

from engine import Engine
from engine.commands import CancelOrder, Command, DefineInstrument, Deposit, NewOrder, ReplaceOrder
from engine.core import JournalSink
from engine.events import Cancelled, Done, Event, Rejected
from engine.journal import JournalError
from engine.sequencer import wall_clock_us
from feeds.replay import ReplayConfig, ReplayFeed, leading_instruments
from feeds.synthetic import SyntheticConfig, SyntheticFeed
from gateway.marketdata.publisher import Publisher, PublisherConfig
from gateway.marketdata.sequencing import new_epoch
from gateway.reporting.history import DatabaseHistory
from gateway.reporting.records import CandleClosed, Offer
from gateway.reporting.reporter import Reporter, ReporterConfig
from gateway.reporting.translate import funded, listed
from gateway.roots.embedded_config import EmbeddedConfig, candle_archive, snapshot_store
from gateway.roots.run_journal import JournalTee, RunJournal, TeeSink
from gateway.seams.bus import MarketDataBus
from gateway.seams.bus_memory import MemoryBus
from gateway.seams.services import CandleArchive, Services
from gateway.seams.store import SnapshotStore
from gateway.trading.accounts import Accounts
from gateway.trading.order_service import EngineOrderService, order_to_json
from gateway.wire.channels import orders_channel, symbol_channels
from gateway.wire.envelope import Envelope
from gateway.wire.errors import UNAVAILABLE, GatewayError
from runtime.tasks import cancel_and_wait

RESTORED_TAIL = 256
_ORDER_COMMANDS = (NewOrder, CancelOrder, ReplaceOrder)
_FEEDBACK_EVENTS = (Done, Cancelled, Rejected)  # what the synthetic feed observes
_UNEVENTFUL = (Deposit, DefineInstrument)  # commands the reporter gets a record of, not events
log = logging.getLogger("quotegate.run")


class EmbeddedRuntime:
    """Owns the engine, publisher, bus, store, candle archive, feed and their tasks."""

    def __init__(
        self,
        config: EmbeddedConfig,
        *,
        clock: Callable[[], int] = wall_clock_us,
        bus: MarketDataBus | None = None,
        archive: CandleArchive | None = None,
        journal_tee: JournalTee | None = None,
        synced_before_publish: bool = False,
    ):
        """``bus`` and ``archive`` replace the memory bus and the SQLite archive (the engine
        process of distributed mode passes its Kafka bus and Redis archive); ``journal_tee``
        is called with every record the engine journals (the failover log), after the
        journal took it; ``synced_before_publish``: nothing leaves this runtime before the
        journal synced it (the engine process), so a crash keeps the epoch
        (:meth:`RunJournal.epoch`)."""
        self._synced_before_publish = synced_before_publish
        self.config = config
        self._bus_given = bus
        self._archive_given = archive
        self._journal_tee = journal_tee
        self._clock = clock
        self._replay_instruments: list[DefineInstrument] = []
        if config.feed == "replay":
            assert config.replay_file is not None
            self._replay_instruments = leading_instruments(config.replay_file)
        symbols = (
            [i.symbol for i in self._replay_instruments]
            if config.feed == "replay"
            else list(config.symbols)
        )
        self.accounts = (
            Accounts.load(config.accounts_file)
            if config.accounts_file
            else Accounts.demo(symbols, api_key=config.demo_api_key)
        )
        # opened last among the checks above: it cuts a torn tail, starts its sync thread
        self.journal = RunJournal(config.journal) if config.journal is not None else None
        try:
            self._build(config, clock)
        except BaseException:
            if self.journal is not None:
                self.journal.journal.close()
            raise

    def _build(self, config: EmbeddedConfig, clock: Callable[[], int]) -> None:
        journal = self.journal
        pub_cfg = config.publisher or PublisherConfig()
        if journal is not None and pub_cfg.epoch is None:
            # conflated seqs depend on timer timing, which a replay does not reproduce: a
            # restart then starts a new history (new epoch); so does a restart after a crash
            # that may have lost published commands (RunJournal.epoch)
            reuse = not any(pub_cfg.conflate_ms.values())
            synced = self._synced_before_publish
            pub_cfg = dataclasses.replace(
                pub_cfg,
                epoch=journal.epoch(reuse=reuse, synced_before_publish=synced),
            )
        self._coid_prefix = journal.coid_prefix if journal is not None else ""
        self._replaying = False
        self._replay_tail: dict[str, deque[Envelope]] = {}
        sink: JournalSink | None = journal.journal if journal is not None else None
        if sink is not None and self._journal_tee is not None:
            sink = TeeSink(sink, self._journal_tee)
        self.engine = Engine(config.engine, clock=clock, journal=sink)
        self.bus: MarketDataBus = self._bus_given or MemoryBus()
        self.archive = self._archive_given or candle_archive(
            config.candles_db, config.candles_retention_ms
        )
        self._report: Callable[[Offer], None] | None = None
        self.reporter: Reporter | None = None
        if config.database_url:
            stream = journal.stream_name() if journal is not None else "r" + new_epoch(15)
            self.reporter = Reporter(
                ReporterConfig(
                    database_url=config.database_url,
                    stream=stream,
                    queue_capacity_records=config.reporter_queue_records,
                    batch_max_records=config.reporter_batch_records,
                    flush_interval_ms=config.reporter_flush_interval_ms,
                ),
                head=lambda: self.engine.out_seq,
            )
        self.publisher = Publisher(
            pub_cfg,
            sink=self._sink,
            clock=clock,
            on_candle_closed=self._candle_closed,
            open_orders=self._open_orders,
            instrument_lookup=self.engine.instruments.get,
        )
        self.store: SnapshotStore = snapshot_store(config, self.publisher.snapshot)
        self.order_service = EngineOrderService(self.engine, self.submit)
        self.feed: SyntheticFeed | ReplayFeed | None = None
        if config.feed == "synthetic":
            synth = SyntheticConfig(
                symbols=config.symbols,
                orders_per_s=config.rate_orders_per_s,
                seed=config.seed,
                tick=config.tick,
                lot=config.lot,
                **config.synthetic,
            )
            self.feed = SyntheticFeed(synth, self._feed_submit)
            clash = sorted(set(self.feed.market.accounts) & set(self.accounts.names))
            if clash:
                raise ValueError(
                    f"account(s) {', '.join(clash)} belong to the synthetic feed; rename them"
                )
        elif config.feed == "replay":
            assert config.replay_file is not None
            self.feed = ReplayFeed(
                ReplayConfig(path=config.replay_file, speed=config.replay_speed),
                self._feed_submit,
            )
        self.services = Services(
            bus=self.bus,
            store=self.store,
            candles=self.archive,
            orders=self.order_service,
            authenticate=self.accounts.authenticate,
            symbols=self.symbols,
            extra={"runtime": self},
        )
        self._flush_task: asyncio.Task[None] | None = None
        self._started = False
        self._closers: list[Callable[[], Awaitable[None]]] = []
        self.commands = 0
        self.sink_errors = 0
        self.restored_commands = 0
        self.journal_error: JournalError | None = None
        self._gc_saved: tuple[int, int, int] | None = None
        self.restored_tail: list[Envelope] = []
        """The newest ``RESTORED_TAIL`` envelopes of each channel rebuilt from the journal
        (recorded in the store, not published): a distributed engine publishes them again, for
        what its previous run may not have sent before it died."""
        self.shadow_pending: list[str] | None = None
        """In shadow mode (when a list): channels whose first snapshot is due at takeover."""

    # -- the sequencing point -------------------------------------------------------------

    def submit(self, cmd: Command) -> list[Event]:
        """Run one command through the engine and publish what it changed. Once the journal
        fails to take a command, every command is refused (``GatewayError`` ``unavailable``):
        the runtime never runs what it could not make durable."""
        if self.journal_error is not None:
            raise GatewayError(UNAVAILABLE, "commands are refused: the journal cannot be written")
        self.commands += 1
        report = self._report
        if report is not None and cmd.ts is None and type(cmd) in _UNEVENTFUL:
            # stamped here, so that the reporter's record and the journal hold the same ts
            cmd = cmd._replace(ts=self._clock())
        try:
            events: list[Event] = self.engine.submit(cmd)
        except JournalError as exc:  # durability lost: refuse everything from now on
            self.journal_error = exc
            log.error("journal failed, refusing commands from now on: %s", exc)
            raise GatewayError(UNAVAILABLE, "the journal cannot be written") from exc
        if type(cmd) is DefineInstrument:
            self._defined(cmd)
        if events:
            self.publisher.on_events(events)
        if report is not None:
            if events:
                report(events)
            elif type(cmd) is Deposit:
                self._report_deposit(cmd, cmd.ts or 0)
        return events

    def _defined(self, cmd: DefineInstrument) -> None:
        inst = self.engine.instruments.get(cmd.symbol)
        if inst is not None and inst.symbol not in self.publisher.instruments:
            self.publisher.add_instrument(inst)
            self._record_snapshots(symbol_channels(inst.symbol))
            if self._report is not None:
                self._report([listed(self.engine.in_seq, cmd.ts or 0, inst)])

    def _report_deposit(self, cmd: Deposit, ts: int) -> None:
        """A credited deposit (no event) as a ``Funded`` record."""
        if self._report is not None:
            is_share = cmd.asset in self.engine.instruments
            self._report([funded(self.engine.in_seq, ts, cmd, is_share)])

    def _candle_closed(self, symbol: str, resolution: str, candle: dict[str, Any]) -> None:
        self.archive.append(symbol, resolution, candle)
        if self._report is not None:
            self._report([CandleClosed(symbol, resolution, candle)])

    def _feed_submit(self, cmd: Command) -> list[Event]:
        """A feed's way in: setup the journal already holds is skipped; after a restart its
        client order ids carry the run's prefix (and lose it again in the events it sees)."""
        if self.restored_commands:
            if isinstance(cmd, DefineInstrument) and cmd.symbol in self.engine.instruments:
                return []
            if isinstance(cmd, Deposit) and (cmd.account, cmd.asset) in self._funded():
                return []
        prefix = self._coid_prefix
        if not prefix or not isinstance(cmd, _ORDER_COMMANDS):
            return self.submit(cmd)
        coid = cmd.client_order_id
        if type(coid) is not str:
            return self.submit(cmd)
        events = self.submit(cmd._replace(client_order_id=prefix + coid))
        n = len(prefix)
        out: list[Event] = []
        for ev in events:
            if isinstance(ev, _FEEDBACK_EVENTS):
                theirs = ev.client_order_id
                if theirs is not None and theirs.startswith(prefix):
                    ev = ev._replace(client_order_id=theirs[n:])
            out.append(ev)
        return out

    def _funded(self) -> set[tuple[str, str]]:
        return self.journal.funded if self.journal is not None else set()

    def _record_snapshots(self, channels: Iterable[str]) -> None:
        """Give the store a snapshot of channels that have none yet (a new symbol or account),
        so that REST and subscribers find them before their first update."""
        if self._replaying and self.shadow_pending is not None:
            self.shadow_pending.extend(channels)
            return
        for channel in channels:
            envelope = self.publisher.snapshot(channel)
            if envelope is not None:
                self.store.record_snapshot(envelope)

    def _sink(self, envelope: Envelope) -> None:
        if self._replaying:  # replayed history is for the store (resumes), not live
            tail = self._replay_tail.get(envelope.channel)
            if tail is None:
                tail = self._replay_tail[envelope.channel] = deque(
                    maxlen=self.config.store_history_max
                )
            tail.append(envelope)
            return
        try:
            self.store.record(envelope)
        except Exception:
            self.sink_errors += 1
        self.bus.publish(envelope)

    def _open_orders(self, account: str) -> list[dict[str, Any]]:
        instruments = self.engine.instruments
        return [order_to_json(o, instruments) for o in self.engine.orders.open_orders(account)]

    def symbols(self) -> list[dict[str, Any]]:
        """``GET /v1/symbols`` entries: the engine's instruments."""
        return [
            {"symbol": i.symbol, "tick": i.tick, "lot": i.lot, "currency": i.currency}
            for i in self.engine.instruments.values()
        ]

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Start storage, restore the journal, define instruments, make the opening deposits,
        start the feed and the flush task. Idempotent."""
        if self._started:
            return
        self._started = True
        await self.open()
        await self.begin()

    async def open(self, *, storage: bool = True) -> None:
        """Start storage (unless ``storage`` is false: a standby engine starts it when it takes
        over) and the reporter, restore the journal and start its sync task: the first half of
        ``start``."""
        self._started = True
        if storage:
            await self.start_storage()
        reporter = self.reporter
        restored: list[Offer] = []
        if reporter is not None:
            await reporter.open()
            self._closers.append(reporter.close)
            self._report = restored.append
        self._raise_gc_threshold()  # the restore builds a large long-lived state
        try:
            if self.journal is not None:
                self._restore(self.journal)
                await self.journal.start()
                self._closers.append(self.journal.close)
        finally:
            self._report = None
        if reporter is not None:
            await self._start_reporter(reporter, restored)

    async def start_storage(self) -> None:
        for component in (self.archive, self.store, self.bus):
            await component.start()
            self._closers.append(component.close)

    async def begin(self) -> None:
        """Setup commands the journal does not hold yet, the feed and the flush task: the
        second half of ``start`` (a standby engine runs it when it takes over)."""
        cfg = self.config
        if isinstance(self.feed, SyntheticFeed):
            if self.restored_commands:
                self._restart_synthetic(self.feed)
            self.feed.submit_setup()  # instruments first: deposits of shares need them
        elif cfg.feed == "replay":
            for cmd in self._replay_instruments:
                self._feed_submit(cmd._replace(ts=None))
        else:
            for symbol in cfg.symbols:
                if symbol not in self.engine.instruments:
                    self.submit(DefineInstrument(symbol=symbol, tick=cfg.tick, lot=cfg.lot))
        funded = self._funded()
        for deposit in self.accounts.deposit_commands():
            if (deposit.account, deposit.asset) not in funded:
                self.submit(deposit)
        self._record_snapshots(orders_channel(a) for a in self.accounts.names)
        self._freeze_gc()
        self._flush_task = asyncio.create_task(self._flush_loop(), name="publisher-flush")
        if self.feed is not None:
            await self.feed.start()
            self._closers.append(self.feed.close)

    # -- a standby's replica ----------------------------------------------------------------

    @property
    def shadow(self) -> bool:
        """A standby's mode: envelopes are kept per channel (the last ``store_history_max``)
        instead of going to the store and the bus."""
        return self._replaying

    @shadow.setter
    def shadow(self, on: bool) -> None:
        self._replaying = on

    def apply_sequenced(self, in_seq: int, ts: int, cmd: Command) -> None:
        """Apply one record of the leader's log: journaled here too, then run exactly as the
        leader ran it (``Engine.submit_sequenced``), its envelopes kept in shadow mode."""
        journal = self.journal
        if journal is not None:
            journal.journal.append(in_seq, ts, cmd)
        events = self.engine.submit_sequenced(in_seq, ts, cmd)
        ok = bool(events) and type(events[0]) is not Rejected
        if isinstance(cmd, Deposit) and journal is not None and ok:
            journal.funded.add((cmd.account, cmd.asset))
        if type(cmd) is DefineInstrument:
            self._defined(cmd)
        if events:
            self.publisher.on_events(events)
        self.restored_commands += 1

    def set_coid_prefix(self, prefix: str) -> None:
        """The prefix of the feed's client order ids from now on (a new leader's own)."""
        self._coid_prefix = prefix

    def record_snapshots(self, channels: Iterable[str]) -> None:
        """Give the store a first snapshot of each of ``channels`` (after shadow mode)."""
        self._record_snapshots(channels)

    def take_shadow(self) -> list[Envelope]:
        """The envelopes kept in shadow mode (per channel in seq order), and forget them."""
        tails, self._replay_tail = self._replay_tail, {}
        return [envelope for tail in tails.values() for envelope in tail]

    def _restore(self, journal: RunJournal) -> None:
        """Replay the journal: the engine and the publisher (its envelopes go to the store,
        not the bus) come back to the state of the last recorded command."""
        if not journal.restored_records:
            return
        started = time.perf_counter()
        publisher = self.publisher
        on_events = publisher.on_events
        conflated = any(publisher.config.conflate_ms.values())

        report = self._report
        mark = self.reporter.last_in_seq if self.reporter is not None else 0
        engine = self.engine

        def replayed(ts: int, cmd: Command, events: list[Event]) -> None:
            if type(cmd) is DefineInstrument:
                self._defined(cmd)
            if events:
                on_events(events)
            if report is not None and engine.in_seq > mark:
                if events:
                    report(events)
                elif type(cmd) is Deposit:
                    self._report_deposit(cmd, ts)
            if conflated:
                publisher.flush_due(ts)

        shadow, self._replaying = self._replaying, True
        try:
            self.restored_commands = journal.replay(self.engine.submit_sequenced, replayed)
            publisher.flush_all()
        finally:
            self._replaying = shadow
        if shadow:
            return  # a standby keeps the tail (take_shadow) for when it takes over
        # the store gets what it would keep of the replayed updates: each channel's last
        # history_max (older ones would only be dropped again)
        tails, self._replay_tail = self._replay_tail, {}
        self.restored_tail = [e for tail in tails.values() for e in list(tail)[-RESTORED_TAIL:]]
        record = self.store.record
        for tail in tails.values():
            for envelope in tail:
                try:
                    record(envelope)
                except Exception:
                    self.sink_errors += 1
        log.info(
            "journal %s: restored %d commands in %.2f s (state %s)",
            journal.config.path,
            self.restored_commands,
            time.perf_counter() - started,
            self.engine.state_hash()[:16],
        )

    async def _start_reporter(self, reporter: Reporter, restored: list[Offer]) -> None:
        """Bring the database to the restored engine, then serve history from it and hand it
        the live events."""
        await reporter.catch_up(self.engine.in_seq, self.engine.out_seq, restored)
        await reporter.start()
        assert reporter.queue is not None
        self._report = reporter.queue.offer
        self.services.history = DatabaseHistory(reporter.db, reporter.stream)
        self.services.reporter = reporter

    def _restart_synthetic(self, feed: SyntheticFeed) -> None:
        """After a restore: cancel the quotes the feed's previous run left open (the new run
        does not know them) and continue the market from the last trade prices."""
        market = feed.market
        for account in market.accounts:
            for order in self.engine.orders.open_orders(account):
                self.submit(CancelOrder(account, order.client_order_id))
        prices = dict(feed.config.start_prices)
        for symbol in market.symbols:
            last = self.engine.last_price(symbol)
            inst = self.engine.instruments.get(symbol)
            if last is not None and inst is not None:
                prices[symbol] = inst.price_text(last)
        try:
            restarted = dataclasses.replace(feed.config, start_prices=prices)
            self.feed = SyntheticFeed(restarted, self._feed_submit)
        except ValueError:  # a price off the feed's tick (the journal defined it otherwise)
            pass

    def _raise_gc_threshold(self) -> None:
        threshold = self.config.gc_threshold
        if threshold and self._gc_saved is None:
            self._gc_saved = saved = gc.get_threshold()
            gc.set_threshold(threshold, saved[1], saved[2])

    def _freeze_gc(self) -> None:
        """Move the state built so far (setup, restore) out of the collector's view, with the
        generation-0 threshold raised: GC pauses dominate the engine's tail latency otherwise."""
        if self.config.gc_threshold and self._gc_saved is not None:
            gc.collect()
            gc.freeze()

    def _unfreeze_gc(self) -> None:
        saved, self._gc_saved = self._gc_saved, None
        if saved is not None:
            gc.set_threshold(*saved)
            gc.unfreeze()

    async def stop_feed(self) -> None:
        """Stop the order flow (the feed) and the flush task and publish what is pending;
        storage stays open (a server calls this before its own shutdown). Idempotent."""
        if self.feed is not None and self.feed.close in self._closers:
            self._closers.remove(self.feed.close)
            await self.feed.close()
        task, self._flush_task = self._flush_task, None
        if task is not None:
            await cancel_and_wait(task)
            self.publisher.flush_all()

    async def close(self) -> None:
        """Stop the feed, publish what is pending, close storage (in reverse order of start).
        Idempotent."""
        await self.stop_feed()
        closers, self._closers = self._closers, []
        for close in reversed(closers):
            with contextlib.suppress(Exception):
                await close()
        if self.journal is not None:  # also when never started (opened at construction)
            with contextlib.suppress(Exception):
                await self.journal.close()
        self._unfreeze_gc()

    async def _flush_loop(self) -> None:
        interval_s = self.config.flush_interval_ms / 1000
        while True:
            await asyncio.sleep(interval_s)
            try:
                self.publisher.flush_due(self._clock())
            except Exception:
                self.sink_errors += 1

    @contextlib.asynccontextmanager
    async def session(self) -> AsyncIterator[Services]:
        """Started services for ``create_app(services=runtime.session)``; closed at exit."""
        try:
            await self.start()
            yield self.services
        finally:
            await self.close()


async def embedded_services(config: EmbeddedConfig) -> EmbeddedRuntime:
    """A started runtime; serve ``runtime.services`` and ``await runtime.close()`` at the end."""
    runtime = EmbeddedRuntime(config)
    try:
        await runtime.start()
    except BaseException:
        await runtime.close()
        raise
    return runtime
