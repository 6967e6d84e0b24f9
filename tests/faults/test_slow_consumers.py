"""Slow consumers against ``quotegate run`` (2,000 orders/s, small per-connection queues):
clients that stop reading (a 4 KiB receive buffer, the library's own buffer at one frame).

- on public channels: nobody waits for it; when it reads again it gets fresh snapshots of the
  channels it fell behind on (conflation), never a gap or a wrong book, and stays connected;
- on ``orders``: past the bound the server closes it with 4008; when the close frame cannot be
  written (the client's buffers are full) the transport is aborted soon after. Either way the
  client sees the end promptly (4008, or 1006 without a close frame), never the keepalive's
  1011 seconds later;
- a reading bystander's stream stays gap-free meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import Iterator

import httpx
import orjson
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.faults.harness import KEY, Client, Quotegate, read_ws, subscribe_op

pytestmark = pytest.mark.slow

PING_S = 5.0
"""The server's keepalive ping interval and timeout: a stuck close would show as 1011 after
about two of them."""
ENV = {
    "QUOTEGATE_HUB_QUEUE_MAX_MESSAGES": "16",
    "QUOTEGATE_WS_PING_INTERVAL_S": str(PING_S),
    "QUOTEGATE_WS_PING_TIMEOUT_S": str(PING_S),
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Quotegate]:
    log = tmp_path_factory.mktemp("slow") / "qg.log"
    qg = Quotegate(log, "--symbols", "AAPL", "--rate", "2000", env=ENV).start()
    try:
        yield qg
    finally:
        qg.stop()


async def _stalled_client(qg: Quotegate) -> tuple[ClientConnection, socket.socket]:
    """A WebSocket whose reads stop as soon as nobody calls ``recv``, and its socket."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", qg.port))
    sock.setblocking(False)
    return await connect(qg.ws_url, sock=sock, max_queue=1, max_size=None), sock


def _tcp_established(sock: socket.socket) -> bool:
    """Whether the kernel still has the connection ESTABLISHED (no FIN or RST from the
    server yet), read without consuming anything (``TCP_INFO``'s first byte)."""
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)
    except OSError:
        return False  # the client library closed it already: the connection ended
    return info[0] == 1  # TCP_ESTABLISHED


async def _bystander(qg: Quotegate, client: Client, stop: asyncio.Event) -> None:
    async with connect(qg.ws_url, max_size=None) as ws:
        await ws.send(subscribe_op(["book.AAPL", "trades.AAPL"]))
        while not stop.is_set():
            await read_ws(ws, client, 0.2)


async def test_slow_public_consumer_gets_snapshots_and_stays(server: Quotegate) -> None:
    bystander, stop = Client(), asyncio.Event()
    watching = asyncio.create_task(_bystander(server, bystander, stop))
    slow = Client()
    ws, _ = await _stalled_client(server)
    try:
        await ws.send(subscribe_op(["book.AAPL", "trades.AAPL", "ticker.AAPL"]))
        await asyncio.sleep(PING_S - 0.5)  # not reading (less than a keepalive round)
        await read_ws(ws, slow, 2.0)
        assert ws.close_code is None, "a slow public consumer must not be disconnected"
    finally:
        await ws.close()
        stop.set()
        await watching
    books = [s for s in slow.snapshots if s[0] == "book.AAPL"]
    assert len(books) >= 2, "the slow consumer was never conflated (not slow enough?)"
    assert slow.updates > 0 and not slow.gaps, slow.gaps[:5]
    assert not slow.checksum_mismatches
    assert bystander.updates > 100 and not bystander.gaps and not bystander.checksum_mismatches


async def _slow_disconnects(http: httpx.AsyncClient) -> float:
    """The server's ``quotegate_slow_disconnects_total`` of WebSocket connections."""
    text = (await http.get("/metrics")).text
    for line in text.splitlines():
        if line.startswith('quotegate_slow_disconnects_total{transport="ws"}'):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def test_slow_orders_consumer_sees_its_end_promptly(server: Quotegate) -> None:
    bystander, stop = Client(), asyncio.Event()
    watching = asyncio.create_task(_bystander(server, bystander, stop))
    ws, sock = await _stalled_client(server)
    mine = Client()
    code: int | None = None
    async with httpx.AsyncClient(base_url=server.base) as http:
        slow_before = await _slow_disconnects(http)
    try:
        await ws.send(orjson.dumps({"op": "auth", "token": KEY, "id": 0}).decode())
        await ws.send(subscribe_op(["orders", "book.AAPL", "trades.AAPL"]))
        await asyncio.sleep(1.5)  # not reading: the market data fills the buffers
        async with httpx.AsyncClient(
            base_url=server.base, headers={"Authorization": f"Bearer {KEY}"}
        ) as http:
            # each order is an orders event for a client that cannot take it; once the socket's
            # buffers are full (how soon depends on the kernel's autotuning) the server decides
            # on 4008: post until its counter moves
            for i in range(2000):
                body = {"symbol": "AAPL", "side": "buy", "type": "limit", "price": "1.00",
                        "qty": 1, "clientOrderId": f"slow-{i}"}  # fmt: skip
                await http.post("/v1/order", json=body)
                if i % 10 == 9 and await _slow_disconnects(http) > slow_before:
                    break
        decided = time.monotonic()  # (the server decided on 4008 just before this)
        # still not reading; the server must give up on the connection (FIN after a close
        # frame it could write, or an abort) well before its keepalive would (2 x PING_S)
        while _tcp_established(sock) and time.monotonic() - decided < PING_S:  # noqa: ASYNC110
            await asyncio.sleep(0.05)  # (polling the kernel's view: there is no event for it)
        gave_up = time.monotonic() - decided
        reading = time.monotonic()
        with contextlib.suppress(ConnectionClosed):
            while True:
                mine.on_frame(await asyncio.wait_for(ws.recv(), 5.0))
        ended = time.monotonic()
        rcvd = ws.protocol.close_rcvd
        code = rcvd.code if rcvd is not None else 1006
    finally:
        await ws.close()
        stop.set()
        await watching
    assert gave_up < PING_S - 1, f"the server took {gave_up:.1f} s to end a 4008 connection"
    assert code in (4008, 1006), f"the client saw {code}, not 4008 (or an abort)"
    assert ended - reading < 5.0, f"{ended - reading:.1f} s to see the end after reading"
    assert not mine.checksum_mismatches
    assert bystander.updates > 100 and not bystander.gaps and not bystander.checksum_mismatches
