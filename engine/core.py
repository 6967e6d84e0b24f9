"""The engine: commands in, events out, synchronously and deterministically.

One :class:`Engine` owns the instruments, one :class:`~engine.book.OrderBook` per symbol, the
:class:`~engine.orders.OrderManager`, the :class:`~engine.wallet.Wallets` and the
:class:`~engine.sequencer.Sequencer`. ``submit`` stamps a command (``in_seq``, ``ts``), hands it
to the journal sink if there is one, validates it, runs the risk and funds checks, matches
(price-time priority, trades at the resting price), settles both wallets and returns the events
it caused, numbered gap-free. Bad input never raises: it becomes a ``rejected`` event.

The matching loops live in :mod:`engine.matching`; they work on the book's and the wallets'
internals directly because they are the hot path.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, Protocol

from engine import messages, risk
from engine.admin import build_instrument, deposit_units, is_text
from engine.amend import cancel, replace
from engine.book import OrderBook
from engine.codec import decode_command
from engine.commands import (
    BUY,
    FOK,
    GTC,
    IOC,
    LIMIT,
    MARKET,
    SELL,
    CancelOrder,
    Command,
    DefineInstrument,
    Deposit,
    Malformed,
    NewOrder,
    ReplaceOrder,
)
from engine.events import (
    BAD_PRICE,
    BAD_QTY,
    DUPLICATE_ORDER,
    INSUFFICIENT_FUNDS,
    MALFORMED,
    MARKET_UNFILLED,
    REASON_FOK,
    REASON_IOC,
    UNKNOWN_SYMBOL,
    Accepted,
    Cancelled,
    Done,
    Event,
    Rejected,
)
from engine.instruments import Instrument
from engine.matching import match_buy, match_sell
from engine.orders import Order, OrderManager
from engine.sequencer import Sequencer, wall_clock_us
from engine.state_hash import state_hash
from engine.wallet import Wallets

_MAX_INT = 2**63 - 1  # the JSON form carries 64-bit integers
_tuple_new = tuple.__new__  # builds an event without the NamedTuple's Python-level __new__
_object_new = object.__new__


COMPACT_EVERY_ORDERS = 4_096


def _text_or_none(value: object) -> str | None:
    return value if type(value) is str else None


@dataclass(frozen=True, slots=True, kw_only=True)
class EngineConfig:
    """``max_open_orders_per_account``: resting orders one account may have at once (``None``
    for no limit); a new GTC limit order beyond it is rejected ``risk_max_open_orders``.

    Retention (``None``: keep everything): ``finished_orders_max`` finished orders (filled or
    cancelled, not resting) stay retrievable only while their id is among the newest that many
    order ids; ``executions_per_account_max`` executions are kept per account (the newest).
    Both are applied when an order id that is a multiple of ``compact_every_orders`` is about to
    be assigned, so between two compactions up to ``compact_every_orders`` more are held.
    Resting orders are never forgotten. See ``docs/engine.md`` (Retention)."""

    max_open_orders_per_account: int | None = None
    finished_orders_max: int | None = 1_000_000
    executions_per_account_max: int | None = 100_000
    compact_every_orders: int = COMPACT_EVERY_ORDERS

    def __post_init__(self) -> None:
        for name in ("finished_orders_max", "executions_per_account_max"):
            value = getattr(self, name)
            if value is not None and (type(value) is not int or value < 1):
                raise ValueError(f"{name} must be an int >= 1 or None, not {value!r}")
        every = self.compact_every_orders
        if type(every) is not int or every < 1:
            raise ValueError(f"compact_every_orders must be an int >= 1, not {every!r}")


class JournalSink(Protocol):
    """Receives every input after it is stamped and before it is processed. Replaying the
    recorded ``(in_seq, ts, cmd)`` through ``Engine.submit_sequenced`` of a fresh engine gives
    byte-identical events and the same ``state_hash``. If ``append`` raises ``TypeError`` or
    ``ValueError`` (a command built in process with a field no JSON encoder writes), the engine
    records and processes a ``Malformed`` command in its place (a ``rejected`` event)."""

    def append(self, in_seq: int, ts: int, cmd: Command) -> None: ...


Handler = Callable[[Any, int, int], list[Event]]


class Engine:
    """The matching engine. See ``docs/engine.md`` for the semantics.

    Slotted, like every class of the hot path: CPython 3.11 keeps a plain instance's attributes
    inline only until something touches its ``__dict__`` (pickling it for a snapshot did, and so
    did loading one); from then on every ``self.`` lookup goes through a dict, which cost 12 %
    more instructions per command (callgrind)."""

    __slots__ = (
        "_books",
        "_by_client",
        "_by_id_append",
        "_compact_at",
        "_currencies",
        "_executions",
        "_handlers",
        "_journal",
        "_markets",
        "_max_open",
        "_next_order_id",
        "_next_trade_id",
        "_open_map",
        "_share_totals",
        "_sq",
        "_wallet_map",
        "config",
        "instruments",
        "orders",
        "wallets",
    )

    def __init__(
        self,
        config: EngineConfig | None = None,
        *,
        clock: Callable[[], int] = wall_clock_us,
        journal: JournalSink | None = None,
    ) -> None:
        self.config = config if config is not None else EngineConfig()
        self.instruments: dict[str, Instrument] = {}
        self.orders = OrderManager()
        self.wallets = Wallets()
        self._books: dict[str, OrderBook] = {}
        # symbol -> (instrument, book, has per-instrument risk limits): one lookup per order
        self._markets: dict[str, tuple[Instrument, OrderBook, bool]] = {}
        self._max_open = self.config.max_open_orders_per_account
        # the order manager's and the wallets' maps, for the hot path
        self._by_client = self.orders._by_client
        self._open_map = self.orders._open
        self._by_id_append = self.orders._by_id.append
        self._executions = self.orders._executions
        self._wallet_map = self.wallets._wallets
        self._currencies: set[str] = {"USD"}
        # symbol -> shares deposited over all accounts (kept within 64 bits, see _deposit):
        # deposits are the only way shares enter, so this is every symbol's total
        self._share_totals: dict[str, int] = {}
        self._sq = Sequencer(clock)
        self._journal = journal
        self._next_order_id = 1
        self._next_trade_id = 1
        # retention: compact when this order id is about to be assigned (0: never)
        config = self.config
        retains = config.finished_orders_max is not None
        if retains or config.executions_per_account_max is not None:
            self._compact_at = config.compact_every_orders
        else:
            self._compact_at = 0
        self._handlers: dict[type, Handler] = {
            NewOrder: self._new,
            CancelOrder: partial(cancel, self),
            ReplaceOrder: partial(replace, self),
            Deposit: self._deposit,
            DefineInstrument: self._define,
            Malformed: self._malformed,
        }

    # -- public API -------------------------------------------------------------------------

    @property
    def in_seq(self) -> int:
        """Inputs numbered so far (the last input's ``in_seq``)."""
        return self._sq.in_seq

    @property
    def out_seq(self) -> int:
        """Events emitted so far (the last event's ``seq``)."""
        return self._sq.out_seq

    @property
    def sequencer(self) -> Sequencer:
        return self._sq

    def submit(self, cmd: Command) -> list[Event]:
        """Stamp, journal and process one command; the events it caused, in order."""
        try:
            handler = self._handlers[cmd.__class__]
        except (KeyError, TypeError):
            cmd = Malformed(f"not a command: {type(cmd).__name__}")
            handler = self._handlers[Malformed]
        sq = self._sq
        in_seq = sq.in_seq = sq.in_seq + 1
        ts = cmd.ts
        if ts is None:
            ts = sq.clock()
        elif ts.__class__ is not int or not 0 <= ts <= _MAX_INT:
            cmd = Malformed(
                "field 'ts' must be a non-negative integer",
                getattr(cmd, "account", None),
                getattr(cmd, "client_order_id", None),
            )
            handler = self._handlers[Malformed]
            ts = sq.clock()
        journal = self._journal
        if journal is not None:
            try:
                journal.append(in_seq, ts, cmd)
            except (TypeError, ValueError) as exc:  # a field no JSON encoder writes
                cmd = Malformed(
                    f"a field cannot be journaled: {exc}",
                    _text_or_none(getattr(cmd, "account", None)),
                    _text_or_none(getattr(cmd, "client_order_id", None)),
                )
                handler = self._handlers[Malformed]
                journal.append(in_seq, ts, cmd)
        return handler(cmd, in_seq, ts)

    def submit_line(self, line: bytes | str) -> list[Event]:
        """Decode one JSON line and submit it; a malformed line is a ``rejected`` event."""
        return self.submit(decode_command(line))

    def submit_sequenced(self, in_seq: int, ts: int, cmd: Command) -> list[Event]:
        """Process an input that was already stamped (replay of a journal): ``in_seq`` must
        follow the engine's last one; the journal sink is not called."""
        self._sq.resume(in_seq)
        if type(ts) is not int or ts < 0 or ts > _MAX_INT:
            cmd = Malformed(
                "field 'ts' must be a non-negative integer",
                getattr(cmd, "account", None),
                getattr(cmd, "client_order_id", None),
            )
            ts = 0
        handler = self._handlers.get(type(cmd))
        if handler is None:
            return self._malformed(Malformed(f"not a command: {type(cmd).__name__}"), in_seq, ts)
        return handler(cmd, in_seq, ts)

    def book(self, symbol: str) -> OrderBook | None:
        """The symbol's order book, or ``None`` if it is not defined."""
        return self._books.get(symbol)

    def symbols(self) -> list[str]:
        """Defined symbols, in definition order."""
        return list(self.instruments)

    def last_price(self, symbol: str) -> int | None:
        book = self._books.get(symbol)
        return None if book is None else book.last_price

    def state_hash(self) -> str:
        """sha256 (hex) of a canonical serialisation of counters, instruments, books (levels
        and the FIFO of each), every order and every wallet (:mod:`engine.state_hash`)."""
        sq = self._sq
        counters = (
            sq.in_seq,
            sq.out_seq,
            self._next_order_id,
            self._next_trade_id,
            self.orders.base_id,
            self._compact_at,
        )
        return state_hash(
            counters, self.instruments, self._books, self.orders.all_orders(), self.wallets
        )

    # -- helpers ----------------------------------------------------------------------------

    def _reject(
        self,
        in_seq: int,
        ts: int,
        account: object,
        coid: object,
        reason: str,
        message: str,
        symbol: object = None,
    ) -> list[Event]:
        sq = self._sq
        seq = sq.out_seq = sq.out_seq + 1
        if not is_text(message):  # (values are quoted with repr: only a message given as is)
            message = message.encode("utf-8", "backslashreplace").decode()
        return [
            Rejected(
                seq,
                in_seq,
                ts,
                account if type(account) is str and is_text(account) else None,
                coid if type(coid) is str and is_text(coid) else None,
                reason,
                message,
                symbol if type(symbol) is str and is_text(symbol) else None,
            )
        ]

    def _reject_price(
        self, in_seq: int, ts: int, account: object, coid: object, text: object, inst: Instrument
    ) -> list[Event]:
        """``bad_price``: ``text`` is not a positive multiple of the instrument's tick."""
        message = messages.bad_price(text, inst)
        return self._reject(in_seq, ts, account, coid, BAD_PRICE, message, inst.symbol)

    def _reject_qty(
        self, in_seq: int, ts: int, account: object, coid: object, qty: object, inst: Instrument
    ) -> list[Event]:
        """``bad_qty``: ``qty`` is not a positive multiple of the instrument's lot."""
        message = messages.bad_qty(qty, inst)
        return self._reject(in_seq, ts, account, coid, BAD_QTY, message, inst.symbol)

    def _malformed(self, cmd: Malformed, in_seq: int, ts: int) -> list[Event]:
        reason = cmd.reason
        if type(reason) is not str or not reason or not is_text(reason):
            reason = MALFORMED
        message = cmd.message if type(cmd.message) is str else repr(cmd.message)
        return self._reject(in_seq, ts, cmd.account, cmd.client_order_id, reason, message)

    def _done(self, order: Order, out: list[Event], in_seq: int, ts: int) -> None:
        sq = self._sq
        seq = sq.out_seq = sq.out_seq + 1
        out.append(
            _tuple_new(
                Done,
                (
                    seq,
                    in_seq,
                    ts,
                    order.order_id,
                    order.account,
                    order.client_order_id,
                    order.symbol,
                ),
            )
        )

    # -- instrument and deposit -------------------------------------------------------------

    def _define(self, cmd: DefineInstrument, in_seq: int, ts: int) -> list[Event]:
        found = build_instrument(cmd, self.instruments, self._currencies)
        symbol = cmd.symbol
        if type(found) is tuple:
            return self._reject(in_seq, ts, None, None, found[0], found[1], symbol)
        assert isinstance(found, Instrument)
        old = self.instruments.get(symbol)
        if old is not None:
            if old == found:
                return []  # the same definition again: nothing to do
            return self._reject(
                in_seq,
                ts,
                None,
                None,
                MALFORMED,
                f"{symbol!r} is already defined differently",
                symbol,
            )
        self.instruments[symbol] = found
        book = self._books[symbol] = OrderBook(symbol, found.currency, found.cash_per_tick)
        self._markets[symbol] = (found, book, risk.has_limits(found))
        self._currencies.add(found.currency)
        return []

    def _deposit(self, cmd: Deposit, in_seq: int, ts: int) -> list[Event]:
        found = deposit_units(cmd, self.instruments, self._currencies)
        if type(found) is tuple:
            return self._reject(in_seq, ts, cmd.account, None, found[0], found[1], cmd.asset)
        assert type(found) is int
        asset = cmd.asset
        if asset in self.instruments:
            # shares: the symbol's total over all accounts stays a 64-bit integer, and so does
            # every balance and every order's qty the JSON API writes (trades only move shares)
            totals = self._share_totals
            total = totals.get(asset, 0)
            if found > _MAX_INT - total:
                message = f"the deposit would take the {asset} total above {_MAX_INT} shares"
                return self._reject(in_seq, ts, cmd.account, None, BAD_QTY, message, asset)
            totals[asset] = total + found
        self.wallets.get(cmd.account).credit(asset, found)
        return []

    # -- retention --------------------------------------------------------------------------

    def _compact(self, oid: int) -> None:
        """Retention, run before order id ``oid`` (a multiple of ``compact_every_orders``) is
        assigned and registered: forget finished orders up to ``oid - 1 - finished_orders_max``
        and trim the executions lists (:meth:`OrderManager.compact`)."""
        config = self.config
        self._compact_at = oid + config.compact_every_orders
        self.orders.compact(oid - 1, config.finished_orders_max, config.executions_per_account_max)

    # -- orders -----------------------------------------------------------------------------

    def _new(self, cmd: NewOrder, in_seq: int, ts: int) -> list[Event]:
        account, coid, symbol, side, otype, price_text, qty, tif, _ = cmd
        try:
            inst, book, limited = self._markets[symbol]
        except (KeyError, TypeError):  # unknown or unhashable
            return self._reject(
                in_seq, ts, account, coid, UNKNOWN_SYMBOL, messages.unknown_symbol(symbol), symbol
            )
        if (
            type(account) is not str
            or type(coid) is not str
            or not account
            or not coid
            # (is_text checks isascii first too; inline here, an ASCII id costs no call)
            or not (account.isascii() or is_text(account))
            or not (coid.isascii() or is_text(coid))
        ):
            return self._reject(in_seq, ts, account, coid, MALFORMED, messages.ids_required())
        if side == BUY:
            buy = True
        elif side == SELL:
            buy = False
        else:
            return self._reject(
                in_seq, ts, account, coid, MALFORMED, messages.bad_side(side), symbol
            )
        if otype == LIMIT:
            if tif != GTC and tif != IOC and tif != FOK:
                return self._reject(
                    in_seq, ts, account, coid, MALFORMED, messages.bad_tif(tif), symbol
                )
            if type(price_text) is str:  # (a str subclass is not a price: bad_price)
                try:
                    price = inst._ticks_memo[price_text]
                except KeyError:
                    price = inst.ticks(price_text)
            else:
                price = None
            if price is None:
                return self._reject_price(in_seq, ts, account, coid, price_text, inst)
        elif otype == MARKET:
            if price_text is not None:
                return self._reject(
                    in_seq, ts, account, coid, BAD_PRICE, messages.market_with_price(), symbol
                )
            price = None
            tif = IOC
        else:
            return self._reject(
                in_seq, ts, account, coid, MALFORMED, messages.bad_type(otype), symbol
            )
        if type(qty) is not int or qty <= 0 or qty % inst.lot or qty > _MAX_INT:
            return self._reject_qty(in_seq, ts, account, coid, qty, inst)
        try:
            clients: dict[str, Order] | None = self._by_client[account]
        except KeyError:
            clients = None
        else:
            if coid in clients:  # type: ignore[operator]
                return self._reject(
                    in_seq,
                    ts,
                    account,
                    coid,
                    DUPLICATE_ORDER,
                    messages.duplicate(coid),
                    symbol,
                )
        if limited:
            ref = book.last_price
            if ref is None:
                ref = book.best_ask if buy else book.best_bid
            failed = risk.check(inst, price, qty, book.last_price, ref)
            if failed is not None:
                return self._reject(in_seq, ts, account, coid, failed[0], failed[1], symbol)
        cap = self._max_open
        if cap is not None and tif == GTC:
            failed = risk.check_open_orders(cap, self.orders.open_count(account))
            if failed is not None:
                return self._reject(in_seq, ts, account, coid, failed[0], failed[1], symbol)
        try:
            wallet = self._wallet_map[account]
        except KeyError:
            wallet = self.wallets.get(account)
        if buy:
            asset = inst.currency
            need = 0 if price is None else price * qty * inst.cash_per_tick
        else:
            asset = symbol
            need = qty
        if need:
            avail = wallet.avail
            try:
                have = avail[asset]
            except KeyError:
                have = 0
            if have < need:
                return self._reject(
                    in_seq,
                    ts,
                    account,
                    coid,
                    INSUFFICIENT_FUNDS,
                    messages.insufficient(need, have, asset, inst),
                    symbol,
                )
            avail[asset] = have - need
            reserved = wallet.reserved
            try:
                reserved[asset] += need
            except KeyError:
                reserved[asset] = need

        # accepted: register the order (OrderManager's maps, inlined)
        account = wallet.account  # the interned spelling
        oid = self._next_order_id
        if oid == self._compact_at:
            self._compact(oid)
        self._next_order_id = oid + 1
        order = _object_new(Order)  # Order.__init__, inlined
        order.order_id = oid
        order.account = account
        order.client_order_id = coid
        order.symbol = symbol
        order.side = side
        order.type = otype
        order.tif = tif
        order.price = price
        order.qty = order.open_qty = qty
        order.filled = 0
        order.ts = ts
        order.prev = order.next = order.level = None
        self._by_id_append(order)
        if clients is None:
            clients = self._by_client[account] = {}
            self._executions[account] = []
        clients[coid] = order
        sq = self._sq
        seq = sq.out_seq = sq.out_seq + 1
        out: list[Event] = [
            _tuple_new(
                Accepted,
                (seq, in_seq, ts, oid, account, coid, symbol, side, otype, price, qty, tif),
            )
        ]
        if tif == FOK and not book.can_fill(side, price, qty):
            reason = REASON_FOK
        else:
            if buy:
                best = book.best_ask
                if best is not None and (price is None or best <= price):
                    match_buy(self, order, book, inst, wallet, out, in_seq, ts)
            else:
                best = book.best_bid
                if best is not None and (price is None or best >= price):
                    match_sell(self, order, book, inst, wallet, out, in_seq, ts)
            remaining = order.open_qty
            if not remaining:
                seq = sq.out_seq = sq.out_seq + 1
                out.append(_tuple_new(Done, (seq, in_seq, ts, oid, account, coid, symbol)))
                return out
            if tif == GTC:
                # rest at the back of its level (an existing one inline; book.add makes one)
                level = (book.bids if buy else book.asks).get(price)  # type: ignore[arg-type]
                if level is None:
                    book.add(order)
                else:
                    tail = level.tail
                    assert tail is not None  # an empty level leaves its book at once
                    order.level = level
                    order.prev = tail
                    tail.next = order
                    level.tail = order
                    level.qty += remaining
                    level.count += 1
                opened = self._open_map
                try:
                    opened[account] += 1
                except KeyError:
                    opened[account] = 1
                return out
            reason = REASON_IOC if price is not None else MARKET_UNFILLED
        # cancel the unfilled rest of an IOC, FOK or market order and release its reservation
        remaining = order.open_qty
        order.open_qty = 0
        if not buy:
            wallet.reserved[symbol] -= remaining
            avail = wallet.avail
            avail[symbol] = avail.get(symbol, 0) + remaining
        elif price is not None:
            amount = price * remaining * inst.cash_per_tick
            asset = inst.currency
            wallet.reserved[asset] -= amount
            avail = wallet.avail
            avail[asset] = avail.get(asset, 0) + amount
        seq = sq.out_seq = sq.out_seq + 1
        out.append(
            _tuple_new(Cancelled, (seq, in_seq, ts, oid, account, coid, symbol, remaining, reason))
        )
        return out
