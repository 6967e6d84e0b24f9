"""What a WebSocket client can make the server hold, on a real uvicorn server: replies count
against the connection's bound (a client that asks and never reads is closed 4008), pongs to
ping frames too (the lane aborts the connection), and a slow ``orders`` consumer is let go
within ``WsConfig.close_timeout_s`` even when it never reads its close frame."""

from __future__ import annotations

import asyncio
import contextlib
import struct
import time

import pytest
from websockets.asyncio.client import connect

from gateway.config import GatewayConfig, HubConfig, WsConfig
from gateway.fanout.hub import Hub
from tests.gateway.conftest import Stack, serving
from tests.gateway.edge.test_ws import RawClient, Reader

BOUND_BYTES = 64 * 1024


def bounded_config(**ws: float) -> GatewayConfig:
    return GatewayConfig(
        hub=HubConfig(queue_max_bytes=BOUND_BYTES, heartbeat_interval_s=10.0),
        ws=WsConfig(ping_interval_s=5.0, ping_timeout_s=5.0, **ws),
    )


def masked(opcode: int, payload: bytes) -> bytes:
    """A client frame (masked with a zero key, so the payload goes as is)."""
    assert len(payload) < 126
    return bytes([0x80 | opcode, 0x80 | len(payload)]) + b"\0\0\0\0" + payload


async def wait_until(predicate: object, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        await asyncio.sleep(0.02)
    return False


@pytest.mark.parametrize("lane", [True, False], ids=["lane", "asgi"])
async def test_a_client_that_asks_and_never_reads_is_closed_4008(stack: Stack, lane: bool) -> None:
    async with serving(stack, bounded_config(), lane=lane) as srv:
        hub: Hub = srv.app.state.hub
        flooder = RawClient(srv.port)
        try:
            await flooder.handshake()
            loop = asyncio.get_running_loop()
            frame = masked(0x1, b'{"op":"ping","id":12345}')
            # ~40,000 replies (pongs, then rate_limited errors): megabytes if unbounded
            # the server may close the connection before the flood is all sent: that ends it
            with contextlib.suppress(ConnectionResetError, BrokenPipeError):
                for _ in range(40):
                    await loop.sock_sendall(flooder.sock, frame * 1000)
                    await asyncio.sleep(0)
            assert await wait_until(lambda: hub.connection_count == 0, 10.0)
            slow = stack.metrics.value("quotegate_slow_disconnects_total", {"transport": "ws"})
            assert slow == 1
            # a reading client is served as before
            async with connect(srv.ws_url) as ws:
                reader = Reader(ws)
                await reader.send({"op": "ping", "id": 1})
                assert await reader.next() == {"type": "pong", "id": 1}
        finally:
            flooder.close()


async def test_ping_frames_from_a_client_that_never_reads_are_bounded(stack: Stack) -> None:
    async with serving(stack, bounded_config(), lane=True) as srv:
        hub: Hub = srv.app.state.hub
        flooder = RawClient(srv.port)
        try:
            await flooder.handshake()
            assert await wait_until(lambda: hub.connection_count == 1, 5.0)
            loop = asyncio.get_running_loop()
            frame = masked(0x9, b"p" * 120)  # each one makes uvicorn write a 122-byte pong
            for _ in range(60):
                await loop.sock_sendall(flooder.sock, frame * 1000)
                await asyncio.sleep(0)
            assert await wait_until(lambda: hub.connection_count == 0, 10.0)
        except (ConnectionResetError, BrokenPipeError):
            pass  # aborted while still sending: what the test wants
        finally:
            flooder.close()
        assert await wait_until(lambda: hub.connection_count == 0, 10.0)


async def test_slow_orders_consumer_is_let_go_within_the_close_timeout(stack: Stack) -> None:
    async with serving(stack, bounded_config(close_timeout_s=0.3), lane=True) as srv:
        connections = srv.server.server_state.connections
        stalled = RawClient(srv.port)
        try:
            await stalled.handshake()
            await stalled.send({"op": "auth", "token": "key-alice", "id": 1})
            await stalled.send({"op": "subscribe", "ch": ["orders"], "id": 2})
            await asyncio.sleep(0.05)
            assert len(connections) == 1
            metrics = stack.metrics
            for _ in range(2000):
                # a few messages per tick: the socket's buffers fill first, then uvicorn's
                for _ in range(4):
                    stack.publisher.emit("orders.alice", {"p": "y" * 4000})
                await asyncio.sleep(0.001)
                if metrics.value("quotegate_slow_disconnects_total", {"transport": "ws"}):
                    break
            assert metrics.value("quotegate_slow_disconnects_total", {"transport": "ws"}) == 1
            decided = time.monotonic()
            # the client reads nothing; the server must not wait for it (keepalive: 10 s)
            assert await wait_until(lambda: not connections, 3.0)
            assert time.monotonic() - decided < 3.0
            # what the client then sees: what was in flight, then the end of the stream
            # without a close frame (it never took the 4008 in time)
            opcodes: list[int] = []
            with pytest.raises((EOFError, ConnectionResetError)):
                while True:
                    opcode, payload = await stalled.frame()
                    opcodes.append(opcode)
                    if opcode == 0x8:
                        assert struct.unpack("!H", payload[:2])[0] == 4008
                        raise EOFError
        finally:
            stalled.close()
