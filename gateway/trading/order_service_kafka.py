"""Order entry and private queries of a gateway node in distributed mode.

:class:`KafkaOrderService` is the :class:`~gateway.seams.services.OrderService` of ``quotegate
gateway``: each call is one request on the command channel
(:mod:`gateway.seams.commands_kafka`), answered by the engine process, which runs it through its
own :class:`~gateway.trading.order_service.EngineOrderService` (:func:`serve_request`). The
answers are the same JSON as in one process; an engine that does not answer in time is a
``timeout`` error (HTTP 504), never a hang.
"""

from __future__ import annotations

from typing import Any, Protocol

from gateway.seams.services import LIST_LIMIT_DEFAULT, OrderService
from gateway.wire.errors import BAD_REQUEST, GatewayError

METHODS = ("submit", "order", "order_by_client", "orders", "executions", "account")


class Caller(Protocol):
    async def call(self, method: str, key: str, args: dict[str, Any]) -> Any: ...


class KafkaOrderService:
    """:class:`OrderService` over the command channel (``caller``: a started
    :class:`~gateway.seams.commands_kafka.CommandClient`)."""

    def __init__(self, caller: Caller) -> None:
        self._caller = caller

    async def submit(self, account: str, command: dict[str, Any]) -> list[dict[str, Any]]:
        symbol = command.get("symbol")
        key = symbol if isinstance(symbol, str) and symbol else account
        result: list[dict[str, Any]] = await self._caller.call(
            "submit", key, {"account": account, "body": command}
        )
        return result

    async def order(self, account: str, order_id: int) -> dict[str, Any] | None:
        result: dict[str, Any] | None = await self._caller.call(
            "order", account, {"account": account, "orderId": order_id}
        )
        return result

    async def order_by_client(self, account: str, client_order_id: str) -> dict[str, Any] | None:
        result: dict[str, Any] | None = await self._caller.call(
            "order_by_client", account, {"account": account, "clientOrderId": client_order_id}
        )
        return result

    async def orders(
        self, account: str, *, open_only: bool, limit: int = LIST_LIMIT_DEFAULT
    ) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = await self._caller.call(
            "orders", account, {"account": account, "openOnly": open_only, "limit": limit}
        )
        return result

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
        args = {
            "account": account,
            "symbol": symbol,
            "orderId": order_id,
            "startUs": start_us,
            "endUs": end_us,
            "limit": limit,
        }
        result: list[dict[str, Any]] = await self._caller.call("executions", account, args)
        return result

    async def account(self, account: str) -> dict[str, Any]:
        result: dict[str, Any] = await self._caller.call("account", account, {"account": account})
        return result


def _opt_int(args: dict[str, Any], name: str) -> int | None:
    value = args.get(name)
    if value is None:
        return None
    if type(value) is not int:
        raise GatewayError(BAD_REQUEST, f"{name} must be an integer")
    return value


def _str(args: dict[str, Any], name: str) -> str:
    value = args.get(name)
    if type(value) is not str or not value:
        raise GatewayError(BAD_REQUEST, f"{name} must be a non-empty string")
    return value


async def serve_request(service: OrderService, method: str, args: dict[str, Any]) -> Any:
    """Run one request of the command channel on the engine's order service (the account
    always comes from the gateway that authenticated the caller)."""
    account = _str(args, "account")
    if method == "submit":
        body = args.get("body")
        if not isinstance(body, dict):
            raise GatewayError(BAD_REQUEST, "body must be an object")
        return await service.submit(account, body)
    if method == "order":
        return await service.order(account, _opt_int(args, "orderId") or 0)
    if method == "order_by_client":
        return await service.order_by_client(account, _str(args, "clientOrderId"))
    if method == "orders":
        return await service.orders(
            account,
            open_only=bool(args.get("openOnly")),
            limit=_opt_int(args, "limit") or LIST_LIMIT_DEFAULT,
        )
    if method == "executions":
        symbol = args.get("symbol")
        return await service.executions(
            account,
            symbol=symbol if isinstance(symbol, str) else None,
            order_id=_opt_int(args, "orderId"),
            start_us=_opt_int(args, "startUs"),
            end_us=_opt_int(args, "endUs"),
            limit=_opt_int(args, "limit") or LIST_LIMIT_DEFAULT,
        )
    if method == "account":
        return await service.account(account)
    raise GatewayError(BAD_REQUEST, f"unknown method {method!r}; one of {', '.join(METHODS)}")
