"""The direct lane under uvicorn: protocols that let the hub write frames and SSE bodies.

WebSocket:

:class:`LaneWebSocketProtocol` is uvicorn's websockets-sansio protocol with one addition: once
the handshake is accepted it puts itself in the ASGI scope as
``scope["extensions"]["quotegate.ws_lane"]`` (:data:`gateway.edge.ws.WS_LANE`), and it is a
:class:`~gateway.fanout.transport.Transport`: the hub writes each batch as ready-made frame
bytes (:func:`gateway.edge.ws.frame_of`) straight to the socket's transport, synchronously,
while the handshake, receives and keepalive pings stay on ASGI, and the close goes through
uvicorn's own ASGI ``send``. Without it (any other ASGI server, or uvicorn
without this class) the endpoint falls back to ASGI ``websocket.send``.

It also bounds what a client that never reads can make the server hold through uvicorn
itself: the pong uvicorn writes for each WebSocket ping frame goes to the transport's
buffer; when that buffer is past ``max_held_bytes`` the connection is aborted. And after a
close frame the server waits ``close_timeout_s`` (not uvicorn's fixed 10 s) for the client's
reply before it closes the socket.

SSE: :class:`LaneHttpProtocol` is uvicorn's httptools protocol offering each GET request a
:class:`HttpBodyLane` as ``scope["extensions"]["quotegate.http_lane"]``
(:data:`gateway.edge.sse.HTTP_LANE`): once the SSE response has started on ASGI (status,
headers, the ``retry:`` field) the hub writes each rendered batch as one body chunk straight
to the socket; the end of the response goes through ASGI again.

:func:`lane_protocol` makes the WebSocket class for a configuration;
``gateway.roots.run.uvicorn_config`` passes it to uvicorn as ``ws=`` and
:class:`LaneHttpProtocol` as ``http=``.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections.abc import Sequence
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from gateway.edge.sse import HTTP_LANE
from gateway.edge.ws import WS_LANE, frame_of
from gateway.fanout.transport import Outgoing


class LaneWebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's sans-I/O WebSocket protocol that is also the connection's
    :class:`~gateway.fanout.transport.Transport` (see the module docstring)."""

    name = "ws"
    max_held_bytes = 4 * 1024 * 1024
    """Past this many bytes in the transport's buffer a ping's pong aborts the connection."""
    close_timeout_s = 1.0
    """How long a slow client's close may take (the close frame written and taken, then the
    client's reply) before the connection is aborted."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.close_timeout = self.close_timeout_s
        # the same uses as uvicorn's asyncio.Queue and asyncio.Event, without their deques
        # (about 3 KB less per connection)
        self.queue = _Inbox()  # type: ignore[assignment]
        self.writable = _Flag()  # type: ignore[assignment]

    async def send(self, message: Any) -> None:
        await super().send(message)
        if message["type"] == "websocket.accept":
            # the handshake's request and response are not needed any more (about 2 KB)
            self.request = self.response = None  # type: ignore[assignment]

    def handle_connect(self, event: Any) -> None:
        super().handle_connect(event)
        scope = getattr(self, "scope", None)
        if scope is not None and self.response.status_code == 101:
            scope["extensions"][WS_LANE] = self

    def handle_ping(self) -> None:
        if self.transport.get_write_buffer_size() > self.max_held_bytes:
            # the client sends pings and reads nothing: it would grow the buffer forever
            self.abort()
            return
        super().handle_ping()

    # -- gateway.fanout.transport.Transport --------------------------------------------------

    def can_write(self) -> bool:
        return self.writable_flag

    def write(self, batch: Sequence[Outgoing]) -> int:
        if self.close_sent or self.disconnected:
            raise ConnectionError("the WebSocket is closing")
        transport = self.transport
        transport.write(frame_of(batch))
        return transport.get_write_buffer_size()

    def buffered(self) -> int:
        return self.transport.get_write_buffer_size()

    async def wait_writable(self) -> None:
        await self.writable.wait()

    async def close(self, code: int, reason: str) -> None:
        """Send the close frame through uvicorn (it waits for room in the socket's buffer),
        give the client until ``close_timeout_s`` to take everything, else abort."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.close_timeout_s
        message: Any = {"type": "websocket.close", "code": code, "reason": reason}
        try:
            await asyncio.wait_for(self.send(message), self.close_timeout_s)
            if self.buffered():
                # what is left (the close frame last) has until the deadline to go out
                await asyncio.sleep(max(deadline - loop.time(), 0.0))
        except Exception:
            pass
        if self.disconnected:
            return
        if self.buffered() or loop.time() > deadline:
            self.abort()  # the client did not take the close frame in time

    def abort(self) -> None:
        if not self.disconnected:
            reset(self.transport)

    # flow control as a plain flag (read on every write round)

    writable_flag = True

    def pause_writing(self) -> None:
        self.writable_flag = False
        super().pause_writing()

    def resume_writing(self) -> None:
        self.writable_flag = True
        super().resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        self.writable_flag = True  # writes now fail: the connection closes
        super().connection_lost(exc)


def reset(transport: Any) -> None:
    """Abort ``transport`` with a TCP reset: a plain close would queue its FIN behind the
    unsent bytes, which a client that does not read never lets through, so it would never
    learn that the connection is over."""
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


class _Inbox:
    """uvicorn's receive queue as it uses it: ``put_nowait``, ``get``, ``empty``."""

    __slots__ = ("_items", "_waiter")

    def __init__(self) -> None:
        self._items: list[Any] = []
        self._waiter: asyncio.Future[None] | None = None

    def put_nowait(self, item: Any) -> None:
        self._items.append(item)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def get(self) -> Any:
        while not self._items:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self._items.pop(0)

    def empty(self) -> bool:
        return not self._items


class _Flag:
    """uvicorn's ``writable`` event as it uses it: ``set``, ``clear``, ``is_set``, ``wait``
    (any number of waiters)."""

    __slots__ = ("_set", "_waiter")

    def __init__(self) -> None:
        self._set = True
        self._waiter: asyncio.Future[None] | None = None

    def is_set(self) -> bool:
        return self._set

    def set(self) -> None:
        self._set = True
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def clear(self) -> None:
        self._set = False

    async def wait(self) -> None:
        while not self._set:
            if self._waiter is None:
                self._waiter = asyncio.get_running_loop().create_future()
            await asyncio.shield(self._waiter)


class HttpBodyLane:
    """:class:`gateway.edge.sse.BodyLane` over uvicorn's request/response cycle: writes a
    started chunked response's body straight to the socket's transport."""

    __slots__ = ("_cycle",)

    def __init__(self, cycle: Any) -> None:
        self._cycle = cycle

    def can_write(self) -> bool:
        return not self._cycle.flow.write_paused

    def write(self, data: bytes) -> int:
        cycle = self._cycle
        if cycle.disconnected or cycle.response_complete or not cycle.chunked_encoding:
            raise ConnectionError("the response is over")
        transport = cycle.transport
        transport.write(_chunk(data))
        return transport.get_write_buffer_size()  # type: ignore[no-any-return]

    def buffered(self) -> int:
        return self._cycle.transport.get_write_buffer_size()  # type: ignore[no-any-return]

    async def wait_writable(self) -> None:
        await self._cycle.flow.drain()

    def abort(self) -> None:
        reset(self._cycle.transport)


_last_chunk: list[bytes] = [b"", b""]


def _chunk(data: bytes) -> bytes:
    """``data`` as one HTTP/1.1 chunk; built once for the clients of a write round that get
    the same rendered bytes."""
    if data is _last_chunk[0]:
        return _last_chunk[1]
    chunk = b"%x\r\n%b\r\n" % (len(data), data)
    _last_chunk[0] = data
    _last_chunk[1] = chunk
    return chunk


class LaneHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol offering :class:`HttpBodyLane` to GET requests as
    ``scope["extensions"]["quotegate.http_lane"]`` (:data:`gateway.edge.sse.HTTP_LANE`)."""

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        cycle = self.cycle
        scope: Any = self.scope
        if cycle is not None and cycle.scope is scope and scope.get("method") == "GET":
            extensions: dict[str, Any] = {HTTP_LANE: HttpBodyLane(cycle)}
            scope["extensions"] = extensions


def lane_protocol(*, max_held_bytes: int, close_timeout_s: float) -> type[LaneWebSocketProtocol]:
    """The lane protocol class with the hub's per-connection byte bound and the WebSocket
    close timeout."""
    return type(
        "LaneWebSocketProtocol",
        (LaneWebSocketProtocol,),
        {"max_held_bytes": max_held_bytes, "close_timeout_s": close_timeout_s},
    )
