"""The direct lane under uvicorn (``gateway.roots.run.uvicorn_config``) and the ASGI fallback:
which transport each endpoint takes, and the same bytes either way; the frame and event
caches (one build per write round)."""

from __future__ import annotations

import asyncio

import pytest
from websockets.asyncio.client import connect

from gateway.edge.lane import LaneWebSocketProtocol
from gateway.edge.sse import SseTransport
from gateway.edge.ws import AsgiWsTransport, frame_of, text_frame
from gateway.fanout.hub import Hub
from gateway.wire.envelope import Envelope
from tests.gateway.conftest import Stack, make_config, serving
from tests.gateway.edge.test_sse import sse
from tests.gateway.edge.test_ws import Reader


async def only_connection(hub: Hub) -> object:
    for _ in range(500):
        if hub.connection_count == 1:
            break
        await asyncio.sleep(0.01)
    (conn,) = hub._connections
    return conn.transport


@pytest.mark.parametrize("lane", [True, False], ids=["lane", "asgi"])
async def test_websocket_takes_the_lane_under_server_config(stack: Stack, lane: bool) -> None:
    async with serving(stack, make_config(), lane=lane) as srv, connect(srv.ws_url) as ws:
        reader = Reader(ws)
        await reader.send({"op": "subscribe", "ch": ["book.AAPL"], "id": 1})
        assert (await reader.next())["type"] == "subscribed"
        assert (await reader.next())["type"] == "snapshot"
        transport = await only_connection(srv.app.state.hub)
        expected = LaneWebSocketProtocol if lane else AsgiWsTransport
        assert isinstance(transport, expected)
        sent = stack.publisher.emit("book.AAPL")
        got = await reader.next()
        assert got["seq"] == sent.seq


@pytest.mark.parametrize("lane", [True, False], ids=["lane", "asgi"])
async def test_sse_writes_through_the_lane_under_server_config(stack: Stack, lane: bool) -> None:
    async with serving(stack, make_config(), lane=lane) as srv, sse(srv, "book.AAPL") as events:
        await events.data()  # the snapshot
        transport = await only_connection(srv.app.state.hub)
        assert isinstance(transport, SseTransport)
        assert (transport._lane is not None) is lane
        sent = stack.publisher.emit("book.AAPL")
        assert (await events.data())["seq"] == sent.seq


def test_frame_is_built_once_per_batch() -> None:
    a = Envelope.build("update", "book.A", "e", 1, 1, {"x": 1})
    b = Envelope.build("update", "book.A", "e", 2, 1, {"x": "y" * 300})
    first = frame_of([a])
    assert frame_of([a]) is first  # the next client with the same batch: the same bytes
    assert first == text_frame(a.payload) and first[:2] == bytes((0x81, len(a.payload)))
    both = frame_of([a, b])
    assert both == text_frame(a.payload + b"\n" + b.payload)
    assert both[1] == 126  # 16-bit length
    assert frame_of([b"x" * 70_000])[1] == 127  # 64-bit length


def test_one_channel_event_is_rendered_once() -> None:
    env = Envelope.build("update", "book.A", "e", 5, 1, {"x": 1})
    one, other = SseTransport({"book.A": ("e", 4)}), SseTransport({})
    assert one.render([env]) is other.render([env])
    two = SseTransport({"trades.A": ("e", 9)})  # two channels: its own id
    assert two.render([env]) != one.render([env])
