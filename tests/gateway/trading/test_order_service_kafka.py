"""KafkaOrderService's requests and serve_request's answers, against the embedded engine's order
service (no broker: the caller is a function that serves the request at once)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from engine import Engine, EngineConfig
from engine.commands import DefineInstrument, Deposit
from gateway.trading.order_service import EngineOrderService
from gateway.trading.order_service_kafka import KafkaOrderService, serve_request
from gateway.wire.errors import BAD_REQUEST, GatewayError


class Loopback:
    """Encodes each request as it would travel, and serves it with ``serve_request``."""

    def __init__(self, service: EngineOrderService) -> None:
        self.service = service
        self.keys: list[str] = []

    async def call(self, method: str, key: str, args: dict[str, Any]) -> Any:
        self.keys.append(key)
        travelled = orjson.loads(orjson.dumps(args))
        return orjson.loads(orjson.dumps(await serve_request(self.service, method, travelled)))


@pytest.fixture
def engine_service() -> EngineOrderService:
    engine = Engine(EngineConfig(), clock=lambda: 1_000)
    engine.submit(DefineInstrument(symbol="AAPL", tick="0.01", lot=1))
    engine.submit(Deposit("alice", "USD", "1000"))
    return EngineOrderService(engine, engine.submit)


async def test_every_query_answers_as_in_one_process(engine_service: EngineOrderService) -> None:
    loop = Loopback(engine_service)
    remote = KafkaOrderService(loop)
    body = {"symbol": "AAPL", "side": "buy", "type": "limit", "price": "10.00", "qty": 2,
            "clientOrderId": "c1"}  # fmt: skip
    events = await remote.submit("alice", body)
    assert [e["event"] for e in events] == ["accepted"]
    order_id = events[0]["orderId"]
    assert await remote.order("alice", order_id) == await engine_service.order("alice", order_id)
    assert await remote.order("bob", order_id) is None  # someone else's: not found
    assert (await remote.order_by_client("alice", "c1"))["orderId"] == order_id  # type: ignore[index]
    assert len(await remote.orders("alice", open_only=True)) == 1
    assert await remote.executions("alice", symbol="AAPL") == []
    assert (await remote.account("alice"))["balances"]["USD"]["reserved"] == "20.00"
    cancel = await remote.submit("alice", {"op": "cancel", "clientOrderId": "c1"})
    assert [e["event"] for e in cancel] == ["cancelled"]
    assert loop.keys[0] == "AAPL" and loop.keys[-1] == "alice"  # shard key: symbol, else account


@pytest.mark.parametrize(
    ("method", "args"),
    [
        ("submit", {"account": "alice", "body": "not an object"}),
        ("order", {"account": "alice", "orderId": "7"}),
        ("orders", {"account": ""}),
        ("nope", {"account": "alice"}),
    ],
)
async def test_bad_requests_are_bad_request(
    engine_service: EngineOrderService, method: str, args: dict[str, Any]
) -> None:
    with pytest.raises(GatewayError) as caught:
        await serve_request(engine_service, method, args)
    assert caught.value.code == BAD_REQUEST
