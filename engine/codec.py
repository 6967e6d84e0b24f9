"""The one translation layer between engine values and the spec's JSON-lines form.

``decode_command`` never raises: anything that is not a valid command becomes a
:class:`~engine.commands.Malformed` that the engine answers with a ``rejected`` event.
``event_to_json`` renders events with prices as decimal strings of their instrument.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import orjson

from engine.commands import (
    GTC,
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
    Accepted,
    Cancelled,
    Done,
    Event,
    Rejected,
    Replaced,
    Trade,
)
from engine.instruments import Instrument

if TYPE_CHECKING:
    from engine.orders import Order

_MISSING = object()
_dumps = orjson.dumps


class _Bad(Exception):
    def __init__(self, message: str, reason: str = "malformed") -> None:
        super().__init__(message)
        self.reason = reason


def _str(obj: dict[str, Any], key: str, *, required: bool = True) -> Any:
    value = obj.get(key, _MISSING)
    if value is _MISSING or value is None:
        if required:
            raise _Bad(f"missing field {key!r}")
        return None
    if type(value) is not str or not value:
        raise _Bad(f"field {key!r} must be a non-empty string")
    if len(value) > 128:
        raise _Bad(f"field {key!r} is longer than 128 characters")
    return value


def _int(obj: dict[str, Any], key: str, *, required: bool = True, reason: str = "malformed") -> Any:
    value = obj.get(key, _MISSING)
    if value is _MISSING or value is None:
        if required:
            raise _Bad(f"missing field {key!r}", reason)
        return None
    if type(value) is not int:
        raise _Bad(f"field {key!r} must be an integer", reason)
    return value


def _price(obj: dict[str, Any], key: str = "price") -> Any:
    value = obj.get(key)
    if value is None:
        return None
    if type(value) is not str:
        raise _Bad(f"field {key!r} must be a decimal string", BAD_PRICE)
    return value


def _instrument(o: dict[str, Any], ts: int | None) -> Command:
    notional = o.get("maxNotional")
    band = o.get("band")
    if notional is not None and type(notional) is not str:
        raise _Bad("field 'maxNotional' must be a decimal string")
    if band is not None and type(band) is not str:
        raise _Bad("field 'band' must be a decimal string")
    return DefineInstrument(
        symbol=_str(o, "symbol"),
        tick=_str(o, "tick"),
        lot=_int(o, "lot"),
        currency=_str(o, "currency", required=False) or "USD",
        max_qty=_int(o, "maxQty", required=False),
        max_notional=notional,
        band=band,
        ts=ts,
    )


def _deposit(o: dict[str, Any], ts: int | None) -> Command:
    amount: Any = o.get("amount")
    if type(amount) not in (str, int):
        raise _Bad("field 'amount' must be a decimal string or an integer", BAD_QTY)
    return Deposit(account=_str(o, "account"), asset=_str(o, "asset"), amount=amount, ts=ts)


def _new(o: dict[str, Any], ts: int | None) -> Command:
    return NewOrder(
        account=_str(o, "account"),
        client_order_id=_str(o, "clientOrderId"),
        symbol=_str(o, "symbol"),
        side=_str(o, "side"),
        type=_str(o, "type", required=False) or "limit",
        price=_price(o),
        qty=_int(o, "qty", reason=BAD_QTY),
        tif=_str(o, "tif", required=False) or GTC,
        ts=ts,
    )


def _cancel(o: dict[str, Any], ts: int | None) -> Command:
    return CancelOrder(account=_str(o, "account"), client_order_id=_str(o, "clientOrderId"), ts=ts)


def _replace(o: dict[str, Any], ts: int | None) -> Command:
    return ReplaceOrder(
        account=_str(o, "account"),
        client_order_id=_str(o, "clientOrderId"),
        price=_price(o),
        qty=_int(o, "qty", required=False, reason=BAD_QTY),
        ts=ts,
    )


_DECODERS: dict[str, Callable[[dict[str, Any], int | None], Command]] = {
    "instrument": _instrument,
    "deposit": _deposit,
    "new": _new,
    "cancel": _cancel,
    "replace": _replace,
}


_new_tuple = tuple.__new__


def _fast_new(o: dict[str, Any], ts: int | None) -> Command | None:
    """A ``new`` whose fields are all well-typed, built without the per-field checks' calls;
    ``None`` when any field needs the full path (which gives the error message)."""
    get = o.get
    account = get("account")
    coid = get("clientOrderId")
    symbol = get("symbol")
    side = get("side")
    kind = get("type")
    price = get("price")
    qty = get("qty")
    tif = get("tif")
    if kind is None:
        kind = "limit"
    if tif is None:
        tif = GTC
    if (
        type(account) is str
        and type(coid) is str
        and type(symbol) is str
        and type(side) is str
        and type(kind) is str
        and type(tif) is str
        and type(qty) is int
        and (price is None or type(price) is str)
        and 0 < len(account) <= 128
        and 0 < len(coid) <= 128
        and 0 < len(symbol) <= 128
        and 0 < len(side) <= 128
        and 0 < len(kind) <= 128
        and 0 < len(tif) <= 128
    ):
        return _new_tuple(NewOrder, (account, coid, symbol, side, kind, price, qty, tif, ts))
    return None


def _fast_cancel(o: dict[str, Any], ts: int | None) -> Command | None:
    account = o.get("account")
    coid = o.get("clientOrderId")
    if type(account) is str and type(coid) is str and 0 < len(account) <= 128 >= len(coid) > 0:
        return _new_tuple(CancelOrder, (account, coid, ts))
    return None


def _fast_replace(o: dict[str, Any], ts: int | None) -> Command | None:
    get = o.get
    account = get("account")
    coid = get("clientOrderId")
    price = get("price")
    qty = get("qty")
    if (
        type(account) is str
        and type(coid) is str
        and (price is None or type(price) is str)
        and (qty is None or type(qty) is int)
        and 0 < len(account) <= 128
        and 0 < len(coid) <= 128
    ):
        return _new_tuple(ReplaceOrder, (account, coid, price, qty, ts))
    return None


_FAST: dict[Any, Callable[[dict[str, Any], int | None], Command | None]] = {
    "new": _fast_new,
    "cancel": _fast_cancel,
    "replace": _fast_replace,
}


def command_from_obj(obj: object) -> Command:
    """Build a command from a decoded JSON value; never raises. The frequent commands with
    well-typed fields take a fast path; anything else the checked path, which says what is
    wrong (both give the same command for the same input)."""
    if type(obj) is dict:
        op = obj.get("op")
        ts = obj.get("ts")
        if type(op) is str and (ts is None or (type(ts) is int and ts >= 0)):
            fast = _FAST.get(op)
            if fast is not None:
                cmd = fast(obj, ts)
                if cmd is not None:
                    return cmd
    return _checked_command(obj)


def _checked_command(obj: object) -> Command:
    if not isinstance(obj, dict):
        return Malformed("a command must be a JSON object")
    account = obj.get("account")
    coid = obj.get("clientOrderId")
    account = account if type(account) is str else None
    coid = coid if type(coid) is str else None
    ts = obj.get("ts")
    if ts is not None and (type(ts) is not int or ts < 0):
        return Malformed("field 'ts' must be a non-negative integer", account, coid)
    op = obj.get("op")
    decoder = _DECODERS.get(op) if type(op) is str else None
    if decoder is None:
        return Malformed(f"unknown op {op!r}", account, coid, ts)
    try:
        return decoder(obj, ts)
    except _Bad as bad:
        return Malformed(str(bad), account, coid, ts, bad.reason)


def decode_command(line: bytes | str) -> Command:
    """Parse one JSON line into a command; never raises."""
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        return Malformed(f"invalid JSON: {exc}")
    return command_from_obj(obj)


def command_to_json(cmd: Command) -> dict[str, Any]:
    """The spec's JSON object for a command (used by the journal and the command bus)."""
    if type(cmd) is NewOrder:
        out: dict[str, Any] = {
            "op": "new",
            "account": cmd.account,
            "clientOrderId": cmd.client_order_id,
            "symbol": cmd.symbol,
            "side": cmd.side,
            "type": cmd.type,
        }
        if cmd.price is not None:
            out["price"] = cmd.price
        out["qty"] = cmd.qty
        out["tif"] = cmd.tif
    elif type(cmd) is CancelOrder:
        out = {"op": "cancel", "account": cmd.account, "clientOrderId": cmd.client_order_id}
    elif type(cmd) is ReplaceOrder:
        out = {"op": "replace", "account": cmd.account, "clientOrderId": cmd.client_order_id}
        if cmd.price is not None:
            out["price"] = cmd.price
        if cmd.qty is not None:
            out["qty"] = cmd.qty
    elif type(cmd) is Deposit:
        out = {"op": "deposit", "account": cmd.account, "asset": cmd.asset, "amount": cmd.amount}
    elif type(cmd) is DefineInstrument:
        out = {"op": "instrument", "symbol": cmd.symbol, "tick": cmd.tick, "lot": cmd.lot}
        if cmd.currency != "USD":
            out["currency"] = cmd.currency
        if cmd.max_qty is not None:
            out["maxQty"] = cmd.max_qty
        if cmd.max_notional is not None:
            out["maxNotional"] = cmd.max_notional
        if cmd.band is not None:
            out["band"] = cmd.band
    else:
        assert isinstance(cmd, Malformed)
        out = {"op": "malformed", "message": cmd.message, "reason": cmd.reason}
        if cmd.account is not None:
            out["account"] = cmd.account
        if cmd.client_order_id is not None:
            out["clientOrderId"] = cmd.client_order_id
    if cmd.ts is not None:
        out["ts"] = cmd.ts
    return out


def _price_text(instruments: Mapping[str, Instrument], symbol: str | None, ticks: int) -> str:
    inst = instruments.get(symbol) if symbol is not None else None
    return inst.price_text(ticks) if inst is not None else str(ticks)


# One builder per event kind: the event is unpacked once (a NamedTuple's fields by position
# cost less than attribute lookups) into a dict literal in the spec's key order.


def _trade(e: Any, instruments: Mapping[str, Instrument]) -> dict[str, Any]:
    seq, in_seq, ts, trade_id, symbol, price, qty, aggressor, boid, soid, bacc, sacc, bco, sco = e
    inst = instruments.get(symbol)
    return {
        "event": "trade",
        "seq": seq,
        "inSeq": in_seq,
        "ts": ts,
        "tradeId": trade_id,
        "symbol": symbol,
        "price": inst.price_text(price) if inst is not None else str(price),
        "qty": qty,
        "aggressor": aggressor,
        "buyOrderId": boid,
        "sellOrderId": soid,
        "buyAccount": bacc,
        "sellAccount": sacc,
        "buyClientOrderId": bco,
        "sellClientOrderId": sco,
    }


def _accepted(e: Any, instruments: Mapping[str, Instrument]) -> dict[str, Any]:
    seq, in_seq, ts, order_id, account, coid, symbol, side, kind, price, qty, tif = e
    if price is not None:
        inst = instruments.get(symbol)
        price = inst.price_text(price) if inst is not None else str(price)
    return {
        "event": "accepted",
        "seq": seq,
        "inSeq": in_seq,
        "ts": ts,
        "orderId": order_id,
        "account": account,
        "clientOrderId": coid,
        "symbol": symbol,
        "side": side,
        "type": kind,
        "price": price,
        "qty": qty,
        "tif": tif,
    }


def _cancelled(e: Any, instruments: Mapping[str, Instrument]) -> dict[str, Any]:
    seq, in_seq, ts, order_id, account, coid, symbol, remaining, reason = e
    return {
        "event": "cancelled",
        "seq": seq,
        "inSeq": in_seq,
        "ts": ts,
        "orderId": order_id,
        "account": account,
        "clientOrderId": coid,
        "symbol": symbol,
        "remaining": remaining,
        "reason": reason,
    }


def _done(e: Any, instruments: Mapping[str, Instrument]) -> dict[str, Any]:
    seq, in_seq, ts, order_id, account, coid, symbol = e
    return {
        "event": "done",
        "seq": seq,
        "inSeq": in_seq,
        "ts": ts,
        "orderId": order_id,
        "account": account,
        "clientOrderId": coid,
        "symbol": symbol,
    }


def _replaced(e: Any, instruments: Mapping[str, Instrument]) -> dict[str, Any]:
    seq, in_seq, ts, order_id, account, coid, symbol, price, qty, priority_kept = e
    inst = instruments.get(symbol)
    return {
        "event": "replaced",
        "seq": seq,
        "inSeq": in_seq,
        "ts": ts,
        "orderId": order_id,
        "account": account,
        "clientOrderId": coid,
        "symbol": symbol,
        "price": inst.price_text(price) if inst is not None else str(price),
        "qty": qty,
        "priorityKept": priority_kept,
    }


def _rejected(e: Any, instruments: Mapping[str, Instrument]) -> dict[str, Any]:
    seq, in_seq, ts, account, coid, reason, message, symbol = e
    out: dict[str, Any] = {
        "event": "rejected",
        "seq": seq,
        "inSeq": in_seq,
        "ts": ts,
        "account": account,
        "clientOrderId": coid,
        "reason": reason,
        "message": message,
    }
    if symbol is not None:
        out["symbol"] = symbol
    return out


EVENT_BUILDERS: dict[type, Callable[[Any, Mapping[str, Instrument]], dict[str, Any]]] = {
    Trade: _trade,
    Accepted: _accepted,
    Cancelled: _cancelled,
    Done: _done,
    Replaced: _replaced,
    Rejected: _rejected,
}
"""The builder of :func:`event_to_json` for each event type (for a loop that encodes many
events: ``EVENT_BUILDERS[type(event)](event, instruments)``)."""


def event_to_json(event: Event, instruments: Mapping[str, Instrument]) -> dict[str, Any]:
    """The spec's JSON object for an event: ``event`` (its kind), ``seq``, ``inSeq``, ``ts``,
    then the spec's fields. The kind is keyed ``event`` because ``accepted`` has an order
    ``type`` field of its own."""
    return EVENT_BUILDERS[type(event)](event, instruments)


def encode_event(event: Event, instruments: Mapping[str, Instrument]) -> bytes:
    """One event as a JSON line (without the trailing newline)."""
    return _dumps(EVENT_BUILDERS[type(event)](event, instruments))


def order_to_json(order: Order, instrument: Instrument) -> dict[str, Any]:
    """An order as ``GET /v1/order`` shows it: ``price`` a decimal string (``null`` for a
    market order), ``qty`` the ordered quantity, ``openQty`` what is still working,
    ``filled`` what has traded, ``status`` one of new, partially_filled, filled, cancelled."""
    price = order.price
    return {
        "orderId": order.order_id,
        "account": order.account,
        "clientOrderId": order.client_order_id,
        "symbol": order.symbol,
        "side": order.side,
        "type": order.type,
        "tif": order.tif,
        "price": None if price is None else instrument.price_text(price),
        "qty": order.qty,
        "openQty": order.open_qty,
        "filled": order.filled,
        "status": order.status,
        "ts": order.ts,
    }


def execution_to_json(
    trade: Trade,
    account: str,
    instruments: Mapping[str, Instrument],
    *,
    side: str | None = None,
) -> dict[str, Any]:
    """One account's view of a trade (``GET /v1/execution``, the ``orders`` channel's fill):
    its own order and side only, never the counterparty's account or order. ``liquidity`` is
    ``taker`` for the aggressor's side and ``maker`` for the resting one. ``side`` picks the
    view of a self-trade (both sides are the account; the default is the buy side)."""
    if side is None:
        side = "buy" if trade.buy_account == account else "sell"
    if side == "buy":
        if trade.buy_account != account:
            raise ValueError(f"account {account!r} is not the buyer of trade {trade.trade_id}")
        order_id, coid = trade.buy_order_id, trade.buy_client_order_id
    else:
        if trade.sell_account != account:
            raise ValueError(f"account {account!r} is not the seller of trade {trade.trade_id}")
        order_id, coid = trade.sell_order_id, trade.sell_client_order_id
    return {
        "tradeId": trade.trade_id,
        "orderId": order_id,
        "clientOrderId": coid,
        "symbol": trade.symbol,
        "side": side,
        "price": _price_text(instruments, trade.symbol, trade.price),
        "qty": trade.qty,
        "liquidity": "taker" if side == trade.aggressor else "maker",
        "ts": trade.ts,
    }
