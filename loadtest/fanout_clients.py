"""The load clients of ``quotegate bench fanout``: one process per spare core, each holding many
connections and counting what arrives with one :class:`~loadtest.fanout_message.Tally`.

They are built to cost little per message, so that the server, not the client, is measured:

* WebSocket (quotegate, ``websockets``, Starlette, socket.io, the raw protocol): picows, a
  Cython WebSocket client; a frame's payload is scanned once for all the messages it carries;
* SSE: a plain asyncio protocol, httptools' response parser (it undoes the chunked encoding)
  and one scan per chunk of complete events;
* polling: the same protocol, one keep-alive connection per client, a long poll (``wait``)
  after each answer, with the cursor the answer returned.

:func:`run_clients` is the process: it answers ``("connected", {...})`` once every connection
is open (and subscribed, unless the spec says to wait for ``("subscribe",)``), then obeys
``("start",)`` (reset the counts and record), ``("stop",)`` (answer ``("tally", report)``) and
``("close",)``.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any
from urllib.parse import quote

import orjson

from loadtest.fanout_message import Tally
from loadtest.fanout_proc import pin, raise_nofile, watch_pipe

WS_KINDS = ("quotegate-ws", "websockets", "starlette-ws", "socketio", "raw-ws")
SSE_KINDS = ("quotegate-sse", "sse-starlette")
POLL_KINDS = ("quotegate-poll",)
CONNECT_TIMEOUT_S = 10.0


@dataclass(frozen=True, slots=True, kw_only=True)
class ClientSpec:
    kind: str
    port: int
    channel_sets: tuple[tuple[str, ...], ...]
    """One entry per connection: the channels it subscribes to."""
    subscribe_at_connect: bool = True
    cpus: tuple[int, ...] = ()
    nice: int = 0
    connect_concurrency: int = 200
    poll_wait_s: float = 5.0


def subscribe_text(kind: str, channels: tuple[str, ...]) -> bytes:
    """The subscribe message of a WebSocket ``kind``."""
    if kind == "quotegate-ws":
        return orjson.dumps({"op": "subscribe", "ch": list(channels), "id": 1})
    if kind == "socketio":
        return b"42" + orjson.dumps(["subscribe", ",".join(channels)])
    return ",".join(channels).encode()


def ws_path(kind: str) -> str:
    return {
        "quotegate-ws": "/v1/ws",
        "websockets": "/",
        "raw-ws": "/",
        "starlette-ws": "/ws",
        "socketio": "/socket.io/?EIO=4&transport=websocket",
    }[kind]


class Client:
    """One connection: ``last`` seq per channel, ``subscribe()`` when told, ``close()``."""

    def __init__(self, tally: Tally, channels: tuple[str, ...]) -> None:
        self.tally = tally
        self.channels = channels
        self.last: dict[bytes, int] = {}
        self.closed = False

    def subscribe(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


# -- WebSocket (picows) --------------------------------------------------------------------


def _ws_client(kind: str, tally: Tally, channels: tuple[str, ...]) -> Any:
    from picows import WSListener, WSMsgType, WSTransport

    text, close = WSMsgType.TEXT, WSMsgType.CLOSE
    subscribe_msg = subscribe_text(kind, channels)
    socketio = kind == "socketio"

    class WsClient(WSListener, Client):
        def __init__(self) -> None:
            Client.__init__(self, tally, channels)
            self.transport: WSTransport | None = None
            self.ready = asyncio.get_running_loop().create_future()
            self.partial = b""

        def on_ws_connected(self, transport: WSTransport) -> None:
            self.transport = transport
            if not socketio:
                self.ready.set_result(None)

        def on_ws_frame(self, transport: WSTransport, frame: Any) -> None:
            kind_ = frame.msg_type
            if kind_ is text or kind_ is WSMsgType.CONTINUATION:
                data = frame.get_payload_as_bytes()
                if not frame.fin:
                    self.partial += data
                    return
                if self.partial:
                    data, self.partial = self.partial + data, b""
                if socketio and data[:2] != b"42":
                    self._engineio(transport, data)
                    return
                tally.feed(self.last, data)
            elif kind_ is close:
                transport.disconnect()

        def _engineio(self, transport: WSTransport, data: bytes) -> None:
            if data[:1] == b"0":  # engine.io open: connect to the default namespace
                transport.send(text, b"40")
            elif data[:2] == b"40" and not self.ready.done():
                self.ready.set_result(None)
            elif data == b"2":  # engine.io ping
                transport.send(text, b"3")

        def on_ws_disconnected(self, transport: WSTransport) -> None:
            self.closed = True
            if not self.ready.done():
                self.ready.set_exception(ConnectionError("closed before ready"))

        def subscribe(self) -> None:
            if self.transport is not None and not self.closed:
                self.transport.send(text, subscribe_msg)

        def close(self) -> None:
            if self.transport is not None and not self.closed:
                self.transport.disconnect(graceful=False)

    return WsClient


async def open_ws(kind: str, port: int, tally: Tally, channels: tuple[str, ...]) -> Client:
    from picows import ws_connect

    factory = _ws_client(kind, tally, channels)
    url = f"ws://127.0.0.1:{port}{ws_path(kind)}"
    _, listener = await ws_connect(factory, url, max_frame_size=64 * 1024 * 1024)
    client: Any = listener
    await asyncio.wait_for(client.ready, CONNECT_TIMEOUT_S)
    assert isinstance(client, Client)
    return client


# -- HTTP: SSE and polling ------------------------------------------------------------------


class HttpClient(asyncio.Protocol, Client):
    """One keep-alive HTTP/1.1 connection whose response bodies go to ``on_body``."""

    def __init__(self, tally: Tally, channels: tuple[str, ...], host_port: str) -> None:
        import httptools

        Client.__init__(self, tally, channels)
        self.host_port = host_port
        self.transport: Any = None
        self.parser = httptools.HttpResponseParser(self)
        self.ready = asyncio.get_running_loop().create_future()
        self.status = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # uvloop's transports are not asyncio.Transport subclasses

    def data_received(self, data: bytes) -> None:
        import httptools

        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self.ready.done():
            self.ready.set_exception(ConnectionError("closed before ready"))

    def request(self, target: str) -> None:
        if self.transport is not None and not self.closed:
            self.transport.write(
                f"GET {target} HTTP/1.1\r\nHost: {self.host_port}\r\n\r\n".encode("latin-1")
            )

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()
        if self.status != 200:
            self.close()

    def close(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.abort()
        self.closed = True


class SseClient(HttpClient):
    def __init__(self, kind: str, tally: Tally, channels: tuple[str, ...], port: int) -> None:
        super().__init__(tally, channels, f"127.0.0.1:{port}")
        path = "/v1/sse" if kind == "quotegate-sse" else "/sse"
        self.target = f"{path}?ch={quote(','.join(channels))}"
        self.buffer = b""

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        if self.status == 200 and not self.ready.done():
            self.ready.set_result(None)

    def on_body(self, body: bytes) -> None:
        # every event's data is one line: whatever ends in a newline is complete
        data = self.buffer + body if self.buffer else body
        end = data.rfind(b"\n") + 1
        self.buffer = data[end:]
        if end:
            self.tally.feed(self.last, data[:end])

    def subscribe(self) -> None:
        self.request(self.target)


class PollClient(HttpClient):
    def __init__(self, tally: Tally, channels: tuple[str, ...], port: int, wait_s: float) -> None:
        super().__init__(tally, channels, f"127.0.0.1:{port}")
        self.base = f"/v1/poll?ch={quote(','.join(channels))}&wait={wait_s:g}"
        self.cursor: str | None = None
        self.body: list[bytes] = []

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        data = b"".join(self.body)
        self.body = []
        if self.status != 200:
            return
        start = data.find(b'"cursor":"')
        if start >= 0:
            start += 10
            self.cursor = data[start : data.index(b'"', start)].decode()
        self.tally.feed(self.last, data)
        if not self.ready.done():
            self.ready.set_result(None)
        self.subscribe()

    def subscribe(self) -> None:
        target = self.base if self.cursor is None else f"{self.base}&cursor={self.cursor}"
        self.request(target)


async def open_http(spec: ClientSpec, tally: Tally, channels: tuple[str, ...]) -> Client:
    loop = asyncio.get_running_loop()
    factory: Callable[[], HttpClient]
    if spec.kind in SSE_KINDS:
        factory = lambda: SseClient(spec.kind, tally, channels, spec.port)  # noqa: E731
    else:
        factory = lambda: PollClient(tally, channels, spec.port, spec.poll_wait_s)  # noqa: E731
    _, client = await loop.create_connection(factory, "127.0.0.1", spec.port)
    return client


# -- the process ------------------------------------------------------------------------------


async def connect_all(spec: ClientSpec, tally: Tally) -> tuple[list[Client], int]:
    """Open every connection (``connect_concurrency`` at a time); returns those open and how
    many failed."""
    gate = asyncio.Semaphore(spec.connect_concurrency)
    failed = 0

    async def one(channels: tuple[str, ...]) -> Client | None:
        nonlocal failed
        async with gate:
            try:
                if spec.kind in WS_KINDS:
                    return await asyncio.wait_for(
                        open_ws(spec.kind, spec.port, tally, channels), CONNECT_TIMEOUT_S * 2
                    )
                return await asyncio.wait_for(open_http(spec, tally, channels), CONNECT_TIMEOUT_S)
            except (OSError, TimeoutError, ConnectionError, RuntimeError):
                failed += 1
                return None

    opened = await asyncio.gather(*(one(channels) for channels in spec.channel_sets))
    return [c for c in opened if c is not None], failed


async def subscribe_all(clients: list[Client], timeout_s: float) -> int:
    """Subscribe every client; for HTTP ones wait (at most ``timeout_s``) for the response to
    start. Returns how many are not ready."""
    waits = []
    for client in clients:
        client.subscribe()
        if isinstance(client, HttpClient):
            waits.append(client.ready)
    if waits:
        await asyncio.wait(waits, timeout=timeout_s)
    return sum(1 for w in waits if not w.done() or w.exception() is not None)


def run_clients(spec: ClientSpec, conn: Connection) -> None:
    import uvloop

    pin(spec.cpus, spec.nice)
    raise_nofile(len(spec.channel_sets) + 1024)
    try:
        uvloop.run(_run(spec, conn))
    except Exception as exc:
        with contextlib.suppress(OSError):
            conn.send(("error", f"clients {spec.kind}: {type(exc).__name__}: {exc}"))
        sys.exit(1)


async def _run(spec: ClientSpec, conn: Connection) -> None:
    tally = Tally()
    commands: asyncio.Queue[tuple[Any, ...]] = asyncio.Queue()
    watch_pipe(conn, commands.put_nowait)
    clients, failed = await connect_all(spec, tally)
    not_ready = 0
    if spec.subscribe_at_connect:
        not_ready = await subscribe_all(clients, CONNECT_TIMEOUT_S * 3)
    conn.send(("connected", {"open": len(clients), "failed": failed, "not_ready": not_ready}))
    while True:
        command = await commands.get()
        if command[0] == "subscribe":
            not_ready = await subscribe_all(clients, CONNECT_TIMEOUT_S * 3)
            conn.send(("subscribed", {"not_ready": not_ready}))
        elif command[0] == "start":
            tally.reset()
            tally.recording = True
        elif command[0] == "stop":
            tally.recording = False
            report = tally.report()
            report["closed"] = sum(1 for c in clients if c.closed)
            conn.send(("tally", report))
        elif command[0] in ("close", "eof"):
            break
    for client in clients:
        client.close()
    await asyncio.sleep(0.1)
    with contextlib.suppress(OSError):
        conn.send(("closed", None))
