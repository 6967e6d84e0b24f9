"""The servers of ``quotegate bench fanout``, each run by :func:`serve` in its own process.

Every kind serves the same channels on a pre-bound 127.0.0.1 socket and is fed by the same
in-process :class:`~loadtest.fanout_publisher.Publisher` calling its ``publish(envelope)``:

* ``quotegate`` (measured as ``quotegate-ws``, ``quotegate-sse`` and ``quotegate-poll``):
  ``create_app`` over a memory bus and store, served by the ``uvicorn.Config`` of
  ``quotegate run`` (:func:`gateway.roots.run.uvicorn_config`); ``publish`` is what the
  embedded runtime's sink does: ``store.record`` then ``bus.publish``, one envelope per message;
* ``websockets``: the ``websockets`` library's own asyncio server, ``websockets.broadcast()``
  of the payload text to the connections subscribed to the channel;
* ``starlette-ws``: a Starlette WebSocket endpoint on uvicorn, one bounded queue and one
  ``send_text`` loop per connection (the usual broadcast idiom);
* ``sse-starlette``: an ``EventSourceResponse`` per client fed by the same kind of queue;
* ``socketio``: python-socketio's ASGI app on uvicorn, ``emit`` to a room per channel;
* ``raw-ws``: the ceiling of this machine and client, no library: a hand-written asyncio
  protocol that does the WebSocket handshake and writes each message's frame, built once, to
  every subscribed transport.

The comparison servers on uvicorn use the same uvicorn settings as quotegate's plain ones
(httptools, the websockets sans-I/O protocol, no compression). Their clients subscribe by
sending the channel names, comma-separated, as a text message (socket.io: a ``subscribe``
event), so that "connected" and "subscribed" memory can be told apart as for quotegate. A
queue that is full drops the message; the client sees the seq gap and counts it lost.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import gc
import hashlib
import socket
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from gateway.wire.envelope import Envelope
from loadtest import fanout_message
from loadtest.fanout_proc import pin, raise_nofile, watch_pipe

QUOTEGATE = "quotegate"
SERVER_KINDS = (QUOTEGATE, "websockets", "starlette-ws", "sse-starlette", "socketio", "raw-ws")
WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
START_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 10.0


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerSpec:
    kind: str
    channels: tuple[str, ...]
    cpus: tuple[int, ...] = ()
    nice: int = 0
    gc_threshold: int = 50_000
    queue_max_messages: int = 4096
    """Per-connection queue of the comparison servers that have one (starlette-ws,
    sse-starlette); quotegate's own bounds are its ``HubConfig`` defaults."""
    max_connections: int = 20_000


class BenchServer:
    """What :func:`serve` drives: ``start`` on a listening socket, ``publish`` each message
    (may return an awaitable), ``stop``."""

    async def start(self, sock: socket.socket) -> None:
        raise NotImplementedError

    def publish(self, envelope: Envelope) -> Awaitable[None] | None:
        raise NotImplementedError

    async def stop(self) -> None:
        raise NotImplementedError


class UvicornServer(BenchServer):
    """A server whose ASGI app runs on uvicorn in this process's loop."""

    def __init__(self) -> None:
        self._server: Any = None
        self._task: asyncio.Task[None] | None = None

    def config(self) -> Any:
        raise NotImplementedError

    async def start(self, sock: socket.socket) -> None:
        import uvicorn

        self._server = server = uvicorn.Server(self.config())
        self._task = asyncio.create_task(server.serve(sockets=[sock]))
        async with asyncio.timeout(START_TIMEOUT_S):
            while not server.started:
                if self._task.done():
                    self._task.result()
                    raise RuntimeError("uvicorn stopped while starting")
                await asyncio.sleep(0.01)

    async def stop(self) -> None:
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                async with asyncio.timeout(STOP_TIMEOUT_S):
                    await self._task


def plain_uvicorn_config(app: Any) -> Any:
    """The comparison servers' uvicorn settings: those of ``quotegate run`` without anything
    quotegate-specific."""
    import uvicorn

    from gateway.config import GatewayConfig

    kwargs = GatewayConfig(log_level="warning").uvicorn_kwargs()
    for key in ("host", "port"):
        kwargs.pop(key)
    kwargs["ws"] = "websockets-sansio"
    return uvicorn.Config(app, http="httptools", lifespan="on", access_log=False, **kwargs)


class QuotegateServer(UvicornServer):
    def __init__(self, spec: ServerSpec) -> None:
        super().__init__()
        from gateway.config import GatewayConfig, HubConfig
        from gateway.edge.app import create_app
        from gateway.seams.bus_memory import MemoryBus
        from gateway.seams.services import Services
        from gateway.seams.store_memory import MemorySnapshotStore

        self.seqs: dict[str, int] = dict.fromkeys(spec.channels, 0)
        self.bus = MemoryBus()
        self.store = MemorySnapshotStore(snapshot_provider=self._snapshot)
        for channel in spec.channels:
            self.store.record_snapshot(fanout_message.snapshot(channel, 0))
        symbols = [{"symbol": s} for s in fanout_message.symbol_names(list(spec.channels))]
        services = Services(bus=self.bus, store=self.store, symbols=lambda: symbols)
        self.gateway = GatewayConfig(
            log_level="warning", hub=HubConfig(max_connections=spec.max_connections)
        )
        self.app = create_app(self.gateway, services=services)

    def _snapshot(self, channel: str) -> Envelope | None:
        seq = self.seqs.get(channel)
        return None if seq is None else fanout_message.snapshot(channel, seq)

    def config(self) -> Any:
        from gateway.roots.run import uvicorn_config

        return uvicorn_config(self.app, self.gateway)

    def publish(self, envelope: Envelope) -> None:
        self.seqs[envelope.channel] = envelope.seq
        self.store.record(envelope)
        self.bus.publish(envelope)


class WebsocketsServer(BenchServer):
    def __init__(self, spec: ServerSpec) -> None:
        self.subs: dict[str, set[Any]] = {ch: set() for ch in spec.channels}
        self._server: Any = None

    async def _handler(self, ws: Any) -> None:
        from websockets.exceptions import ConnectionClosed

        joined: list[set[Any]] = []
        try:
            async for message in ws:
                for channel in str(message).split(","):
                    subs = self.subs.get(channel)
                    if subs is not None:
                        subs.add(ws)
                        joined.append(subs)
        except ConnectionClosed:
            pass  # the client left
        finally:
            for subs in joined:
                subs.discard(ws)

    async def start(self, sock: socket.socket) -> None:
        from websockets.asyncio.server import serve

        self._server = await serve(self._handler, sock=sock, compression=None)

    def publish(self, envelope: Envelope) -> None:
        from websockets.asyncio.server import broadcast

        broadcast(self.subs[envelope.channel], envelope.payload.decode())

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(STOP_TIMEOUT_S):
                    await self._server.wait_closed()


class QueueFanout:
    """Per-connection bounded queues by channel (starlette-ws, sse-starlette)."""

    def __init__(self, spec: ServerSpec) -> None:
        self.subs: dict[str, set[asyncio.Queue[Any]]] = {ch: set() for ch in spec.channels}
        self.queue_max = spec.queue_max_messages

    def join(self, queue: asyncio.Queue[Any], channels: str) -> list[str]:
        joined = [ch for ch in channels.split(",") if ch in self.subs]
        for channel in joined:
            self.subs[channel].add(queue)
        return joined

    def leave(self, queue: asyncio.Queue[Any], channels: list[str]) -> None:
        for channel in channels:
            self.subs[channel].discard(queue)

    def publish(self, envelope: Envelope) -> None:
        text = envelope.payload.decode()
        for queue in self.subs[envelope.channel]:
            if not queue.full():
                queue.put_nowait(text)


class StarletteWsServer(UvicornServer):
    def __init__(self, spec: ServerSpec) -> None:
        super().__init__()
        from starlette.applications import Starlette
        from starlette.routing import WebSocketRoute
        from starlette.websockets import WebSocket

        fanout = self.fanout = QueueFanout(spec)

        async def endpoint(ws: WebSocket) -> None:
            await ws.accept()
            queue: asyncio.Queue[str | None] = asyncio.Queue(fanout.queue_max)
            joined: list[str] = []

            async def receive() -> None:
                try:
                    while True:
                        message = await ws.receive()
                        if message["type"] == "websocket.disconnect":
                            break
                        joined.extend(fanout.join(queue, message.get("text") or ""))
                finally:
                    fanout.leave(queue, joined)
                    while not queue.empty():
                        queue.get_nowait()
                    queue.put_nowait(None)  # wakes the sender: the client is gone

            reader = asyncio.create_task(receive())
            try:
                while (text := await queue.get()) is not None:
                    await ws.send_text(text)
            except Exception:
                pass  # the client is gone
            finally:
                fanout.leave(queue, joined)
                reader.cancel()

        self.app = Starlette(routes=[WebSocketRoute("/ws", endpoint)])

    def config(self) -> Any:
        return plain_uvicorn_config(self.app)

    def publish(self, envelope: Envelope) -> None:
        self.fanout.publish(envelope)


class SseStarletteServer(UvicornServer):
    def __init__(self, spec: ServerSpec) -> None:
        super().__init__()
        from sse_starlette import EventSourceResponse
        from starlette.applications import Starlette
        from starlette.requests import Request
        from starlette.routing import Route

        fanout = self.fanout = QueueFanout(spec)

        async def endpoint(request: Request) -> Any:
            queue: asyncio.Queue[str] = asyncio.Queue(fanout.queue_max)
            joined = fanout.join(queue, request.query_params.get("ch", ""))

            async def events() -> Any:
                try:
                    while True:
                        yield {"data": await queue.get()}
                finally:
                    fanout.leave(queue, joined)

            return EventSourceResponse(events(), ping=3600)

        self.app = Starlette(routes=[Route("/sse", endpoint)])

    def config(self) -> Any:
        return plain_uvicorn_config(self.app)

    def publish(self, envelope: Envelope) -> None:
        self.fanout.publish(envelope)


class SocketioServer(UvicornServer):
    def __init__(self, spec: ServerSpec) -> None:
        super().__init__()
        import socketio

        sio = socketio.AsyncServer(async_mode="asgi", logger=False, engineio_logger=False)
        self.sio = sio
        channels = set(spec.channels)

        @sio.on("subscribe")  # type: ignore[untyped-decorator]
        async def subscribe(sid: str, data: str) -> None:
            for channel in str(data).split(","):
                if channel in channels:
                    await sio.enter_room(sid, channel)

        self.app = socketio.ASGIApp(sio)

    def config(self) -> Any:
        return plain_uvicorn_config(self.app)

    def publish(self, envelope: Envelope) -> Awaitable[None]:
        result: Awaitable[None] = self.sio.emit("m", envelope.payload.decode(), to=envelope.channel)
        return result


class RawWsProtocol(asyncio.Protocol):
    """The least a WebSocket server can do: handshake, read the client's (masked, small)
    frames for its subscribe text, answer pings, and let :class:`RawWsServer` write frames."""

    def __init__(self, server: RawWsServer) -> None:
        self.server = server
        self.transport: Any = None
        self.buffer = b""
        self.open = False
        self.joined: list[str] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if not self.open:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head, self.buffer = self.buffer[:end], self.buffer[end + 4 :]
            key = b""
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"sec-websocket-key":
                    key = value.strip()
            accept = base64.b64encode(hashlib.sha1(key + WS_GUID).digest())
            self.transport.write(
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n"
            )
            self.open = True
        while (frame := self._frame()) is not None:
            opcode, payload = frame
            if opcode == 1:
                self.joined.extend(self.server.join(self.transport, payload.decode()))
            elif opcode == 9:
                self.transport.write(ws_frame(payload, opcode=10))
            elif opcode == 8:
                self.transport.close()

    def _frame(self) -> tuple[int, bytes] | None:
        buf = self.buffer
        if len(buf) < 2:
            return None
        length, at = buf[1] & 0x7F, 2
        if length == 126:
            if len(buf) < 4:
                return None
            length, at = int.from_bytes(buf[2:4], "big"), 4
        elif length == 127:
            self.transport.close()  # never sent by the bench client
            return None
        mask_at, at = at, at + (4 if buf[1] & 0x80 else 0)
        if len(buf) < at + length:
            return None
        payload = bytes(buf[at : at + length])
        if buf[1] & 0x80:
            mask = buf[mask_at:at]
            payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.buffer = buf[at + length :]
        return buf[0] & 0x0F, payload

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.leave(self.transport, self.joined)


def ws_frame(payload: bytes, *, opcode: int = 1) -> bytes:
    """An unmasked server frame (FIN set)."""
    n = len(payload)
    if n < 126:
        head = bytes((0x80 | opcode, n))
    elif n < 65536:
        head = bytes((0x80 | opcode, 126)) + n.to_bytes(2, "big")
    else:
        head = bytes((0x80 | opcode, 127)) + n.to_bytes(8, "big")
    return head + payload


class RawWsServer(BenchServer):
    def __init__(self, spec: ServerSpec) -> None:
        self.subs: dict[str, set[Any]] = {ch: set() for ch in spec.channels}
        self._server: asyncio.Server | None = None

    def join(self, transport: Any, channels: str) -> list[str]:
        joined = [ch for ch in channels.split(",") if ch in self.subs]
        for channel in joined:
            self.subs[channel].add(transport)
        return joined

    def leave(self, transport: Any, channels: list[str]) -> None:
        for channel in channels:
            self.subs[channel].discard(transport)

    async def start(self, sock: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: RawWsProtocol(self), sock=sock)

    def publish(self, envelope: Envelope) -> None:
        frame = ws_frame(envelope.payload)
        for transport in self.subs[envelope.channel]:
            transport.write(frame)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()


def build(spec: ServerSpec) -> BenchServer:
    makers: dict[str, Callable[[ServerSpec], BenchServer]] = {
        QUOTEGATE: QuotegateServer,
        "websockets": WebsocketsServer,
        "starlette-ws": StarletteWsServer,
        "sse-starlette": SseStarletteServer,
        "socketio": SocketioServer,
        "raw-ws": RawWsServer,
    }
    return makers[spec.kind](spec)


def listening_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(4096)
    sock.setblocking(False)
    return sock


def serve(spec: ServerSpec, conn: Connection) -> None:
    """A server process: pin, raise the file limit, serve until told to stop. Answers
    ``("ready", port)``, then ``("stats", {...})`` to every ``("stats",)`` and the publisher's
    figures between two monotonic times to ``("window", start, end)``; ``("rate", R)`` sets
    the publisher's rate (messages/s over all channels; 0 pauses, ``inf`` publishes as fast as
    the loop turns)."""
    import uvloop

    pin(spec.cpus, spec.nice)
    raise_nofile(spec.max_connections * 2 + 1024)
    try:
        uvloop.run(_serve(spec, conn))
    except Exception as exc:  # reported to the parent, which shows it
        with contextlib.suppress(OSError):
            conn.send(("error", f"{spec.kind}: {type(exc).__name__}: {exc}"))
        sys.exit(1)


async def _serve(spec: ServerSpec, conn: Connection) -> None:
    from loadtest.fanout_publisher import Publisher

    server = build(spec)
    sock = listening_socket()
    await server.start(sock)
    if spec.gc_threshold:
        gc.collect()
        gc.freeze()
        gc.set_threshold(spec.gc_threshold, *gc.get_threshold()[1:])
    publisher = Publisher(list(spec.channels), server.publish)
    stopping = asyncio.Event()

    def handle(command: tuple[Any, ...]) -> None:
        if command[0] == "rate":
            publisher.set_rate(float(command[1]))
        elif command[0] == "stats":
            conn.send(("stats", publisher.stats()))
        elif command[0] == "window":
            conn.send(("window", publisher.window(command[1], command[2])))
        elif command[0] in ("stop", "eof"):
            stopping.set()

    watch_pipe(conn, handle)
    task = asyncio.create_task(publisher.run())
    conn.send(("ready", sock.getsockname()[1]))
    await stopping.wait()
    publisher.close()
    await asyncio.gather(task, return_exceptions=True)
    await server.stop()
    conn.send(("stopped", None))
