"""Slow consumers against ``quotegate run`` (1,000 orders/s, small per-connection queues):
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
from pathlib import Path

import httpx
import orjson
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.protocol import State

from tests.faults.harness import KEY, Client, Quotegate, read_ws, subscribe_op

pytestmark = pytest.mark.slow

PING_S = 10.0
"""The server's keepalive ping interval and timeout: long enough that the keepalive never
decides these tests (a stuck close would show as 1011 after about two of them)."""
GIVE_UP_MAX_S = 4.0
"""How long after the last order the server may take to end the slow ``orders`` connection
(4008 decided at once, then at most the close timeout to write the close frame)."""
STALL_S = 3.0
"""How long the slow public consumer does not read."""
READ_MAX_S = 5.0
"""How long the slow ``orders`` client reads before it must have seen its connection end."""
ENV = {
    "QUOTEGATE_HUB_QUEUE_MAX_MESSAGES": "16",
    "QUOTEGATE_HUB_QUEUE_MAX_BYTES": "65536",
    "QUOTEGATE_WS_PING_INTERVAL_S": str(PING_S),
    "QUOTEGATE_WS_PING_TIMEOUT_S": str(PING_S),
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Quotegate]:
    log = tmp_path_factory.mktemp("slow") / "qg.log"
    qg = Quotegate(log, "--symbols", "AAPL", "--rate", "1000", env=ENV).start()
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


def _server_holds_open(server_port: int, sock: socket.socket) -> bool:
    """Whether the server's end of ``sock``'s connection is still ESTABLISHED, as the kernel
    lists it (``/proc/net/tcp``). Once the server closes or aborts its transport the socket
    leaves that state at once (FIN-WAIT-1: its FIN waits behind the data the client has not
    taken), which the client cannot see before it reads."""
    client_port = sock.getsockname()[1]
    local, remote = f":{server_port:04X}", f":{client_port:04X}"
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1].endswith(local) and fields[2].endswith(remote):
            return fields[3] == "01"  # TCP_ESTABLISHED
    return False


BYSTANDER_UPDATES = 100
"""Updates the reading bystander must have checked before a test ends."""


async def _until_updates(client: Client, count: int, max_s: float = 15.0) -> None:
    """Wait (bounded) until ``client`` has seen ``count`` updates: on a loaded machine the
    test's own steps may all be over before the bystander saw much."""
    deadline = time.monotonic() + max_s
    while client.updates < count and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.05)


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
        await asyncio.sleep(STALL_S)  # not reading
        await read_ws(ws, slow, 2.0)
        assert ws.close_code is None, "a slow public consumer must not be disconnected"
    finally:
        await ws.close()
        await _until_updates(bystander, BYSTANDER_UPDATES)
        stop.set()
        await watching
    books = [s for s in slow.snapshots if s[0] == "book.AAPL"]
    assert len(books) >= 2, "the slow consumer was never conflated (not slow enough?)"
    assert slow.updates > 0 and not slow.gaps, slow.gaps[:5]
    assert not slow.checksum_mismatches
    assert (
        bystander.updates >= BYSTANDER_UPDATES
        and not bystander.gaps
        and not bystander.checksum_mismatches
    )


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
    try:
        await ws.send(orjson.dumps({"op": "auth", "token": KEY, "id": 0}).decode())
        # orders only: market data flowing first would let the kernel grow the socket's
        # buffers (loopback segments are 64 KiB) to megabytes before anything is held
        await ws.send(subscribe_op(["orders"]))
        await asyncio.sleep(0.5)  # not reading from now on
        assert _server_holds_open(server.port, sock)  # (the kernel lists the connection)
        async with (
            httpx.AsyncClient(
                base_url=server.base, headers={"Authorization": f"Bearer {KEY}"}, timeout=10.0
            ) as http,
            asyncio.timeout(40),
        ):
            # a market order sweeping the book is one command with an orders event per fill:
            # more than the queue's 16 messages at once, for a client that takes none (small
            # events trickling in one by one would only fill the kernel's socket buffer);
            # then, should the counter not have moved, limit orders at the account's rate
            slow_before = await _slow_disconnects(http)
            sweep = {"symbol": "AAPL", "side": "buy", "type": "market", "qty": 3000}
            await http.post("/v1/order", json={**sweep, "clientOrderId": "slow-sweep"})
            batch = 0
            while await _slow_disconnects(http) == slow_before:
                await asyncio.sleep(0.2)
                await asyncio.gather(
                    *(
                        http.post(
                            "/v1/order",
                            json={
                                "symbol": "AAPL",
                                "side": "buy",
                                "type": "limit",
                                "price": "1.00",
                                "qty": 1,
                                "clientOrderId": f"slow-{batch}-{i}",
                            },
                        )
                        for i in range(10)
                    )
                )
                batch += 1
            assert await _slow_disconnects(http) > slow_before, "4008 was never decided"
        decided = time.monotonic()  # (the server decided on 4008 just before this)
        # still not reading; the server must give up on the connection (a close frame it could
        # write, or an abort after the close timeout) well before its keepalive would
        limit = decided + 2 * GIVE_UP_MAX_S
        while _server_holds_open(server.port, sock) and time.monotonic() < limit:  # noqa: ASYNC110
            await asyncio.sleep(0.05)  # (polling the kernel's view: there is no event for it)
        gave_up = time.monotonic() - decided
        reading = time.monotonic()
        ended = reading + READ_MAX_S
        with contextlib.suppress(ConnectionClosed, TimeoutError):
            # bounded: a server that never ends the connection keeps sending market data
            async with asyncio.timeout(READ_MAX_S):
                while True:
                    mine.on_frame(await ws.recv())
        if ws.protocol.state is State.CLOSED:
            ended = time.monotonic()
            rcvd = ws.protocol.close_rcvd
            code = rcvd.code if rcvd is not None else 1006
    finally:
        await ws.close()
        await _until_updates(bystander, BYSTANDER_UPDATES)
        stop.set()
        await watching
    assert gave_up < GIVE_UP_MAX_S, f"the server took {gave_up:.1f} s to end a 4008 connection"
    assert code in (4008, 1006), f"the client saw {code}, not 4008 (or an abort)"
    assert ended - reading < READ_MAX_S, f"{ended - reading:.1f} s to see the end after reading"
    assert not mine.checksum_mismatches
    assert (
        bystander.updates >= BYSTANDER_UPDATES
        and not bystander.gaps
        and not bystander.checksum_mismatches
    )
