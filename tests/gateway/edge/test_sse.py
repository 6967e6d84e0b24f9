from __future__ import annotations

import asyncio
import dataclasses
import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import orjson
import pytest

from gateway.config import GatewayConfig, SseConfig
from gateway.edge.sse import SseTransport
from gateway.fanout.hub import Hub
from gateway.wire import cursor
from gateway.wire.envelope import Envelope
from tests.gateway.conftest import EPOCH, Server, Stack, make_config, serving

READ_TIMEOUT_S = 5.0


@pytest.fixture
def gateway_config() -> GatewayConfig:
    return dataclasses.replace(make_config(), sse=SseConfig(retry_ms=1500))


class Events:
    """A minimal SSE parser over an httpx streaming response."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self._lines = response.aiter_lines()

    async def next(self) -> dict[str, str]:
        return await asyncio.wait_for(self._next(), READ_TIMEOUT_S)

    async def _next(self) -> dict[str, str]:
        fields: dict[str, str] = {}
        async for line in self._lines:
            if line == "":
                if fields:
                    return fields
                continue
            if line.startswith(":"):
                continue
            name, _, value = line.partition(":")
            fields[name] = value.removeprefix(" ")
        raise EOFError("stream ended")

    async def data(self) -> dict[str, Any]:
        """The next event that carries data, skipping heartbeats."""
        while True:
            event = await self.next()
            if "data" not in event:
                continue
            msg: dict[str, Any] = orjson.loads(event["data"])
            if msg["type"] != "heartbeat":
                msg["_id"] = event.get("id")
                return msg


@asynccontextmanager
async def sse(
    server: Server, ch: str, headers: dict[str, str] | None = None, **params: str
) -> AsyncIterator[Events]:
    async with (
        httpx.AsyncClient(base_url=server.http_url, timeout=READ_TIMEOUT_S) as client,
        client.stream("GET", "/v1/sse", params={"ch": ch, **params}, headers=headers) as r,
    ):
        assert r.status_code == 200, await r.aread()
        assert r.headers["content-type"].startswith("text/event-stream")
        yield Events(r)


async def wait_subscribed(hub: Hub, channel: str, n: int = 1) -> None:
    for _ in range(1000):
        if hub.subscribers(channel) >= n:
            return
        await asyncio.sleep(0.005)
    raise TimeoutError(channel)


async def test_snapshot_then_gap_free_updates(server: Server, stack: Stack, app: Any) -> None:
    async with sse(server, "book.AAPL,trades.AAPL") as events:
        first = await events.next()
        assert first == {"retry": "1500"}
        snaps = [await events.data(), await events.data()]
        assert sorted((m["type"], m["ch"], m["seq"]) for m in snaps) == [
            ("snapshot", "book.AAPL", 1),
            ("snapshot", "trades.AAPL", 1),
        ]
        await wait_subscribed(app.state.hub, "book.AAPL")
        stack.publisher.emit_many("book.AAPL", 5)
        stack.publisher.emit("trades.AAPL")
        got = [await events.data() for _ in range(6)]
        assert [m["seq"] for m in got if m["ch"] == "book.AAPL"] == [2, 3, 4, 5, 6]
        assert [m["seq"] for m in got if m["ch"] == "trades.AAPL"] == [2]
        # every id is a cursor of the whole stream after that event
        last = cursor.decode(got[-1]["_id"])
        assert last == {"book.AAPL": (EPOCH, 6), "trades.AAPL": (EPOCH, 2)}


async def test_last_event_id_resumes_without_gap_or_duplicate(
    server: Server, stack: Stack, app: Any
) -> None:
    hub: Hub = app.state.hub
    async with sse(server, "book.AAPL,trades.AAPL") as events:
        await events.data()
        await events.data()
        await wait_subscribed(hub, "book.AAPL")
        stack.publisher.emit_many("book.AAPL", 3)
        seen = [await events.data() for _ in range(3)]
    last_id = seen[-1]["_id"]
    assert cursor.decode(last_id) == {"book.AAPL": (EPOCH, 4), "trades.AAPL": (EPOCH, 1)}
    for _ in range(1000):  # the old stream is gone
        if hub.subscribers("book.AAPL") == 0:
            break
        await asyncio.sleep(0.005)
    stack.publisher.emit_many("book.AAPL", 4)  # missed while disconnected
    stack.publisher.emit("trades.AAPL")
    async with sse(server, "book.AAPL,trades.AAPL", headers={"Last-Event-ID": last_id}) as events:
        assert "retry" in await events.next()
        missed = [await events.data() for _ in range(5)]
        assert [(m["type"], m["seq"]) for m in missed if m["ch"] == "book.AAPL"] == [
            ("update", 5),
            ("update", 6),
            ("update", 7),
            ("update", 8),
        ]
        assert [(m["type"], m["seq"]) for m in missed if m["ch"] == "trades.AAPL"] == [
            ("update", 2)
        ]
        await wait_subscribed(hub, "book.AAPL")
        stack.publisher.emit("book.AAPL")
        live = await events.data()
        assert (live["type"], live["seq"]) == ("update", 9)


async def test_cursor_param_resumes(server: Server, stack: Stack) -> None:
    start = cursor.encode({"book.MSFT": (EPOCH, 1)})
    stack.publisher.emit_many("book.MSFT", 2)
    async with sse(server, "book.MSFT", cursor=start) as events:
        got = [await events.data(), await events.data()]
        assert [(m["type"], m["seq"]) for m in got] == [("update", 2), ("update", 3)]
        assert cursor.decode(got[-1]["_id"]) == {"book.MSFT": (EPOCH, 3)}


async def test_data_is_the_envelope_bytes(server: Server, stack: Stack, app: Any) -> None:
    async with sse(server, "trades.MSFT") as events:
        await events.data()
        await wait_subscribed(app.state.hub, "trades.MSFT")
        env = stack.publisher.emit("trades.MSFT", {"trades": [{"id": 1, "price": "1.50"}]})
        while True:
            event = await events.next()
            if event.get("id"):
                break
        assert event["data"].encode() == env.payload


async def test_heartbeat_on_idle(stack: Stack) -> None:
    config = make_config(heartbeat_interval_s=0.1)
    async with serving(stack, config) as server, sse(server, "book.AAPL") as events:
        await events.data()  # the snapshot
        for _ in range(10):
            event = await events.next()
            if "data" in event and orjson.loads(event["data"])["type"] == "heartbeat":
                assert "id" not in event  # heartbeats do not move the cursor
                break
        else:
            raise AssertionError("no heartbeat")


async def test_an_idle_stream_gets_one_heartbeat_per_interval_with_rising_ts(
    stack: Stack,
) -> None:
    """With the connection's heartbeat and the stream's at the same interval, an idle stream
    still gets one heartbeat per interval (not two), each ``ts`` later than the last."""
    interval_s = 0.1
    config = dataclasses.replace(
        make_config(heartbeat_interval_s=interval_s),
        sse=SseConfig(heartbeat_interval_s=interval_s),
    )
    async with serving(stack, config) as server, sse(server, "book.AAPL") as events:
        await events.data()  # the snapshot
        loop = asyncio.get_running_loop()
        beats: list[tuple[float, int]] = []
        while len(beats) < 8:
            event = await asyncio.wait_for(events.next(), 5)
            msg = orjson.loads(event["data"])
            assert msg["type"] == "heartbeat"
            beats.append((loop.time(), msg["ts"]))
    stamps = [ts for _, ts in beats]
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)
    # one per interval: 8 heartbeats take about 7 intervals (two per interval would take 3.5)
    assert beats[-1][0] - beats[0][0] >= 7 * interval_s * 0.8
    gaps_us = [b - a for a, b in itertools.pairwise(stamps)]
    assert min(gaps_us) >= interval_s * 1e6 * 0.5


async def test_stream_heartbeat_when_the_hub_is_quiet(stack: Stack) -> None:
    config = dataclasses.replace(make_config(), sse=SseConfig(heartbeat_interval_s=0.1))
    async with serving(stack, config) as server, sse(server, "book.AAPL") as events:
        await events.data()
        event = await events.next()
        assert orjson.loads(event["data"])["type"] == "heartbeat"


async def test_orders_needs_a_token(server: Server, stack: Stack, app: Any) -> None:
    async with httpx.AsyncClient(base_url=server.http_url) as client:
        r = await client.get("/v1/sse", params={"ch": "orders"})
        assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
        r = await client.get("/v1/sse", params={"ch": "orders", "token": "nope"})
        assert r.status_code == 401
    stack.publisher.emit("orders.bob", {"event": "accepted"})
    async with sse(server, "orders", token="key-bob") as events:
        snap = await events.data()
        assert (snap["type"], snap["ch"]) == ("snapshot", "orders")
        await wait_subscribed(app.state.hub, "orders.bob")
        stack.publisher.emit("orders.alice", {"event": "accepted"})
        stack.publisher.emit("orders.bob", {"event": "done"})
        update = await events.data()
        assert update["data"] == {"event": "done"}
        assert cursor.decode(update["_id"]) == {"orders": (EPOCH, 2)}


@pytest.mark.parametrize(
    ("params", "headers", "status", "code"),
    [
        ({"ch": "book.NOPE"}, {}, 400, "unknown_channel"),
        ({"ch": "bogus"}, {}, 400, "unknown_channel"),
        ({}, {}, 400, "bad_request"),
        ({"ch": "book.AAPL", "cursor": "v1.%%%"}, {}, 400, "bad_request"),
        ({"ch": "book.AAPL"}, {"Last-Event-ID": "nonsense"}, 400, "bad_request"),
    ],
)
async def test_bad_requests_get_json_errors(
    server: Server, params: dict[str, str], headers: dict[str, str], status: int, code: str
) -> None:
    async with httpx.AsyncClient(base_url=server.http_url) as client:
        r = await client.get("/v1/sse", params=params, headers=headers)
    assert r.status_code == status
    assert r.headers["content-type"] == "application/json"
    assert r.json()["error"]["code"] == code


async def test_client_disconnect_releases_the_connection(server: Server, app: Any) -> None:
    hub: Hub = app.state.hub
    async with sse(server, "book.AAPL") as events:
        await events.data()
        assert hub.connection_count == 1
    for _ in range(1000):
        if hub.connection_count == 0:
            break
        await asyncio.sleep(0.005)
    assert hub.connection_count == 0


async def test_transport_renders_what_is_written_as_one_chunk() -> None:
    transport = SseTransport({"book.A": ("e", 1)})
    a = Envelope.build("update", "book.A", "e", 2, 1, {"x": 1})
    b = Envelope.build("update", "orders.bob", "e", 7, 1, {"x": 2}, wire_channel="orders")
    error = b'{"type":"error","code":"unavailable","message":"x"}'
    transport.write([a, b'{"type":"heartbeat","ts":1}', error])
    transport.write([b])  # a second write before the stream takes the first: one chunk
    assert transport.buffered() > 0
    chunk = await transport.next_chunk(1.0)
    assert transport.buffered() == 0
    assert chunk is not None
    events = chunk.split(b"\n\n")
    assert events[-1] == b"" and len(events) == 4  # the connection's heartbeat is dropped
    assert events[0].startswith(b"id: ") and events[0].endswith(b"data: " + a.payload)
    assert events[1] == b"data: " + error
    last_id = events[2].split(b"\n")[0].removeprefix(b"id: ").decode()
    assert cursor.decode(last_id) == {"book.A": ("e", 2), "orders": ("e", 7)}
    await transport.close(4008, "slow")
    assert await transport.next_chunk(1.0) == b""


async def test_slow_orders_reader_is_cut_off_and_the_stream_ends(stack: Stack) -> None:
    from gateway.config import HubConfig

    # what the stream has not taken counts: the transport holds it, under the same bound
    hub = Hub(
        HubConfig(queue_max_messages=4, queue_max_bytes=2000), bus=stack.bus, store=stack.store
    )
    await hub.start()
    try:
        transport = SseTransport({})
        conn = hub.connect(transport, account="bob")
        await hub.subscribe(conn, ["orders.bob"])
        for _ in range(50):  # nobody reads the stream
            stack.publisher.emit("orders.bob")
            await asyncio.sleep(0)
        for _ in range(1000):
            if transport.closed:
                break
            await asyncio.sleep(0.005)
        assert conn.close_code == 4008
        assert await transport.next_chunk(1.0) == b""  # the response ends
    finally:
        await hub.close()


async def test_head_does_not_leak_a_connection(server: Server, app: Any) -> None:
    async with httpx.AsyncClient(base_url=server.http_url) as client:
        r = await client.head("/v1/sse", params={"ch": "book.AAPL"})
    assert r.status_code == 200
    hub: Hub = app.state.hub
    for _ in range(1000):
        if hub.connection_count == 0:
            break
        await asyncio.sleep(0.005)
    assert hub.connection_count == 0


async def test_connection_limit_gives_503(stack: Stack) -> None:
    async with serving(stack, make_config(max_connections=0)) as server:
        async with httpx.AsyncClient(base_url=server.http_url) as client:
            r = await client.get("/v1/sse", params={"ch": "book.AAPL"})
        assert r.status_code == 503
        assert r.json()["error"]["code"] == "unavailable"
