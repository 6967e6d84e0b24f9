"""The private ``orders`` streams: one stream per account (internal channel ``orders.<account>``,
wire ``ch`` ``orders``).

Every engine event concerning an account becomes one update on that account's stream, never
conflated: ``accepted``, ``rejected``, ``cancelled``, ``replaced`` and ``done`` as
``engine.codec.event_to_json`` renders them, and for a ``trade`` one *execution record* per side
the account took part in (both, when an account traded with itself). An execution record names
only the account's own order: never the counterparty's account, order or client order id.
A ``rejected`` event without an account (a malformed line) goes nowhere.

The snapshot is ``{"open":[orders]}`` from the ``open_orders(account)`` callable (the engine's
open orders rendered by ``engine.codec.order_to_json``); an empty list without one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from engine.codec import event_to_json, execution_to_json
from engine.events import Event, Trade
from engine.instruments import Instrument
from gateway.channels import ORDERS, orders_channel
from gateway.marketdata.prices import PriceTexts
from gateway.marketdata.sequencing import Sink, Stream

OpenOrders = Callable[[str], list[dict[str, Any]]]


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
        self._texts: dict[str, PriceTexts] = {}  # symbol -> cached price strings

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

    def on_event(self, ev: Event, texts: Mapping[int, str] | None = None) -> None:
        """Publish what ``ev`` means for the accounts it concerns (``texts``: the price
        strings of the event's symbol, when the caller has them).

        Trades become execution records built field by field, exactly as
        :func:`execution_record` builds them (a test checks they are equal, bytes included),
        with the symbol's cached price texts; every other event is ``engine.codec``'s own
        rendering. The publisher calls :meth:`trade` and :meth:`event` directly."""
        if type(ev) is Trade:
            self.trade(ev, self._texts_for(ev.symbol) if texts is None else texts)
        else:
            self.event(ev)

    def _texts_for(self, symbol: str | None) -> Mapping[int, str]:
        texts = self._texts.get(symbol) if symbol is not None else None
        if texts is None:
            inst = self._instruments.get(symbol) if symbol is not None else None
            if inst is None:  # the codec shows plain ticks (not cached: it may come later)
                return PriceTexts(str)
            assert symbol is not None
            texts = self._texts[symbol] = PriceTexts(inst.price_text)
        return texts

    def event(self, ev: Event) -> None:
        """Any event but a trade (accepted, rejected, cancelled, replaced, done): the codec's
        own rendering on the event's account stream; without an account (a malformed line)
        it goes nowhere."""
        account = getattr(ev, "account", None)
        if account is not None:
            data = event_to_json(ev, self._instruments)
            (self._streams.get(account) or self.stream(account)).publish(ev.ts, data)

    def trade(self, ev: Trade, texts: Mapping[int, str]) -> None:
        """One execution record per side (both for a self-trade), buy side first."""
        streams = self._streams
        buy, sell = ev.buy_account, ev.sell_account
        seq, in_seq, ts, trade_id, symbol = ev.seq, ev.in_seq, ev.ts, ev.trade_id, ev.symbol
        price = texts[ev.price]
        qty = ev.qty
        buy_taker = ev.aggressor == "buy"
        (streams.get(buy) or self.stream(buy)).publish(
            ts,
            {
                "event": "trade",
                "seq": seq,
                "inSeq": in_seq,
                "account": buy,
                "tradeId": trade_id,
                "orderId": ev.buy_order_id,
                "clientOrderId": ev.buy_client_order_id,
                "symbol": symbol,
                "side": "buy",
                "price": price,
                "qty": qty,
                "liquidity": "taker" if buy_taker else "maker",
                "ts": ts,
            },
        )
        (streams.get(sell) or self.stream(sell)).publish(
            ts,
            {
                "event": "trade",
                "seq": seq,
                "inSeq": in_seq,
                "account": sell,
                "tradeId": trade_id,
                "orderId": ev.sell_order_id,
                "clientOrderId": ev.sell_client_order_id,
                "symbol": symbol,
                "side": "sell",
                "price": price,
                "qty": qty,
                "liquidity": "maker" if buy_taker else "taker",
                "ts": ts,
            },
        )
