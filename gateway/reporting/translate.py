"""Records to rows: the one translation from engine output to the reporting tables.

:class:`Translator` is pure (no I/O): it turns a batch of offers into :class:`Rows`, the
parameter tuples of each statement of :mod:`gateway.reporting.schema`. Offers at or before the
stream's progress mark (``last_in_seq``) are skipped, which makes a replay of the same events a
no-op. Order rows are folded per batch: an order accepted in the batch is inserted with its
final state, an older one gets one ``UPDATE`` with the sum of its changes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from engine.commands import Deposit
from engine.events import Accepted, Cancelled, Done, Rejected, Replaced, Trade
from engine.instruments import Instrument
from engine.units import CASH_SCALE, format_scaled, parse_cash
from gateway.reporting.records import CandleClosed, Funded, Listed, Offer
from gateway.reporting.schema import split

Row = tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class Grid:
    """What the translator needs of an instrument (``price_text`` memoised: a market trades
    at few distinct prices)."""

    currency: str
    price_decimals: int
    tick_units: int
    cash_per_tick: int
    _texts: dict[int, str] = field(default_factory=dict, compare=False, repr=False)

    def price_text(self, ticks: int) -> str:
        texts = self._texts
        text = texts.get(ticks)
        if text is None:
            if len(texts) >= 65_536:
                texts.clear()
            text = texts[ticks] = format_scaled(ticks * self.tick_units, self.price_decimals)
        return text


@dataclass(slots=True)
class Rows:
    """One batch's rows, per statement, and the progress mark after it."""

    instruments: list[Row] = field(default_factory=list)
    orders: list[Row] = field(default_factory=list)
    order_updates: list[Row] = field(default_factory=list)
    order_events: list[Row] = field(default_factory=list)
    executions: list[Row] = field(default_factory=list)
    balance_changes: list[Row] = field(default_factory=list)
    candles: list[Row] = field(default_factory=list)
    last_in_seq: int = 0
    last_seq: int = 0

    def count(self) -> int:
        return (
            len(self.instruments)
            + len(self.orders)
            + len(self.order_updates)
            + len(self.order_events)
            + len(self.executions)
            + len(self.balance_changes)
            + len(self.candles)
        )


class _Change:
    """The folded changes of an order written before this batch."""

    __slots__ = ("d_filled", "open_abs", "open_delta", "price", "qty_plus", "replaced", "seq", "ts")

    def __init__(self) -> None:
        self.d_filled = 0
        self.open_abs: int | None = None
        self.open_delta = 0
        self.replaced = 0
        self.qty_plus = 0  # qty = filled (old) + qty_plus after the last replace
        self.price: str | None = None
        self.seq = 0
        self.ts = 0

    def fill(self, qty: int) -> None:
        self.d_filled += qty
        if self.open_abs is None:
            self.open_delta -= qty
        else:
            self.open_abs -= qty


class Batch:
    """A batch being translated: its rows so far and the orders it touched."""

    __slots__ = ("changes", "last_in_seq", "last_seq", "mark", "new_orders", "rows")

    def __init__(self, mark: int, last_seq: int) -> None:
        self.rows = Rows()
        self.mark = mark  # offers at or before this in_seq are already written
        self.last_in_seq = mark
        self.last_seq = last_seq
        self.new_orders: dict[int, list[Any]] = {}
        self.changes: dict[int, _Change] = {}


def listed(in_seq: int, ts: int, inst: Instrument) -> Listed:
    """The :class:`Listed` record of an instrument the engine defined."""
    return Listed(
        in_seq,
        ts,
        inst.symbol,
        inst.currency,
        inst.tick,
        inst.price_decimals,
        inst.tick_units,
        inst.cash_per_tick,
    )


def funded(in_seq: int, ts: int, cmd: Deposit, is_share: bool) -> Funded:
    """The :class:`Funded` record of a deposit the engine credited."""
    amount = cmd.amount
    if is_share:
        units = int(amount)
    elif type(amount) is int:
        units = amount * CASH_SCALE
    else:
        parsed = parse_cash(amount)
        units = parsed if parsed is not None else 0
    return Funded(in_seq, ts, cmd.account, cmd.asset, units)


class Translator:
    """Offers to rows for one stream (``stream`` is its id), from progress mark ``last_in_seq``
    on. ``grids``: the stream's instruments known so far (from the database at start)."""

    def __init__(
        self,
        stream: int,
        *,
        last_in_seq: int = 0,
        last_seq: int = 0,
        grids: Mapping[str, Grid] | None = None,
    ) -> None:
        self.stream = stream
        self.last_in_seq = last_in_seq
        self.last_seq = last_seq
        self.grids: dict[str, Grid] = dict(grids or {})

    def translate(self, offers: Iterable[Offer]) -> Rows:
        """The rows of ``offers`` (one batch), the progress mark moved past them."""
        batch = self.begin()
        self.add(batch, offers)
        return self.finish(batch)

    def begin(self) -> Batch:
        """A new batch: :meth:`add` offers to it (in several steps if wished), then
        :meth:`finish` it. The translator's mark moves only at ``finish``."""
        return Batch(self.last_in_seq, self.last_seq)

    def add(self, batch: Batch, offers: Iterable[Offer]) -> None:
        rows = batch.rows
        stream = self.stream
        mark = batch.mark
        new_orders = batch.new_orders
        changes = batch.changes
        last_in_seq, last_seq = batch.last_in_seq, batch.last_seq
        for offer in offers:
            for rec in offer:
                kind = type(rec)
                if kind is CandleClosed:
                    assert isinstance(rec, CandleClosed)
                    rows.candles.append(
                        (rec.symbol, rec.resolution, int(rec.candle["t"]), _json(rec.candle))
                    )
                    continue
                in_seq: int = rec.in_seq  # type: ignore[union-attr]
                if in_seq <= mark:
                    continue
                last_in_seq = in_seq
                if kind is Listed:
                    self._listed(rec, rows)  # type: ignore[arg-type]
                elif kind is Funded:
                    assert isinstance(rec, Funded)
                    rows.balance_changes.append(
                        (
                            stream,
                            rec.in_seq,
                            "deposit",
                            rec.account,
                            rec.asset,
                            *split(rec.amount),
                            None,
                            rec.ts,
                        )
                    )
                else:
                    seq: int = rec.seq  # type: ignore[union-attr]
                    last_seq = seq
                    self._event(rec, rows, new_orders, changes)
        batch.last_in_seq, batch.last_seq = last_in_seq, last_seq

    def finish(self, batch: Batch) -> Rows:
        rows = batch.rows
        stream = self.stream
        for order in batch.new_orders.values():
            rows.orders.append(tuple(order))
        for order_id, c in batch.changes.items():
            rows.order_updates.append(
                (
                    stream,
                    order_id,
                    c.d_filled,
                    c.open_abs,
                    c.open_delta,
                    c.replaced,
                    c.qty_plus,
                    c.price,
                    c.ts,
                    c.seq,
                )
            )
        rows.last_in_seq = self.last_in_seq = batch.last_in_seq
        rows.last_seq = self.last_seq = batch.last_seq
        return rows

    def _listed(self, rec: Listed, rows: Rows) -> None:
        self.grids[rec.symbol] = Grid(
            rec.currency, rec.price_decimals, rec.tick_units, rec.cash_per_tick
        )
        rows.instruments.append(
            (
                self.stream,
                rec.symbol,
                rec.currency,
                rec.tick,
                rec.price_decimals,
                rec.tick_units,
                rec.cash_per_tick,
                rec.in_seq,
            )
        )

    def _event(
        self,
        ev: Any,
        rows: Rows,
        new_orders: dict[int, list[Any]],
        changes: dict[int, _Change],
    ) -> None:
        stream = self.stream
        kind = type(ev)
        if kind is Trade:
            self._trade(ev, rows, new_orders, changes)
            return
        if kind is Rejected:
            rows.order_events.append(
                (
                    stream,
                    ev.seq,
                    0,
                    ev.account or "",
                    ev.client_order_id,
                    ev.symbol,
                    "rejected",
                    None,
                    None,
                    ev.reason,
                    ev.ts,
                )
            )
            return
        grid = self.grids.get(ev.symbol)
        if kind is Accepted:
            price = None if ev.price is None or grid is None else grid.price_text(ev.price)
            # orders row: stream .. tif, price, qty, open_qty, filled, ts, updated_ts, last_seq
            new_orders[ev.order_id] = [
                stream,
                ev.order_id,
                ev.account,
                ev.client_order_id,
                ev.symbol,
                ev.side,
                ev.type,
                ev.tif,
                price,
                ev.qty,
                ev.qty,
                0,
                ev.ts,
                ev.ts,
                ev.seq,
            ]
            rows.order_events.append(
                (
                    stream,
                    ev.seq,
                    ev.order_id,
                    ev.account,
                    ev.client_order_id,
                    ev.symbol,
                    "accepted",
                    price,
                    ev.qty,
                    None,
                    ev.ts,
                )
            )
            return
        order = new_orders.get(ev.order_id)
        change = None
        if order is None:
            change = changes.get(ev.order_id)
            if change is None:
                change = changes[ev.order_id] = _Change()
            change.seq, change.ts = ev.seq, ev.ts
        else:
            order[13], order[14] = ev.ts, ev.seq
        price = None
        qty: int | None = None
        reason = None
        if kind is Replaced:
            price = None if grid is None else grid.price_text(ev.price)
            qty = ev.qty
            if order is not None:
                order[8], order[10], order[9] = price, ev.qty, order[11] + ev.qty
            else:
                assert change is not None
                change.open_abs, change.open_delta = ev.qty, 0
                change.replaced, change.qty_plus = 1, change.d_filled + ev.qty
                change.price = price
            event = "replaced"
        elif kind is Cancelled:
            qty, reason = ev.remaining, ev.reason
            if order is not None:
                order[10] = 0
            else:
                assert change is not None
                change.open_abs, change.open_delta = 0, 0
            event = "cancelled"
        elif kind is Done:
            event = "done"
        else:  # pragma: no cover - the Event union is closed
            raise TypeError(f"not an engine event: {ev!r}")
        rows.order_events.append(
            (
                stream,
                ev.seq,
                ev.order_id,
                ev.account,
                ev.client_order_id,
                ev.symbol,
                event,
                price,
                qty,
                reason,
                ev.ts,
            )
        )

    def _trade(
        self,
        t: Trade,
        rows: Rows,
        new_orders: dict[int, list[Any]],
        changes: dict[int, _Change],
    ) -> None:
        stream = self.stream
        grid = self.grids.get(t.symbol)
        currency = grid.currency if grid is not None else ""
        price = grid.price_text(t.price) if grid is not None else str(t.price)
        notional = t.price * t.qty * (grid.cash_per_tick if grid is not None else 0)
        for side, account, order_id, coid in (
            ("buy", t.buy_account, t.buy_order_id, t.buy_client_order_id),
            ("sell", t.sell_account, t.sell_order_id, t.sell_client_order_id),
        ):
            liquidity = "taker" if side == t.aggressor else "maker"
            rows.executions.append(
                (
                    stream,
                    t.trade_id,
                    side,
                    t.seq,
                    account,
                    order_id,
                    coid,
                    t.symbol,
                    price,
                    t.price,
                    t.qty,
                    liquidity,
                    currency,
                    *split(notional),
                    t.ts,
                )
            )
            rows.order_events.append(
                (
                    stream,
                    t.seq,
                    order_id,
                    account,
                    coid,
                    t.symbol,
                    "trade",
                    price,
                    t.qty,
                    None,
                    t.ts,
                )
            )
            sign = 1 if side == "buy" else -1
            rows.balance_changes.append(
                (stream, t.seq, side, account, t.symbol, *split(sign * t.qty), t.trade_id, t.ts)
            )
            rows.balance_changes.append(
                (stream, t.seq, side, account, currency, *split(-sign * notional), t.trade_id, t.ts)
            )
            order = new_orders.get(order_id)
            if order is not None:
                order[11] += t.qty
                order[10] -= t.qty
                order[13], order[14] = t.ts, t.seq
            else:
                change = changes.get(order_id)
                if change is None:
                    change = changes[order_id] = _Change()
                change.fill(t.qty)
                change.seq, change.ts = t.seq, t.ts


def _json(obj: dict[str, Any]) -> str:
    return orjson.dumps(obj).decode()
