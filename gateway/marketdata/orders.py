"""The private ``orders`` streams: one stream per account (internal channel ``orders.<account>``,
wire ``ch`` ``orders``).

Every engine event concerning an account becomes one update on that account's stream, never
conflated: ``accepted``, ``rejected``, ``cancelled``, ``replaced`` and ``done`` as
``engine.codec.event_to_json`` renders them, and for a ``trade`` one *execution record* per side
the account took part in (both, when an account traded with itself). An execution record names
only the account's own order: never the counterparty's account, order or client order id.
A ``rejected`` event without an account (a malformed line) or with an empty one goes nowhere.

The snapshot is ``{"open":[orders]}`` from the ``open_orders(account)`` callable (the engine's
open orders rendered by ``engine.codec.order_to_json``); an empty list without one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import orjson

from engine.codec import event_to_json, execution_to_json
from engine.events import Accepted, Cancelled, Done, Event, Trade
from engine.instruments import Instrument
from gateway.marketdata.prices import Memo
from gateway.marketdata.sequencing import Sink, Stream
from gateway.wire.channels import ORDERS, orders_channel

OpenOrders = Callable[[str], list[dict[str, Any]]]

_dumps = orjson.dumps
_ACCEPTED = (
    b'{"event":"accepted","seq":%d,"inSeq":%d,"ts":%d,"orderId":%d,"account":%b,'
    b'"clientOrderId":%b,"symbol":%b,"side":%b,"type":%b,"price":%b,"qty":%d,"tif":%b}'
)
_DONE = (
    b'{"event":"done","seq":%d,"inSeq":%d,"ts":%d,"orderId":%d,"account":%b,'
    b'"clientOrderId":%b,"symbol":%b}'
)
_CANCELLED = (
    b'{"event":"cancelled","seq":%d,"inSeq":%d,"ts":%d,"orderId":%d,"account":%b,'
    b'"clientOrderId":%b,"symbol":%b,"remaining":%d,"reason":%b}'
)
_EXECUTION = (
    b'{"event":"trade","seq":%d,"inSeq":%d,"account":%b,"tradeId":%d,"orderId":%d,'
    b'"clientOrderId":%b,"symbol":%b,"side":%b,"price":%b,"qty":%d,"liquidity":%b,"ts":%d}'
)


def execution_record(
    trade: Trade, side: str, instruments: Mapping[str, Instrument]
) -> dict[str, Any]:
    """The ``orders`` message of one side (``buy``/``sell``) of a trade, for that side's
    account: ``event`` ``trade``, the engine's ``seq``/``inSeq``, the account, then
    ``engine.codec.execution_to_json`` (its own order id, client order id, side, liquidity)."""
    account = trade.buy_account if side == "buy" else trade.sell_account
    rec: dict[str, Any] = {
        "event": "trade",
        "seq": trade.seq,
        "inSeq": trade.in_seq,
        "account": account,
    }
    rec.update(execution_to_json(trade, account, instruments, side=side))
    return rec


class OrderStreams:
    """The per-account private streams of one publisher."""

    __slots__ = (
        "_clock",
        "_epoch",
        "_instruments",
        "_json",
        "_open_orders",
        "_sink",
        "_streams",
        "_texts",
    )

    def __init__(
        self,
        epoch: str,
        sink: Sink,
        instruments: Mapping[str, Instrument],
        clock: Callable[[], int],
        open_orders: OpenOrders | None = None,
    ) -> None:
        self._epoch = epoch
        self._sink = sink
        self._instruments = instruments
        self._clock = clock
        self._open_orders = open_orders
        self._streams: dict[str, Stream] = {}
        self._texts: dict[str, Memo[int, bytes]] = {}  # symbol -> JSON price strings
        self._json: Memo[str, bytes] = Memo(_dumps)  # accounts, symbols, sides ... as JSON

    def stream(self, account: str) -> Stream:
        """The account's stream (created on first use, seq 0)."""
        s = self._streams.get(account)
        if s is None:
            open_orders = self._open_orders

            def render() -> dict[str, Any]:
                return {"open": open_orders(account) if open_orders is not None else []}

            s = Stream(
                orders_channel(account),
                self._epoch,
                self._sink,
                render,
                ts=self._clock(),
                wire=ORDERS,
            )
            self._streams[account] = s
        return s

    def get(self, account: str) -> Stream | None:
        """The account's stream if it exists."""
        return self._streams.get(account)

    def channels(self) -> list[str]:
        return [s.channel for s in self._streams.values()]

    def on_event(self, ev: Event, texts: Mapping[int, bytes] | None = None) -> None:
        """Publish what ``ev`` means for the accounts it concerns (``texts``: the JSON price
        strings of the event's symbol, when the caller has them). The publisher calls the
        per-kind methods directly."""
        kind = type(ev)
        if kind is Trade:
            self.trade(ev, self._texts_for(ev.symbol) if texts is None else texts)  # type: ignore[arg-type]
        elif kind is Accepted:
            self.accepted(ev, self._texts_for(ev.symbol) if texts is None else texts)  # type: ignore[arg-type]
        elif kind is Done:
            self.done(ev)  # type: ignore[arg-type]
        elif kind is Cancelled:
            self.cancelled(ev)  # type: ignore[arg-type]
        else:
            self.event(ev)

    def _texts_for(self, symbol: str | None) -> Mapping[int, bytes]:
        texts = self._texts.get(symbol) if symbol is not None else None
        if texts is None:
            inst = self._instruments.get(symbol) if symbol is not None else None
            if inst is None:  # the codec shows plain ticks (not cached: it may come later)
                return Memo(_json_ticks)
            assert symbol is not None
            texts = self._texts[symbol] = price_json(inst)
        return texts

    def _stream(self, account: str) -> Stream:
        return self._streams.get(account) or self.stream(account)

    # Accepted, done, cancelled and trade records are rendered from byte templates (the
    # bytes orjson gives for engine.codec's dicts: a test checks them kind by kind); the rare
    # kinds go through the codec.

    def accepted(self, ev: Accepted, texts: Mapping[int, bytes]) -> None:
        seq, in_seq, ts, oid, account, coid, symbol, side, kind, price, qty, tif = ev
        j = self._json
        data = _ACCEPTED % (
            seq, in_seq, ts, oid, j[account], _dumps(coid), j[symbol], j[side], j[kind],
            b"null" if price is None else texts[price], qty, j[tif],
        )  # fmt: skip
        (self._streams.get(account) or self.stream(account)).publish_encoded(ts, data)

    def done(self, ev: Done) -> None:
        seq, in_seq, ts, oid, account, coid, symbol = ev
        j = self._json
        data = _DONE % (seq, in_seq, ts, oid, j[account], _dumps(coid), j[symbol])
        (self._streams.get(account) or self.stream(account)).publish_encoded(ts, data)

    def cancelled(self, ev: Cancelled) -> None:
        seq, in_seq, ts, oid, account, coid, symbol, remaining, reason = ev
        j = self._json
        data = _CANCELLED % (
            seq, in_seq, ts, oid, j[account], _dumps(coid), j[symbol], remaining, j[reason]
        )  # fmt: skip
        (self._streams.get(account) or self.stream(account)).publish_encoded(ts, data)

    def event(self, ev: Event) -> None:
        """Any event as the codec renders it (rejected, replaced; any kind is correct here)
        on the event's account stream; without an account (a malformed line), or with an
        empty one (a malformed ``account`` field: no client is that account, and
        ``orders.`` has no snapshot), it goes nowhere."""
        account = getattr(ev, "account", None)
        if account:
            self._stream(account).publish(ev.ts, event_to_json(ev, self._instruments))

    def trade(self, ev: Trade, texts: Mapping[int, bytes]) -> None:
        """One execution record per side (both for a self-trade), buy side first."""
        seq, in_seq, ts, trade_id, symbol, price, qty, aggr, boid, soid, buy, sell, bco, sco = ev
        j = self._json
        price_json = texts[price]
        symbol_json = j[symbol]
        buy_taker = aggr == "buy"
        data = _EXECUTION % (
            seq, in_seq, j[buy], trade_id, boid, _dumps(bco), symbol_json, b'"buy"', price_json,
            qty, b'"taker"' if buy_taker else b'"maker"', ts,
        )  # fmt: skip
        (self._streams.get(buy) or self.stream(buy)).publish_encoded(ts, data)
        data = _EXECUTION % (
            seq, in_seq, j[sell], trade_id, soid, _dumps(sco), symbol_json, b'"sell"', price_json,
            qty, b'"maker"' if buy_taker else b'"taker"', ts,
        )  # fmt: skip
        (self._streams.get(sell) or self.stream(sell)).publish_encoded(ts, data)


def price_json(inst: Instrument) -> Memo[int, bytes]:
    """A symbol's prices as JSON strings by ticks (``b'"101.25"'``)."""
    price_text = inst.price_text
    return Memo(lambda ticks: _dumps(price_text(ticks)))


def _json_ticks(ticks: int) -> bytes:
    return _dumps(str(ticks))
