"""The direct lane under uvicorn: a WebSocket protocol that lets the gateway write frames.

:class:`LaneWebSocketProtocol` is uvicorn's websockets-sansio protocol with one addition: once
the handshake is accepted it puts itself in the ASGI scope as
``scope["extensions"]["quotegate.ws_lane"]`` (:data:`gateway.edge.ws.WS_LANE`). The WebSocket
endpoint then writes each batch as ready-made frame bytes straight to the socket's transport,
synchronously (:class:`gateway.edge.ws.DirectWsTransport`), while the handshake, receives,
keepalive pings and the close stay on ASGI. Without it (any other ASGI server, or uvicorn
without this class) the endpoint falls back to ASGI ``websocket.send``.

It also bounds what a client that never reads can make the server hold through uvicorn
itself: the pong uvicorn writes for each WebSocket ping frame goes to the transport's
buffer; when that buffer is past ``max_held_bytes`` the connection is aborted. And after a
close frame the server waits ``close_timeout_s`` (not uvicorn's fixed 10 s) for the client's
reply before it closes the socket.

:func:`lane_protocol` makes the class for a configuration; ``gateway.roots.run.uvicorn_config``
passes it to uvicorn as ``ws=``.
"""

from __future__ import annotations

from typing import Any

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from gateway.edge.ws import WS_LANE


class LaneWebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's sans-I/O WebSocket protocol plus the lane (see the module docstring)."""

    max_held_bytes = 4 * 1024 * 1024
    """Past this many bytes in the transport's buffer a ping's pong aborts the connection."""
    close_timeout_s = 1.0
    """How long a server-initiated close waits for the client's close frame."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.close_timeout = self.close_timeout_s

    def handle_connect(self, event: Any) -> None:
        super().handle_connect(event)
        scope = getattr(self, "scope", None)
        if scope is not None and self.response.status_code == 101:
            scope["extensions"][WS_LANE] = self

    def handle_ping(self) -> None:
        if self.transport.get_write_buffer_size() > self.max_held_bytes:
            # the client sends pings and reads nothing: it would grow the buffer forever
            self.lane_abort()
            return
        super().handle_ping()

    # -- the lane (gateway.edge.ws.WsLane) ---------------------------------------------------

    def lane_writable(self) -> bool:
        return self.writable.is_set()

    def lane_write(self, data: bytes) -> None:
        if self.close_sent or self.disconnected:
            raise ConnectionError("the WebSocket is closing")
        self.transport.write(data)

    def lane_buffered(self) -> int:
        return self.transport.get_write_buffer_size()

    async def lane_wait_writable(self) -> None:
        await self.writable.wait()

    def lane_abort(self) -> None:
        if not self.disconnected:
            self.transport.abort()


def lane_protocol(*, max_held_bytes: int, close_timeout_s: float) -> type[LaneWebSocketProtocol]:
    """The lane protocol class with the hub's per-connection byte bound and the WebSocket
    close timeout."""
    return type(
        "LaneWebSocketProtocol",
        (LaneWebSocketProtocol,),
        {"max_held_bytes": max_held_bytes, "close_timeout_s": close_timeout_s},
    )
