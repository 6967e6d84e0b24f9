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

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from engine import risk
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
    UNKNOWN_ORDER,
    UNKNOWN_SYMBOL,
    USER,
    Accepted,
    Cancelled,
    Done,
    Event,
    Rejected,
    Replaced,
)
from engine.instruments import BAND_DECIMALS, Instrument
from engine.matching import match_buy, match_sell
from engine.orders import Order, OrderManager
from engine.sequencer import Sequencer, wall_clock_us
from engine.units import CASH_SCALE, parse_cash, parse_decimal
from engine.wallet import Wallets

_MAX_INT = 2**63 - 1  # the JSON form carries 64-bit integers
_tuple_new = tuple.__new__  # builds an event without the NamedTuple's Python-level __new__


@dataclass(frozen=True, slots=True, kw_only=True)
class EngineConfig:
    """``max_open_orders_per_account``: resting orders one account may have at once (``None``
    for no limit); a new GTC limit order beyond it is rejected ``risk_max_open_orders``."""

    max_open_orders_per_account: int | None = None


class JournalSink(Protocol):
    """Receives every input after it is stamped and before it is processed. Replaying the
    recorded ``(in_seq, ts, cmd)`` through ``Engine.submit_sequenced`` of a fresh engine gives
    byte-identical events and the same ``state_hash``."""

    def append(self, in_seq: int, ts: int, cmd: Command) -> None: ...


Handler = Callable[[Any, int, int], list[Event]]


class Engine:
    """The matching engine. See ``docs/engine.md`` for the semantics."""

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
        self._sq = Sequencer(clock)
        self._journal = journal
        self._next_order_id = 1
        self._next_trade_id = 1
        self._handlers: dict[type, Handler] = {
            NewOrder: self._new,
            CancelOrder: self._cancel,
            ReplaceOrder: self._replace,
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
        handler = self._handlers.get(type(cmd))
        if handler is None:
            cmd = Malformed(f"not a command: {type(cmd).__name__}")
            handler = self._handlers[Malformed]
        sq = self._sq
        in_seq = sq.in_seq = sq.in_seq + 1
        ts = cmd.ts
        if ts is None:
            ts = sq.clock()
        elif type(ts) is not int or ts < 0 or ts > _MAX_INT:
            cmd = Malformed(
                "field 'ts' must be a non-negative integer",
                getattr(cmd, "account", None),
                getattr(cmd, "client_order_id", None),
            )
            handler = self._handlers[Malformed]
            ts = sq.clock()
        journal = self._journal
        if journal is not None:
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
        and the FIFO of each), every order and every wallet."""
        h = hashlib.sha256()
        upd = h.update
        sq = self._sq
        upd(repr(("counters", sq.in_seq, sq.out_seq, self._next_order_id)).encode())
        upd(repr(self._next_trade_id).encode())
        for symbol in sorted(self.instruments):
            i = self.instruments[symbol]
            upd(
                repr(
                    (symbol, i.tick, i.lot, i.currency, i.max_qty, i.max_notional, i.band)
                ).encode()
            )
            book = self._books[symbol]
            upd(repr(("last", book.last_price)).encode())
            for side in (BUY, SELL):
                for level in book.levels(side):
                    ids = [o.order_id for o in level.orders()]
                    upd(repr((side, level.price, level.qty, level.count, ids)).encode())
        for o in self.orders.all_orders():
            upd(
                repr(
                    (
                        o.order_id,
                        o.account,
                        o.client_order_id,
                        o.symbol,
                        o.side,
                        o.type,
                        o.tif,
                        o.price,
                        o.qty,
                        o.open_qty,
                        o.filled,
                        o.status,
                        o.ts,
                    )
                ).encode()
            )
        for account in self.wallets.accounts():
            upd(repr((account, self.wallets.balances(account))).encode())
        return h.hexdigest()

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
        return [
            Rejected(
                seq,
                in_seq,
                ts,
                account if type(account) is str else None,
                coid if type(coid) is str else None,
                reason,
                message,
                symbol if type(symbol) is str else None,
            )
        ]

    def _malformed(self, cmd: Malformed, in_seq: int, ts: int) -> list[Event]:
        reason = cmd.reason if type(cmd.reason) is str and cmd.reason else MALFORMED
        message = cmd.message if type(cmd.message) is str else repr(cmd.message)
        return self._reject(in_seq, ts, cmd.account, cmd.client_order_id, reason, message)

    def _release(self, order: Order, inst: Instrument) -> None:
        """Return what the open rest of ``order`` reserved to its wallet."""
        wallet = self.wallets._wallets[order.account]
        open_qty = order.open_qty
        if order.side == BUY:
            if order.price is None:
                return  # a market buy pays from available cash as it fills
            asset = inst.currency
            amount = order.price * open_qty * inst.cash_per_tick
        else:
            asset = order.symbol
            amount = open_qty
        if amount:
            reserved = wallet.reserved
            reserved[asset] -= amount
            avail = wallet.avail
            avail[asset] = avail.get(asset, 0) + amount

    def _finish(
        self, order: Order, inst: Instrument, reason: str, out: list[Event], in_seq: int, ts: int
    ) -> None:
        """Cancel the open rest of an order that is not in a book (IOC, FOK, market)."""
        self._release(order, inst)
        remaining = order.open_qty
        order.open_qty = 0
        sq = self._sq
        seq = sq.out_seq = sq.out_seq + 1
        out.append(
            _tuple_new(
                Cancelled,
                (
                    seq,
                    in_seq,
                    ts,
                    order.order_id,
                    order.account,
                    order.client_order_id,
                    order.symbol,
                    remaining,
                    reason,
                ),
            )
        )

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
        symbol = cmd.symbol

        def bad(reason: str, message: str) -> list[Event]:
            return self._reject(in_seq, ts, None, None, reason, message, symbol)

        if type(symbol) is not str or not symbol:
            return bad(MALFORMED, "field 'symbol' must be a non-empty string")
        currency = cmd.currency
        if type(currency) is not str or not currency:
            return bad(MALFORMED, "field 'currency' must be a non-empty string")
        if symbol in self._currencies or currency in self.instruments or symbol == currency:
            return bad(MALFORMED, f"symbol {symbol!r} clashes with a currency of the same name")
        lot = cmd.lot
        if type(lot) is not int or lot <= 0:
            return bad(BAD_QTY, "field 'lot' must be a positive integer")
        max_qty = cmd.max_qty
        if max_qty is not None and (type(max_qty) is not int or max_qty <= 0):
            return bad(BAD_QTY, "field 'maxQty' must be a positive integer")
        max_notional = None
        if cmd.max_notional is not None:
            max_notional = parse_cash(cmd.max_notional)
            if max_notional is None or max_notional <= 0:
                return bad(BAD_PRICE, "field 'maxNotional' must be a positive decimal string")
        band = None
        if cmd.band is not None:
            band = parse_decimal(cmd.band, BAND_DECIMALS)
            if band is None:
                return bad(MALFORMED, "field 'band' must be a decimal fraction such as \"0.1\"")
        tick = cmd.tick
        try:
            if type(tick) is not str:
                raise ValueError(tick)
            inst = Instrument.define(
                symbol=symbol,
                tick=tick,
                lot=lot,
                currency=currency,
                max_qty=max_qty,
                max_notional=max_notional,
                band=band,
            )
        except ValueError:
            return bad(BAD_PRICE, f"field 'tick' must be a positive decimal string, not {tick!r}")
        old = self.instruments.get(symbol)
        if old is not None:
            if old == inst:
                return []  # the same definition again: nothing to do
            return bad(MALFORMED, f"symbol {symbol!r} is already defined differently")
        self.instruments[symbol] = inst
        book = self._books[symbol] = OrderBook(symbol)
        self._markets[symbol] = (inst, book, risk.has_limits(inst))
        self._currencies.add(currency)
        return []

    def _deposit(self, cmd: Deposit, in_seq: int, ts: int) -> list[Event]:
        account, asset, amount = cmd.account, cmd.asset, cmd.amount
        if type(account) is not str or not account:
            return self._reject(
                in_seq, ts, None, None, MALFORMED, "field 'account' must be a string"
            )
        if type(asset) is not str or not asset:
            return self._reject(
                in_seq, ts, account, None, MALFORMED, "field 'asset' must be a string"
            )
        if asset in self._currencies:
            if type(amount) is str:
                units = parse_cash(amount)
            elif type(amount) is int:
                units = amount * CASH_SCALE
            else:
                units = None
            if units is None or units <= 0:
                return self._reject(
                    in_seq, ts, account, None, BAD_QTY, f"bad cash amount {amount!r}", asset
                )
        elif asset in self.instruments:
            if type(amount) is not int or amount <= 0:
                return self._reject(
                    in_seq,
                    ts,
                    account,
                    None,
                    BAD_QTY,
                    f"a share deposit needs a positive integer amount, not {amount!r}",
                    asset,
                )
            units = amount
        else:
            return self._reject(
                in_seq, ts, account, None, UNKNOWN_SYMBOL, f"unknown asset {asset!r}", asset
            )
        self.wallets.get(account).credit(asset, units)
        return []

    # -- orders -----------------------------------------------------------------------------

    def _new(self, cmd: NewOrder, in_seq: int, ts: int) -> list[Event]:
        account, coid, symbol, side, otype, price_text, qty, tif, _ = cmd
        market = self._markets.get(symbol) if type(symbol) is str else None
        if market is None:
            return self._reject(
                in_seq, ts, account, coid, UNKNOWN_SYMBOL, f"unknown symbol {symbol!r}", symbol
            )
        inst, book, limited = market
        if type(account) is not str or type(coid) is not str or not account or not coid:
            return self._reject(
                in_seq, ts, account, coid, MALFORMED, "account and clientOrderId are required"
            )
        if side != BUY and side != SELL:
            return self._reject(in_seq, ts, account, coid, MALFORMED, f"bad side {side!r}", symbol)
        if otype == LIMIT:
            if tif != GTC and tif != IOC and tif != FOK:
                return self._reject(
                    in_seq, ts, account, coid, MALFORMED, f"bad tif {tif!r}", symbol
                )
            price = inst._ticks_memo.get(price_text, -1) if type(price_text) is str else None
            if price == -1:
                price = inst.ticks(price_text)
            if price is None:
                return self._reject(
                    in_seq,
                    ts,
                    account,
                    coid,
                    BAD_PRICE,
                    f"price {price_text!r} is not a positive multiple of the tick {inst.tick}",
                    symbol,
                )
        elif otype == MARKET:
            if price_text is not None:
                return self._reject(
                    in_seq, ts, account, coid, BAD_PRICE, "a market order has no price", symbol
                )
            price = None
            tif = IOC
        else:
            return self._reject(
                in_seq, ts, account, coid, MALFORMED, f"bad order type {otype!r}", symbol
            )
        if type(qty) is not int or qty <= 0 or qty % inst.lot or qty > _MAX_INT:
            return self._reject(
                in_seq,
                ts,
                account,
                coid,
                BAD_QTY,
                f"qty {qty!r} is not a positive multiple of the lot {inst.lot}",
                symbol,
            )
        clients = self._by_client.get(account)
        if clients is not None and coid in clients:
            return self._reject(
                in_seq,
                ts,
                account,
                coid,
                DUPLICATE_ORDER,
                f"clientOrderId {coid!r} was already used by this account",
                symbol,
            )
        if limited:
            ref = book.last_price
            if ref is None:
                ref = book.best_ask if side == BUY else book.best_bid
            failed = risk.check(inst, price, qty, book.last_price, ref)
            if failed is not None:
                return self._reject(in_seq, ts, account, coid, failed[0], failed[1], symbol)
        cap = self._max_open
        if cap is not None and tif == GTC:
            failed = risk.check_open_orders(cap, self.orders.open_count(account))
            if failed is not None:
                return self._reject(in_seq, ts, account, coid, failed[0], failed[1], symbol)
        wallet = self._wallet_map.get(account)
        if wallet is None:
            wallet = self.wallets.get(account)
        if side == BUY:
            if price is not None:
                asset = inst.currency
                need = price * qty * inst.cash_per_tick
            else:
                asset, need = inst.currency, 0
        else:
            asset, need = symbol, qty
        if need:
            avail = wallet.avail
            have = avail.get(asset, 0)
            if have < need:
                return self._reject(
                    in_seq,
                    ts,
                    account,
                    coid,
                    INSUFFICIENT_FUNDS,
                    f"needs {need} {asset} units, {have} available",
                    symbol,
                )
            avail[asset] = have - need
            reserved = wallet.reserved
            reserved[asset] = reserved.get(asset, 0) + need

        # accepted: register the order (OrderManager's maps, inlined)
        account = wallet.account  # the interned spelling
        oid = self._next_order_id
        self._next_order_id = oid + 1
        order = Order(oid, account, coid, symbol, side, otype, tif, price, qty, ts)
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
        if tif == FOK and not self._fok_fillable(book, side, price, qty):
            self._finish(order, inst, REASON_FOK, out, in_seq, ts)
            return out
        if side == BUY:
            best = book.best_ask
            if best is not None and (price is None or best <= price):
                match_buy(self, order, book, inst, wallet, out, in_seq, ts)
                if not order.open_qty:
                    self._done(order, out, in_seq, ts)
                    return out
        else:
            best = book.best_bid
            if best is not None and (price is None or best >= price):
                match_sell(self, order, book, inst, wallet, out, in_seq, ts)
                if not order.open_qty:
                    self._done(order, out, in_seq, ts)
                    return out
        if tif == GTC:
            book.add(order)
            opened = self._open_map
            opened[account] = opened.get(account, 0) + 1
        else:
            self._finish(
                order, inst, REASON_IOC if price is not None else MARKET_UNFILLED, out, in_seq, ts
            )
        return out

    @staticmethod
    def _fok_fillable(book: OrderBook, side: str, price: int | None, qty: int) -> bool:
        """Whether the opposite side holds ``qty`` at prices ``price`` accepts. Walks the
        crossing prices tick by tick from the best when that range is smaller than the side,
        else scans the side's levels."""
        assert price is not None
        need = qty
        if side == BUY:
            levels = book.asks
            best = book.best_ask
            if best is None or best > price:
                return False
            if price - best < len(levels):
                get = levels.get
                for p in range(best, price + 1):
                    level = get(p)
                    if level is not None:
                        need -= level.qty
                        if need <= 0:
                            return True
                return False
            for level_price, level in levels.items():
                if level_price <= price:
                    need -= level.qty
                    if need <= 0:
                        return True
        else:
            levels = book.bids
            best = book.best_bid
            if best is None or best < price:
                return False
            if best - price < len(levels):
                get = levels.get
                for p in range(best, price - 1, -1):
                    level = get(p)
                    if level is not None:
                        need -= level.qty
                        if need <= 0:
                            return True
                return False
            for level_price, level in levels.items():
                if level_price >= price:
                    need -= level.qty
                    if need <= 0:
                        return True
        return False

    def _open_order(
        self, cmd: CancelOrder | ReplaceOrder, in_seq: int, ts: int
    ) -> Order | list[Event]:
        account, coid = cmd.account, cmd.client_order_id
        if type(account) is not str or type(coid) is not str:
            return self._reject(
                in_seq, ts, account, coid, MALFORMED, "account and clientOrderId are required"
            )
        clients = self._by_client.get(account)
        order = None if clients is None else clients.get(coid)
        if order is None:
            return self._reject(
                in_seq, ts, account, coid, UNKNOWN_ORDER, f"no order {coid!r} for this account"
            )
        if order.level is None:
            return self._reject(
                in_seq,
                ts,
                account,
                coid,
                UNKNOWN_ORDER,
                f"order {coid!r} is {order.status}, not open",
                order.symbol,
            )
        return order

    def _cancel(self, cmd: CancelOrder, in_seq: int, ts: int) -> list[Event]:
        account, coid, _ = cmd
        clients = self._by_client.get(account) if type(account) is str else None
        order = clients.get(coid) if clients is not None and type(coid) is str else None
        if order is None or order.level is None:
            found = self._open_order(cmd, in_seq, ts)
            assert type(found) is list
            return found
        self._markets[order.symbol][1].remove(order)
        self._open_map[order.account] -= 1
        # release what the open rest reserved
        open_qty = order.open_qty
        wallet = self._wallet_map[order.account]
        if order.side == BUY:
            inst = self.instruments[order.symbol]
            asset = inst.currency
            amount = order.price * open_qty * inst.cash_per_tick  # type: ignore[operator]
        else:
            asset = order.symbol
            amount = open_qty
        wallet.reserved[asset] -= amount
        avail = wallet.avail
        avail[asset] = avail.get(asset, 0) + amount
        order.open_qty = 0
        sq = self._sq
        seq = sq.out_seq = sq.out_seq + 1
        return [
            _tuple_new(
                Cancelled,
                (
                    seq,
                    in_seq,
                    ts,
                    order.order_id,
                    order.account,
                    coid,
                    order.symbol,
                    open_qty,
                    USER,
                ),
            )
        ]

    def _replace(self, cmd: ReplaceOrder, in_seq: int, ts: int) -> list[Event]:
        found = self._open_order(cmd, in_seq, ts)
        if type(found) is list:
            return found
        assert isinstance(found, Order)
        order = found
        account, coid, symbol = order.account, order.client_order_id, order.symbol
        inst = self.instruments[symbol]
        old_price = order.price
        assert old_price is not None
        if cmd.price is None and cmd.qty is None:
            return self._reject(
                in_seq, ts, account, coid, MALFORMED, "replace needs price and/or qty", symbol
            )
        price = old_price
        if cmd.price is not None:
            new_price = inst.ticks(cmd.price)
            if new_price is None:
                return self._reject(
                    in_seq,
                    ts,
                    account,
                    coid,
                    BAD_PRICE,
                    f"price {cmd.price!r} is not a positive multiple of the tick {inst.tick}",
                    symbol,
                )
            price = new_price
        old_qty = order.open_qty
        qty = old_qty if cmd.qty is None else cmd.qty
        if type(qty) is not int or qty <= 0 or qty % inst.lot or qty > _MAX_INT:
            return self._reject(
                in_seq,
                ts,
                account,
                coid,
                BAD_QTY,
                f"qty {qty!r} is not a positive multiple of the lot {inst.lot}",
                symbol,
            )
        book, limited = self._markets[symbol][1:]
        if limited:
            failed = risk.check(
                inst, price, qty, book.last_price, None, check_band=price != old_price
            )
            if failed is not None:
                return self._reject(in_seq, ts, account, coid, failed[0], failed[1], symbol)
        wallet = self.wallets.get(account)
        if order.side == BUY:
            asset = inst.currency
            cpt = inst.cash_per_tick
            delta = price * qty * cpt - old_price * old_qty * cpt
        else:
            asset = symbol
            delta = qty - old_qty
        if delta > 0 and not wallet.reserve(asset, delta):
            return self._reject(
                in_seq,
                ts,
                account,
                coid,
                INSUFFICIENT_FUNDS,
                f"needs {delta} more {asset} units, {wallet.available(asset)} available",
                symbol,
            )
        if delta < 0:
            wallet.release(asset, -delta)
        keep = price == old_price and qty <= old_qty
        if keep:
            level = order.level
            assert level is not None
            level.qty -= old_qty - qty
            order.open_qty = qty
        else:
            book.remove(order)
            order.price = price
            order.open_qty = qty
        order.qty = order.filled + qty
        sq = self._sq
        seq = sq.out_seq = sq.out_seq + 1
        out: list[Event] = [
            Replaced(seq, in_seq, ts, order.order_id, account, coid, symbol, price, qty, keep)
        ]
        if keep:
            return out
        if order.side == BUY:
            best = book.best_ask
            if best is not None and best <= price:
                match_buy(self, order, book, inst, wallet, out, in_seq, ts)
        else:
            best = book.best_bid
            if best is not None and best >= price:
                match_sell(self, order, book, inst, wallet, out, in_seq, ts)
        if order.open_qty:
            book.add(order)
        else:
            self.orders.close(order)
            self._done(order, out, in_seq, ts)
        return out
