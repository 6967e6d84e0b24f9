"""The market-data publisher: engine events in, encoded channel envelopes out.

```python
pub = Publisher(PublisherConfig(), sink=on_envelope, clock=lambda: now_us)
pub.add_instrument(instrument)      # creates book/trades/ticker/candles channels
pub.on_events(events)               # the events ONE command produced, in order
pub.flush_due(now_us)               # conflated updates whose interval has passed
pub.flush_all()                     # everything pending (end of replay, shutdown)
pub.snapshot("book.AAPL")           # Envelope | None, seq = last update it includes
```

Pure and synchronous: no wall clock (time is the events' ``ts``, or the injected ``clock`` for
channels that have not published yet), no I/O; the same events give the same bytes. Each update
is encoded once (the bytes of ``Envelope.build``) and handed to ``sink``. Per command, the
updates come in a fixed order: the ``orders.<account>`` records as their events occur, then per
touched symbol ``trades``, ``book``, ``ticker`` and ``candles`` (1s .. 1d).

Everything is derived from the events alone (the L2 book via :mod:`.resting`), so the same
publisher runs embedded next to the engine and, in distributed mode, on the event stream.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from heapq import heappop, heappush
from typing import Any

from engine.events import Accepted, Cancelled, Done, Event, Replaced, Trade
from engine.instruments import Instrument
from gateway.marketdata.candles import CandleSeries, CandleSet
from gateway.marketdata.l2book import L2Book
from gateway.marketdata.orders import OpenOrders, OrderStreams, price_json
from gateway.marketdata.prices import PriceTexts
from gateway.marketdata.resting import RestingOrders
from gateway.marketdata.sequencing import Sink, Stream, new_epoch
from gateway.marketdata.ticker import Ticker
from gateway.marketdata.trades import TradeTape
from gateway.wire.channels import BOOK, CANDLES, ORDERS, RESOLUTIONS, TICKER, TRADES
from gateway.wire.envelope import Envelope

_NEVER_DUE = 1 << 62
_NO_SYMBOL = object()
CandleClosed = Callable[[str, str, dict[str, Any]], None]
InstrumentLookup = Callable[[str], Instrument | None]


CONFLATABLE = (BOOK, TICKER, CANDLES, TRADES)
"""Channel kinds with a publish interval (``orders`` is never conflated)."""


VENUE_CONFLATE_MS: Mapping[str, int] = {BOOK: 100, TICKER: 250, CANDLES: 250, TRADES: 0}
"""Publish intervals as trading venues use them for public feeds (book 100 ms, ticker and
candles 250 ms, every trade): a preset for a live runtime's ``conflate_ms``. The default
(:func:`_default_conflation`) publishes every change, as ``quotegate replay --marketdata``
and the tests expect."""


def _default_conflation() -> dict[str, int]:
    return {BOOK: 0, TICKER: 0, CANDLES: 0, TRADES: 0}


@dataclass(frozen=True, kw_only=True)
class PublisherConfig:
    """``book_depth``: levels per side (D); ``trades_snapshot_max``/``candles_snapshot_max``:
    items in those snapshots; ``candle_ring_size``: buckets kept per (symbol, resolution);
    ``history_max``: per-channel history the store keeps; ``epoch``: the streams' epoch
    (``None``: a random token per start); ``conflate_ms``: publish interval per channel kind
    (0 = every change; ``orders`` is never conflated)."""

    book_depth: int = 50
    trades_snapshot_max: int = 50
    candles_snapshot_max: int = 300
    candle_ring_size: int = 1000
    history_max: int = 1000
    epoch: str | None = None
    conflate_ms: Mapping[str, int] = field(default_factory=_default_conflation)

    def __post_init__(self) -> None:
        if self.book_depth < 1 or self.candle_ring_size < 1:
            raise ValueError("book_depth and candle_ring_size must be at least 1")
        if min(self.trades_snapshot_max, self.candles_snapshot_max, self.history_max) < 0:
            raise ValueError("snapshot and history sizes must not be negative")
        for kind, ms in self.conflate_ms.items():
            if kind not in CONFLATABLE or type(ms) is not int or ms < 0:
                raise ValueError(f"bad conflation {kind}={ms!r} (kinds: {', '.join(CONFLATABLE)})")

    def interval_us(self, kind: str) -> int:
        return int(self.conflate_ms.get(kind, 0)) * 1000


def parse_conflate_ms(text: str) -> dict[str, int]:
    """Parse ``"book=100,ticker=100"`` (a flag or ``QUOTEGATE_*`` value) into ``conflate_ms``;
    raises ``ValueError`` on anything else. An empty string means no conflation."""
    out: dict[str, int] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        kind, sep, value = item.partition("=")
        kind = kind.strip()
        value = value.strip()
        if not sep or kind not in CONFLATABLE or not value.isdigit():
            raise ValueError(f"bad conflation {item!r}: expected KIND=MS with KIND in "
                             f"{', '.join(CONFLATABLE)}")  # fmt: skip
        out[kind] = int(value)
    return out


class _Symbol:
    """Feeds and streams of one symbol."""

    __slots__ = (
        "book",
        "book_stream",
        "candle_set",
        "candles",
        "inst",
        "price_json",
        "tape",
        "texts",
        "ticker",
        "ticker_stream",
        "touched",
        "traded",
        "trades_stream",
    )

    def __init__(self, inst: Instrument, cfg: PublisherConfig, epoch: str, sink: Sink, ts: int):
        self.inst = inst
        sym = inst.symbol
        self.texts = pt = PriceTexts(inst.price_text)
        self.price_json = price_json(inst)  # for the orders records
        self.touched = False
        self.traded = False
        self.book = book = L2Book(cfg.book_depth, inst.price_text, pt)
        self.tape = tape = TradeTape(cfg.trades_snapshot_max, pt)
        self.ticker = ticker = Ticker(inst, pt)
        self.trades_stream = Stream(
            f"{TRADES}.{sym}", epoch, sink, tape.published_snapshot,
            take=tape.take, interval_us=cfg.interval_us(TRADES), ts=ts,
        )  # fmt: skip
        self.book_stream = Stream(
            f"{BOOK}.{sym}", epoch, sink, book.published_snapshot,
            take=book.diff, interval_us=cfg.interval_us(BOOK), ts=ts,
        )  # fmt: skip
        self.ticker_stream = Stream(
            f"{TICKER}.{sym}", epoch, sink, ticker.render,
            take=ticker.take, interval_us=cfg.interval_us(TICKER), ts=ts,
        )  # fmt: skip
        self.candles: list[tuple[str, CandleSeries, Stream]] = []
        limit = cfg.candles_snapshot_max
        for res, width_us in RESOLUTIONS.items():
            series = CandleSeries(width_us, cfg.candle_ring_size, pt)

            def render(series: CandleSeries = series) -> dict[str, Any]:
                return {"candles": series.latest(limit)}

            stream = Stream(
                f"{CANDLES}.{sym}.{res}", epoch, sink, render,
                take=series.take, interval_us=cfg.interval_us(CANDLES), ts=ts,
            )  # fmt: skip
            self.candles.append((res, series, stream))
        self.candle_set = CandleSet([series for _, series, _ in self.candles])
        # The book and trades snapshots are rendered at the published state even while
        # conflated changes are pending (L2Book.published_snapshot,
        # TradeTape.published_snapshot); ticker and candle updates carry absolute values, so
        # their snapshots may include pending changes.

    def streams(self) -> list[Stream]:
        return [self.book_stream, self.trades_stream, self.ticker_stream] + [
            s for _, _, s in self.candles
        ]


class Publisher:
    """Turns engine events into the protocol's channels (see the module docstring)."""

    def __init__(
        self,
        config: PublisherConfig | None = None,
        *,
        sink: Sink,
        clock: Callable[[], int],
        on_candle_closed: CandleClosed | None = None,
        open_orders: OpenOrders | None = None,
        instrument_lookup: InstrumentLookup | None = None,
    ) -> None:
        self.config = cfg = config or PublisherConfig()
        self.epoch = cfg.epoch if cfg.epoch is not None else new_epoch()
        self._sink = sink
        self._clock = clock
        self._on_candle_closed = on_candle_closed
        self._lookup = instrument_lookup
        self.instruments: dict[str, Instrument] = {}
        self._symbols: dict[str, _Symbol] = {}
        self._streams: dict[str, Stream] = {}
        # conflated streams with pending changes: a heap of (due time, tick, stream)
        self._due: list[tuple[int, int, Stream]] = []
        self._tick = 0  # insertion counter: equal due times flush in the order they were held
        self._next_due = _NEVER_DUE  # earliest time one of them may publish
        self.callback_errors = 0  # on_candle_closed calls that raised
        self._resting = RestingOrders()
        self._orders = OrderStreams(self.epoch, sink, self.instruments, clock, open_orders)

    # -- setup ------------------------------------------------------------------------------

    def add_instrument(self, instrument: Instrument) -> None:
        """Create the symbol's channels (idempotent: a known symbol keeps its state)."""
        if instrument.symbol in self._symbols:
            return
        self.instruments[instrument.symbol] = instrument
        sym = _Symbol(instrument, self.config, self.epoch, self._sink, self._clock())
        self._symbols[instrument.symbol] = sym
        for stream in sym.streams():
            self._streams[stream.channel] = stream

    def _symbol(self, symbol: str) -> _Symbol | None:
        sym = self._symbols.get(symbol)
        if sym is None and self._lookup is not None:
            inst = self._lookup(symbol)
            if inst is not None:
                self.add_instrument(inst)
                sym = self._symbols[symbol]
        return sym

    # -- events -----------------------------------------------------------------------------

    def on_events(self, events: Iterable[Event]) -> None:
        """Apply the events of one command (in order) and publish what they changed."""
        touched: list[_Symbol] = []
        resting = self._resting
        orders = self._orders
        symbols = self._symbols
        ts = 0
        last_symbol: object = _NO_SYMBOL
        sym: _Symbol | None = None
        try:
            for ev in events:
                ts = ev.ts
                symbol = ev.symbol
                if symbol != last_symbol:  # the events of a command mostly share one
                    last_symbol = symbol
                    # the symbol first: a looked-up instrument must be known before rendering
                    sym = (symbols.get(symbol) or self._symbol(symbol)) if symbol else None
                    if sym is not None and not sym.touched:
                        sym.touched = True
                        touched.append(sym)
                if sym is None:
                    orders.on_event(ev)
                    continue
                # the mirror first, the orders record last: a failing sink leaves the mirror
                # consistent
                kind = type(ev)
                if kind is Accepted:
                    resting.accepted(ev, sym.book)  # type: ignore[arg-type]
                    orders.accepted(ev, sym.price_json)  # type: ignore[arg-type]
                elif kind is Done:
                    resting.done(ev)  # type: ignore[arg-type]
                    orders.done(ev)  # type: ignore[arg-type]
                elif kind is Trade:
                    resting.trade(ev, sym.book)  # type: ignore[arg-type]
                    self._trade(sym, ev)  # type: ignore[arg-type]
                    orders.trade(ev, sym.price_json)  # type: ignore[arg-type]
                elif kind is Cancelled:
                    resting.cancelled(ev)  # type: ignore[arg-type]
                    orders.cancelled(ev)  # type: ignore[arg-type]
                elif kind is Replaced:
                    resting.replaced(ev)  # type: ignore[arg-type]
                    orders.event(ev)
                else:
                    orders.event(ev)
        finally:  # even if a callback raised: never leave a symbol marked touched
            resting.end_command()
            for sym in touched:
                sym.touched = False
            for sym in touched:
                self._publish_symbol(sym, ts)

    def _trade(self, sym: _Symbol, ev: Trade) -> None:
        sym.traded = True
        sym.tape.add(ev)
        price, qty, ts = ev.price, ev.qty, ev.ts
        sym.ticker.trade(price, qty, ts)
        closed = sym.candle_set.trade(price, qty, ts)
        if closed is not None and self._on_candle_closed is not None:
            for k, candle in closed:
                try:
                    self._on_candle_closed(sym.inst.symbol, sym.candles[k][0], candle)
                except Exception:  # the archive's problem must not stop the market data
                    self.callback_errors += 1

    def _publish_symbol(self, sym: _Symbol, ts: int) -> None:
        # Streams without conflation publish straight away (the hot path: no Stream.offer).
        book = sym.book
        ticker = sym.ticker
        bids = book.bids.keys
        asks = book.asks.keys
        bid = -bids[0] if bids else None
        ask = asks[0] if asks else None
        if bid != ticker.bid or ask != ticker.ask:
            ticker.quote(bid, ask)
        # A conflated stream that is pending and not yet due only moves its ts on (inline: the
        # common case under conflation); otherwise _offer decides.
        if sym.tape.pending:
            stream = sym.trades_stream
            if not stream.interval_us:
                stream.publish(ts, sym.tape.take())
            elif stream.pending and ts - stream.last_emit_us < stream.interval_us:
                stream.pending_ts = ts
            else:
                self._offer(stream, ts)
        if book.bids.changed or book.asks.changed:
            stream = sym.book_stream
            if not stream.interval_us:
                data = book.diff()
                if data is not None:
                    stream.publish(ts, data)
            elif stream.pending and ts - stream.last_emit_us < stream.interval_us:
                stream.pending_ts = ts
            else:
                self._offer(stream, ts)
        if ticker.dirty:
            stream = sym.ticker_stream
            if not stream.interval_us:
                stream.publish(ts, ticker.take())
            elif stream.pending and ts - stream.last_emit_us < stream.interval_us:
                stream.pending_ts = ts
            else:
                self._offer(stream, ts)
        if sym.traded:
            sym.traded = False
            candles = sym.candle_set
            lagging = candles.lagging  # the coarser series changed, unsynced (CandleSet)
            if lagging and not sym.candles[0][2].interval_us:  # publishing now: catch up
                candles.sync()
                lagging = False
            for _, series, stream in sym.candles:
                if series.changed or lagging:
                    if not stream.interval_us:
                        stream.publish(ts, series.take())
                    elif stream.pending and ts - stream.last_emit_us < stream.interval_us:
                        stream.pending_ts = ts
                    else:
                        self._offer(stream, ts)

    def _offer(self, stream: Stream, ts: int) -> None:
        """A conflated stream's feed changed at ``ts``: publish now if its interval has passed
        since its last publication, else leave the change pending (already pending: only its
        ``ts`` moves on; newly pending: it goes on the due heap)."""
        was_pending = stream.pending
        if stream.offer(ts, ts) and not was_pending:
            due = stream.last_emit_us + stream.interval_us
            self._tick += 1
            heappush(self._due, (due, self._tick, stream))
            if due < self._next_due:
                self._next_due = due

    def flush_due(self, now_us: int) -> None:
        """Publish the conflated updates whose interval has passed by ``now_us`` (cheap when
        none has: one comparison; else one heap pop per due stream, earliest due first)."""
        if now_us < self._next_due:
            return
        heap = self._due
        while heap and heap[0][0] <= now_us:
            stream = heappop(heap)[2]
            # an entry is stale when its stream published at an event since (and may be
            # pending again, with a later entry of its own)
            if stream.pending and stream.due(now_us):
                stream.flush(now_us)
        self._next_due = heap[0][0] if heap else _NEVER_DUE

    def flush_all(self) -> None:
        """Publish everything pending (end of a replay, shutdown), earliest due first."""
        heap = self._due
        while heap:
            heappop(heap)[2].flush()
        self._next_due = _NEVER_DUE

    # -- reads ------------------------------------------------------------------------------

    def snapshot(self, channel: str) -> Envelope | None:
        """The channel's snapshot at its last published update, or ``None`` if unknown.

        ``orders.<account>`` always has one (seq 0 before the account's first event)."""
        stream = self._streams.get(channel)
        if stream is not None:
            return stream.snapshot()
        if channel.startswith(ORDERS + ".") and len(channel) > len(ORDERS) + 1:
            return self._orders.stream(channel[len(ORDERS) + 1 :]).snapshot()
        return None

    def channels(self) -> list[str]:
        """Every channel: each symbol's public channels, then the known ``orders.<account>``."""
        return list(self._streams) + self._orders.channels()

    def book(self, symbol: str) -> L2Book | None:
        """The L2 mirror of a symbol (tests, REST depth)."""
        sym = self._symbols.get(symbol)
        return sym.book if sym is not None else None

    def seq(self, channel: str) -> int | None:
        """The channel's last published seq, or ``None`` if unknown."""
        stream = self._streams.get(channel)
        if stream is None and channel.startswith(ORDERS + "."):
            stream = self._orders.get(channel[len(ORDERS) + 1 :])
        return stream.seq if stream is not None else None
