"""WebSocket /v1/ws: in-process (Starlette TestClient) for the ops and error codes, and a real
uvicorn server with the ``websockets`` client for data flow, resume and slow clients."""

from __future__ import annotations

import asyncio
import itertools
import socket
from typing import Any

import orjson
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from gateway.config import GatewayConfig, HubConfig, WsConfig
from gateway.edge.ws import TokenBucket
from tests.gateway.conftest import Server, Stack
from tests.waiting import until

# -- helpers ---------------------------------------------------------------------------------


def split(frame: str | bytes) -> list[dict[str, Any]]:
    text = frame.decode() if isinstance(frame, bytes) else frame
    return [orjson.loads(line) for line in text.split("\n") if line]


class SyncReader:
    """Message-at-a-time reading over the TestClient's frame-at-a-time websocket."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.pending: list[dict[str, Any]] = []

    def send(self, obj: Any) -> None:
        self.ws.send_text(obj if isinstance(obj, str) else orjson.dumps(obj).decode())

    def next(self) -> dict[str, Any]:
        while not self.pending:
            self.pending.extend(split(self.ws.receive_text()))
        return self.pending.pop(0)

    def next_of(self, kind: str) -> dict[str, Any]:
        while True:
            msg = self.next()
            if msg["type"] == kind:
                return msg


class Reader:
    """The same over a real socket (websockets client)."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.pending: list[dict[str, Any]] = []

    async def send(self, obj: Any) -> None:
        await self.ws.send(orjson.dumps(obj).decode())

    async def next(self, timeout_s: float = 10.0) -> dict[str, Any]:
        while not self.pending:
            frame = await asyncio.wait_for(self.ws.recv(), timeout_s)
            self.pending.extend(split(frame))
        return self.pending.pop(0)

    async def data(self, channel: str, until_seq: int) -> list[dict[str, Any]]:
        """Envelopes of ``channel`` up to and including ``until_seq``."""
        got: list[dict[str, Any]] = []
        while True:
            msg = await self.next()
            if msg.get("ch") == channel and msg["type"] in ("snapshot", "update"):
                got.append(msg)
                if msg["seq"] >= until_seq:
                    return got


def assert_gap_free(msgs: list[dict[str, Any]], first_snapshot_seq: int | None = None) -> None:
    """A snapshot (or nothing) then updates seq+1 each, no duplicate."""
    seq = None
    for msg in msgs:
        if msg["type"] == "snapshot":
            seq = msg["seq"]
            if first_snapshot_seq is not None:
                assert seq == first_snapshot_seq
            continue
        if seq is not None:
            assert msg["seq"] == seq + 1, msgs
            assert msg["data"] == {"i": msg["seq"]}
        seq = msg["seq"]


# -- in-process: ops and every error code ----------------------------------------------------


def test_subscribe_snapshot_then_updates_in_process(client: Any, stack: Stack) -> None:
    with client.websocket_connect("/v1/ws") as ws:
        r = SyncReader(ws)
        r.send({"op": "subscribe", "ch": ["book.AAPL"], "id": 1})
        assert r.next() == {"type": "subscribed", "ch": ["book.AAPL"], "id": 1}
        snap = r.next()
        assert snap["type"] == "snapshot" and snap["ch"] == "book.AAPL" and snap["seq"] == 1
        assert snap["epoch"] == "ep1" and snap["data"] == {"seq": 1, "n": 1}
        for _ in range(5):
            client.portal.call(stack.publisher.emit, "book.AAPL")
        updates = [r.next() for _ in range(5)]
        assert [u["seq"] for u in updates] == [2, 3, 4, 5, 6]
        assert all(u["type"] == "update" and u["data"] == {"i": u["seq"]} for u in updates)


def test_ping_pong_and_unsubscribe(client: Any, stack: Stack) -> None:
    with client.websocket_connect("/v1/ws") as ws:
        r = SyncReader(ws)
        r.send({"op": "ping", "id": "p1"})
        assert r.next() == {"type": "pong", "id": "p1"}
        r.send({"op": "subscribe", "ch": ["trades.AAPL"], "id": 2})
        r.next_of("snapshot")
        r.send({"op": "unsubscribe", "ch": ["trades.AAPL"], "id": 3})
        assert r.next() == {"type": "unsubscribed", "ch": ["trades.AAPL"], "id": 3}
        client.portal.call(stack.publisher.emit, "trades.AAPL")
        r.send({"op": "ping", "id": 4})
        assert r.next() == {"type": "pong", "id": 4}  # no trades update in between


@pytest.mark.parametrize(
    ("message", "code"),
    [
        ("{not json", "bad_request"),
        ("[1,2]", "bad_request"),
        ({"op": "dance", "id": 9}, "bad_request"),
        ({"op": "subscribe", "id": 9}, "bad_request"),
        ({"op": "subscribe", "ch": [1], "id": 9}, "bad_request"),
        (
            {"op": "subscribe", "ch": ["book.AAPL"], "since": {"book.AAPL": 3}, "id": 9},
            "bad_request",
        ),
        ({"op": "subscribe", "ch": ["nope.AAPL"], "id": 9}, "unknown_channel"),
        ({"op": "subscribe", "ch": ["book.ZZZZ"], "id": 9}, "unknown_channel"),
        ({"op": "subscribe", "ch": ["candles.AAPL.7m"], "id": 9}, "unknown_channel"),
        ({"op": "subscribe", "ch": ["orders"], "id": 9}, "unauthorized"),
        ({"op": "auth", "token": "wrong", "id": 9}, "unauthorized"),
        ({"op": "auth", "id": 9}, "bad_request"),
        (
            {"op": "subscribe", "ch": [f"book.S{i}" for i in range(101)], "id": 9},
            "too_many_subscriptions",
        ),
        ("x" * (64 * 1024 + 1), "too_large"),
    ],
)
def test_errors_reply_and_connection_survives(client: Any, message: Any, code: str) -> None:
    with client.websocket_connect("/v1/ws") as ws:
        r = SyncReader(ws)
        r.send(message)
        err = r.next()
        assert err["type"] == "error" and err["code"] == code, err
        assert isinstance(err["message"], str) and err["message"]
        if isinstance(message, dict):
            assert err["id"] == 9
        r.send({"op": "ping", "id": 10})
        assert r.next() == {"type": "pong", "id": 10}


def test_too_many_subscriptions_counts_existing(client: Any) -> None:
    with client.websocket_connect("/v1/ws") as ws:
        r = SyncReader(ws)
        r.send({"op": "subscribe", "ch": ["book.AAPL", "trades.AAPL"], "id": 1})
        r.next_of("subscribed")
        names = [f"candles.AAPL.{res}" for res in ("1s", "1m", "5m", "15m", "1h", "1d")]
        names += ["ticker.AAPL", "ticker.MSFT", "book.MSFT"]
        # 2 existing + 9 new = 11 > a limit of 10 (see the module config below)
        r.send({"op": "subscribe", "ch": names, "id": 2})
        err = r.next_of("error")
        assert err["code"] == "too_many_subscriptions" and err["id"] == 2
        r.send({"op": "ping", "id": 3})
        assert r.next_of("pong")["id"] == 3


@pytest.fixture
def gateway_config(request: pytest.FixtureRequest) -> GatewayConfig:
    limit = 10 if request.node.name == "test_too_many_subscriptions_counts_existing" else 100
    return GatewayConfig(
        hub=HubConfig(queue_max_messages=64),
        ws=WsConfig(max_subscriptions=limit, rate_msgs_per_s=20.0, rate_burst_msgs=20),
    )


def test_flood_is_rate_limited_and_survives(client: Any) -> None:
    with client.websocket_connect("/v1/ws") as ws:
        r = SyncReader(ws)
        for i in range(40):
            r.send({"op": "ping", "id": i})
        replies = [r.next() for _ in range(40)]
        limited = [m for m in replies if m["type"] == "error"]
        assert limited and all(m["code"] == "rate_limited" for m in limited)
        assert sum(m["type"] == "pong" for m in replies) >= 20


def test_auth_then_private_orders(client: Any, stack: Stack) -> None:
    with client.websocket_connect("/v1/ws") as ws:
        r = SyncReader(ws)
        r.send({"op": "auth", "token": "key-alice", "id": 1})
        assert r.next() == {"type": "authed", "account": "alice", "id": 1}
        r.send({"op": "subscribe", "ch": ["orders"], "id": 2})
        assert r.next() == {"type": "subscribed", "ch": ["orders"], "id": 2}
        client.portal.call(stack.publisher.emit, "orders.bob", {"event": "accepted"})
        client.portal.call(stack.publisher.emit, "orders.alice", {"event": "trade"})
        msg = r.next()
        # alice's stream only, on the wire as "orders"
        assert msg["ch"] == "orders" and msg["data"] == {"event": "trade"} and msg["seq"] == 1
        r.send({"op": "auth", "token": "key-bob", "id": 3})
        assert r.next()["code"] == "unauthorized"


def test_token_bucket_refills() -> None:
    now = [0.0]
    bucket = TokenBucket(10.0, 2, clock=lambda: now[0])
    assert bucket.take() and bucket.take() and not bucket.take()
    now[0] += 0.1
    assert bucket.take() and not bucket.take()


# -- real sockets ----------------------------------------------------------------------------


async def test_real_socket_snapshot_then_gap_free_updates(server: Server, stack: Stack) -> None:
    async with connect(server.ws_url) as ws:
        r = Reader(ws)
        await r.send({"op": "subscribe", "ch": ["book.AAPL", "trades.MSFT"], "id": 1})
        assert (await r.next())["type"] == "subscribed"
        for _ in range(200):
            stack.publisher.emit("book.AAPL")
            stack.publisher.emit("trades.MSFT")
        got = await r.data("book.AAPL", 201)
        assert got[0]["type"] == "snapshot"
        assert_gap_free(got)
        assert got[-1]["seq"] == 201


async def test_resume_with_since_after_reconnect(server: Server, stack: Stack) -> None:
    async with connect(server.ws_url) as ws:
        r = Reader(ws)
        await r.send({"op": "subscribe", "ch": ["book.AAPL"], "id": 1})
        stack.publisher.emit_many("book.AAPL", 10)
        got = await r.data("book.AAPL", 11)
        last = got[-1]
    stack.publisher.emit_many("book.AAPL", 25)  # missed while disconnected
    async with connect(server.ws_url) as ws:
        r = Reader(ws)
        since = {"book.AAPL": {"epoch": last["epoch"], "seq": last["seq"]}}
        await r.send({"op": "subscribe", "ch": ["book.AAPL"], "since": since, "id": 2})
        stack.publisher.emit_many("book.AAPL", 5)
        resumed = await r.data("book.AAPL", 41)
        assert [m["type"] for m in resumed] == ["update"] * 30
        assert [m["seq"] for m in resumed] == list(range(12, 42))
        assert_gap_free(resumed)


async def test_resume_outside_history_gets_snapshot(server: Server, stack: Stack) -> None:
    async with connect(server.ws_url) as ws:
        r = Reader(ws)
        since = {"book.AAPL": {"epoch": "old-epoch", "seq": 5}}
        await r.send({"op": "subscribe", "ch": ["book.AAPL"], "since": since, "id": 1})
        got = await r.data("book.AAPL", 1)
        assert got == [got[0]] and got[0]["type"] == "snapshot"


async def test_connection_limit_closes_1013(stack: Stack) -> None:
    from gateway.edge.app import create_app

    cfg = GatewayConfig(hub=HubConfig(max_connections=1))
    srv = Server(create_app(cfg, services=stack.services), cfg)
    await srv.start()
    try:
        async with connect(srv.ws_url) as first:
            await first.send('{"op":"ping","id":1}')
            assert split(await first.recv()) == [{"type": "pong", "id": 1}]
            async with connect(srv.ws_url) as second:
                with pytest.raises(ConnectionClosed) as info:
                    await asyncio.wait_for(second.recv(), 10)
                assert info.value.rcvd is not None and info.value.rcvd.code == 1013
    finally:
        await srv.stop()


class RawClient:
    """A raw-socket WebSocket client with a tiny receive buffer that can stop reading."""

    def __init__(self, port: int) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", port))
        sock.setblocking(False)
        self.sock = sock
        self.buf = b""

    async def _recv_some(self) -> bytes:
        loop = asyncio.get_running_loop()
        data = await asyncio.wait_for(loop.sock_recv(self.sock, 65536), 10)
        if not data:
            raise EOFError
        return data

    async def handshake(self) -> None:
        loop = asyncio.get_running_loop()
        await loop.sock_sendall(
            self.sock,
            b"GET /v1/ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            b"Sec-WebSocket-Version: 13\r\n\r\n",
        )
        while b"\r\n\r\n" not in self.buf:
            self.buf += await self._recv_some()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        assert head.startswith(b"HTTP/1.1 101"), head

    async def send(self, obj: Any) -> None:
        payload = orjson.dumps(obj)
        assert len(payload) < 126
        mask = b"\x01\x02\x03\x04"
        body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        frame = bytes([0x81, 0x80 | len(payload)]) + mask + body
        await asyncio.get_running_loop().sock_sendall(self.sock, frame)

    async def _need(self, n: int) -> None:
        while len(self.buf) < n:
            self.buf += await self._recv_some()

    async def frame(self) -> tuple[int, bytes]:
        """(opcode, payload) of the next server frame (unmasked, unfragmented)."""
        await self._need(2)
        opcode, n = self.buf[0] & 0x0F, self.buf[1] & 0x7F
        offset = 2
        if n == 126:
            await self._need(4)
            n, offset = int.from_bytes(self.buf[2:4], "big"), 4
        elif n == 127:
            await self._need(10)
            n, offset = int.from_bytes(self.buf[2:10], "big"), 10
        await self._need(offset + n)
        payload = self.buf[offset : offset + n]
        self.buf = self.buf[offset + n :]
        return opcode, payload

    def close(self) -> None:
        self.sock.close()


async def _pump(stack: Stack, channel: str, n: int, pad: str) -> None:
    for i in range(n):
        stack.publisher.emit(channel, {"i": stack.publisher.seqs.get(channel, 0) + 1, "p": pad})
        if i % 20 == 0:
            await asyncio.sleep(0)


async def test_stalled_client_conflates_book_and_does_not_delay_others(
    server: Server, stack: Stack
) -> None:
    stalled = RawClient(server.port)
    try:
        await stalled.handshake()
        await stalled.send({"op": "subscribe", "ch": ["book.AAPL"], "id": 1})
        n = 2000
        async with connect(server.ws_url, max_size=None) as ws:
            healthy = Reader(ws)
            await healthy.send({"op": "subscribe", "ch": ["book.AAPL"], "id": 1})
            assert (await healthy.next())["type"] == "subscribed"
            assert (await healthy.next())["type"] == "snapshot"
            got: list[dict[str, Any]] = []
            pad = "x" * 4000  # about 8 MB per client in all
            for chunk in range(n // 20):
                # the healthy client keeps up chunk by chunk while the stalled one never reads
                await _pump(stack, "book.AAPL", 20, pad)
                got += await healthy.data("book.AAPL", 1 + 20 * (chunk + 1))
            assert [m["seq"] for m in got] == list(range(2, 2 + n))  # every update, in order
            assert all(m["type"] == "update" for m in got)
        metrics = stack.metrics
        assert (metrics.value("quotegate_conflations_total", {"transport": "ws"}) or 0) >= 1
        # The stalled client drains: it skipped to a fresh snapshot and ends current.
        stack.publisher.emit("book.AAPL", {"i": n + 2})
        seen: list[dict[str, Any]] = []
        while not seen or seen[-1].get("seq") != n + 2:
            opcode, payload = await stalled.frame()
            if opcode == 0x1:
                seen.extend(m for m in split(payload) if m.get("ch") == "book.AAPL")
    finally:
        stalled.close()
    seqs = [m["seq"] for m in seen]
    assert len(seqs) < n + 1  # some updates were skipped...
    snapshots = [m for m in seen[1:] if m["type"] == "snapshot"]
    assert snapshots  # ...for a fresh snapshot
    for prev, cur in itertools.pairwise(seen):  # and updates never skip a seq
        if cur["type"] == "update":
            assert cur["seq"] == prev["seq"] + 1


async def test_stalled_client_on_orders_is_closed_4008(server: Server, stack: Stack) -> None:
    stalled = RawClient(server.port)
    try:
        await stalled.handshake()
        await stalled.send({"op": "auth", "token": "key-alice", "id": 1})
        await stalled.send({"op": "subscribe", "ch": ["orders"], "id": 2})
        hub = server.app.state.hub
        await until(lambda: hub.subscribers("orders.alice") == 1, what="the subscription")
        metrics = stack.metrics
        pad = "y" * 4000
        for _ in range(100):
            await _pump(stack, "orders.alice", 100, pad)
            await asyncio.sleep(0.01)
            if metrics.value("quotegate_slow_disconnects_total", {"transport": "ws"}):
                break
        assert metrics.value("quotegate_slow_disconnects_total", {"transport": "ws"}) == 1
        code = None
        while code is None:
            opcode, payload = await stalled.frame()
            if opcode == 0x8:
                code = int.from_bytes(payload[:2], "big")
                assert payload[2:] == b"slow"
    finally:
        stalled.close()
    assert code == 4008


async def test_heartbeats_and_ping_frames_on_an_idle_link(stack: Stack) -> None:
    from gateway.edge.app import create_app

    cfg = GatewayConfig(
        hub=HubConfig(heartbeat_interval_s=0.05),
        ws=WsConfig(ping_interval_s=0.05, ping_timeout_s=5.0),
    )
    srv = Server(create_app(cfg, services=stack.services), cfg)
    await srv.start()
    raw = RawClient(srv.port)
    try:
        await raw.handshake()
        opcodes: set[int] = set()
        heartbeats: list[dict[str, Any]] = []
        while not (heartbeats and 0x9 in opcodes):
            opcode, payload = await raw.frame()
            opcodes.add(opcode)
            if opcode == 0x1:
                heartbeats += split(payload)
        assert heartbeats[0]["type"] == "heartbeat" and heartbeats[0]["ts"] > 1_700_000_000_000_000
    finally:
        raw.close()
        await srv.stop()


@pytest.mark.parametrize(
    ("message", "text"),
    [
        ({"op": "dance", "id": 9}, 'unknown op "dance"'),
        ({"op": "subscribe", "ch": ["nope.AAPL"], "id": 9}, 'unknown channel "nope.AAPL"'),
        ({"op": "subscribe", "ch": ["book.ZZZZ"], "id": 9}, 'unknown symbol "ZZZZ"'),
    ],
)
def test_error_messages_quote_values_as_json_does(client: Any, message: Any, text: str) -> None:
    """A client sees the values it sent in the API's own (JSON) quotes, never Python's."""
    with client.websocket_connect("/v1/ws") as ws:
        r = SyncReader(ws)
        r.send(message)
        err = r.next()
        assert text in err["message"], err
        assert "'" not in err["message"], err
