"""Order entry and private queries over the embedded engine (:class:`services.OrderService`).

Commands go through ``submit``, the one sequencing point of the process (the embedded runtime:
engine, then publisher), so REST orders interleave with the feed in one order. The account
always comes from the authenticated API key, never from the request body, and nothing another
account owns is ever returned: events of other accounts are dropped, and a trade shows only the
caller's side as an execution record (the form of the private ``orders`` channel; the
counterparty's account and client order id are left out).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Protocol

from engine.codec import command_from_obj, event_to_json, execution_to_json
from engine.codec import order_to_json as codec_order_to_json
from engine.commands import Command, Malformed
from engine.events import Event, Rejected, Trade
from engine.instruments import Instrument
from engine.orders import Order
from engine.units import format_cash
from gateway.marketdata.orders import execution_record
from gateway.seams.services import LIST_LIMIT_DEFAULT

ORDER_OPS = ("new", "cancel", "replace")
BODY_FIELDS = frozenset(
    {"op", "symbol", "side", "type", "price", "qty", "tif", "clientOrderId", "account"}
)


class _Orders(Protocol):
    def get(self, order_id: int) -> Order | None: ...

    def by_client(self, account: str, client_order_id: str) -> Order | None: ...

    def open_orders(self, account: str) -> list[Order]: ...

    def of_account(self, account: str) -> list[Order]: ...

    def newest_executions(self, account: str) -> Iterator[Trade]: ...


class _Wallets(Protocol):
    def balances(self, account: str) -> Mapping[str, tuple[int, int]]: ...


class EngineView(Protocol):
    """What the service reads from the engine (:class:`engine.core.Engine` has it)."""

    @property
    def instruments(self) -> Mapping[str, Instrument]: ...

    @property
    def orders(self) -> _Orders: ...

    @property
    def wallets(self) -> _Wallets: ...


SubmitCommand = Callable[[Command], Sequence[Event]]


def order_to_json(order: Order, instruments: Mapping[str, Instrument]) -> dict[str, Any]:
    """An order as ``GET /v1/order`` returns it (:func:`engine.codec.order_to_json`)."""
    return codec_order_to_json(order, instruments[order.symbol])


class EngineOrderService:
    """:class:`gateway.seams.services.OrderService` for the embedded engine."""

    def __init__(self, engine: EngineView, submit: SubmitCommand) -> None:
        self._engine = engine
        self._submit = submit

    def command(self, account: str, body: Mapping[str, Any]) -> Command:
        """The engine command for a REST body: ``op`` defaults to ``new``; ``account`` is the
        caller's; a missing ``clientOrderId`` of a new order is generated; ``ts`` is never
        taken from a client. Invalid bodies become a ``Malformed`` command (rejected)."""
        obj = {k: v for k, v in body.items() if k in BODY_FIELDS}
        obj["account"] = account
        obj.setdefault("op", "new")
        if obj["op"] not in ORDER_OPS:
            coid = obj.get("clientOrderId")
            return Malformed(
                "op must be one of new, cancel, replace",
                account,
                coid if type(coid) is str else None,
            )
        if obj["op"] == "new" and "clientOrderId" not in obj:
            obj["clientOrderId"] = "r" + secrets.token_hex(8)
        return command_from_obj(obj)

    def own_events(self, account: str, events: Sequence[Event]) -> list[dict[str, Any]]:
        """The events of ``account`` in the spec's JSON, trades reduced to the caller's side."""
        instruments = self._engine.instruments
        out: list[dict[str, Any]] = []
        for ev in events:
            if isinstance(ev, Trade):
                out.extend(_own_sides(ev, account, instruments))
            elif ev.account == account or (type(ev) is Rejected and ev.account is None):
                out.append(event_to_json(ev, instruments))
        return out

    async def submit(self, account: str, command: dict[str, Any]) -> list[dict[str, Any]]:
        return self.own_events(account, self._submit(self.command(account, command)))

    def _order(self, account: str, order_id: int) -> Order | None:
        order = self._engine.orders.get(order_id)
        return order if order is not None and order.account == account else None

    async def order(self, account: str, order_id: int) -> dict[str, Any] | None:
        order = self._order(account, order_id)
        if order is None:
            return None
        return order_to_json(order, self._engine.instruments)

    async def order_by_client(self, account: str, client_order_id: str) -> dict[str, Any] | None:
        order = self._engine.orders.by_client(account, client_order_id)
        if order is None:
            return None
        return order_to_json(order, self._engine.instruments)

    async def orders(
        self, account: str, *, open_only: bool, limit: int = LIST_LIMIT_DEFAULT
    ) -> list[dict[str, Any]]:
        orders = self._engine.orders
        found = orders.open_orders(account) if open_only else orders.of_account(account)
        instruments = self._engine.instruments
        return [order_to_json(o, instruments) for o in found[-limit:]]

    async def executions(
        self,
        account: str,
        *,
        symbol: str | None = None,
        order_id: int | None = None,
        start_us: int | None = None,
        end_us: int | None = None,
        limit: int = LIST_LIMIT_DEFAULT,
    ) -> list[dict[str, Any]]:
        instruments = self._engine.instruments
        out: list[dict[str, Any]] = []
        last_id = -1
        for trade in self._engine.orders.newest_executions(account):
            if trade.trade_id == last_id:  # a self-trade is listed once per side
                continue
            last_id = trade.trade_id
            if symbol is not None and trade.symbol != symbol:
                continue
            if start_us is not None and trade.ts < start_us:
                continue
            if end_us is not None and trade.ts > end_us:
                continue
            for side in reversed(_sides_of(trade, account)):
                rec = execution_to_json(trade, account, instruments, side=side)
                if order_id is None or rec["orderId"] == order_id:
                    out.append(rec)
            if len(out) >= limit:
                break
        del out[limit:]
        out.reverse()
        return out

    async def account(self, account: str) -> dict[str, Any]:
        instruments = self._engine.instruments
        balances: dict[str, dict[str, Any]] = {}
        for asset, (available, reserved) in sorted(self._engine.wallets.balances(account).items()):
            if asset in instruments:  # shares
                balances[asset] = {"available": available, "reserved": reserved}
            else:  # cash, in 10**-8 units
                balances[asset] = {
                    "available": format_cash(available),
                    "reserved": format_cash(reserved),
                }
        return {"account": account, "balances": balances}


def _sides_of(trade: Trade, account: str) -> list[str]:
    """The sides of a trade the account was on (both for a self-trade)."""
    return [
        side
        for side, acct in (("buy", trade.buy_account), ("sell", trade.sell_account))
        if acct == account
    ]


def _own_sides(
    trade: Trade, account: str, instruments: Mapping[str, Instrument]
) -> list[dict[str, Any]]:
    """The caller's fill message(s) of a trade, as the private ``orders`` channel sends them."""
    return [execution_record(trade, side, instruments) for side in _sides_of(trade, account)]
