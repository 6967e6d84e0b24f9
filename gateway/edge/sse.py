"""Server-Sent Events ``GET /v1/sse?ch=book.AAPL,trades.AAPL[&token=..][&cursor=..]``.

Each event's ``data:`` is one envelope (its payload bytes as published) and its ``id:`` the
cursor (:mod:`gateway.wire.cursor`) after that event: the position of EVERY channel of the stream,
so the ``Last-Event-ID`` an ``EventSource`` sends when it reconnects (or an explicit
``cursor=``) resumes all of them with no gap and no duplicate (missed updates, or a snapshot
where the history no longer reaches). Control messages (heartbeats) are events without an
``id:`` and so do not move the client's cursor.

The stream opens with a ``retry:`` field (``SseConfig.retry_ms``). Each write of the hub (a
loop tick's batch) is rendered by :class:`SseTransport`; the response's stream takes everything
rendered since its last chunk as one chunk. A slow reader leaves chunks waiting in its
transport, which count against its connection's bound (whose queue then conflates, see
:mod:`gateway.fanout.connection`). Heartbeats come from the hub on idle links; the stream adds
its own if nothing at all was written for ``SseConfig.heartbeat_interval_s``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Mapping, Sequence

from sse_starlette import EventSourceResponse
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from gateway.config import GatewayConfig
from gateway.edge.poll import StreamRequest, parse_stream_request, wire_name
from gateway.fanout.connection import Connection, heartbeat_message
from gateway.fanout.hub import Hub
from gateway.fanout.transport import Outgoing
from gateway.wire import cursor
from gateway.wire.envelope import Envelope
from gateway.wire.errors import GatewayError, error_response

_END = b""


def routes() -> list[BaseRoute]:
    return [Route("/v1/sse", sse, methods=["GET"])]


LOW_WATER_BYTES = 64 * 1024
"""The transport takes writes while less than this waits for the response to take it."""


class SseTransport:
    """Renders batches as SSE text; the response's stream takes everything rendered so far as
    one chunk. Writes never wait: they pile up here (counted by :meth:`buffered`) until the
    stream takes them.

    ``positions`` (wire channel name -> ``(epoch, seq)``) start at the client's cursor and
    advance with every envelope; each data event's ``id:`` is their cursor."""

    __slots__ = ("_chunks", "_data", "_pending_bytes", "_space", "closed", "positions")
    name = "sse"

    def __init__(self, positions: Mapping[str, cursor.Position]) -> None:
        self.positions: dict[str, cursor.Position] = dict(positions)
        self._chunks: list[bytes] = []
        self._pending_bytes = 0
        self._data: asyncio.Future[None] | None = None
        self._space: asyncio.Future[None] | None = None
        self.closed = False

    def render(self, batch: Sequence[Outgoing]) -> bytes:
        parts: list[bytes] = []
        positions = self.positions
        for item in batch:
            if type(item) is bytes:
                parts.append(b"data: " + item + b"\n\n")
                continue
            env: Envelope = item  # type: ignore[assignment]
            positions[wire_name(env.channel)] = (env.epoch, env.seq)
            event_id = cursor.encode(positions).encode("ascii")
            parts.append(b"id: " + event_id + b"\ndata: " + env.payload + b"\n\n")
        return b"".join(parts)

    def can_write(self) -> bool:
        return self._pending_bytes < LOW_WATER_BYTES

    def write(self, batch: Sequence[Outgoing]) -> int:
        if self.closed:
            raise ConnectionError("stream closed")
        chunk = self.render(batch)
        self._chunks.append(chunk)
        self._pending_bytes += len(chunk)
        _wake(self._data)
        return self._pending_bytes

    def buffered(self) -> int:
        return self._pending_bytes

    async def wait_writable(self) -> None:
        while not self.can_write() and not self.closed:
            self._space = asyncio.get_running_loop().create_future()
            await self._space

    async def close(self, code: int, reason: str) -> None:
        if self.closed:
            return
        self.closed = True
        self._chunks = []  # the stream ends now
        self._pending_bytes = 0
        _wake(self._data)
        _wake(self._space)

    def pending(self) -> bool:
        return bool(self._chunks)

    async def next_chunk(self, timeout_s: float) -> bytes | None:
        """Everything written so far as one chunk; ``None`` after ``timeout_s`` idle; ``b""``
        when closed."""
        if not self._chunks and not self.closed:
            self._data = asyncio.get_running_loop().create_future()
            try:
                await asyncio.wait_for(self._data, timeout_s)
            except TimeoutError:
                return None
            finally:
                self._data = None
        if not self._chunks:
            return _END
        chunks = self._chunks
        self._chunks = []
        self._pending_bytes = 0
        _wake(self._space)
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _wake(waiter: asyncio.Future[None] | None) -> None:
    if waiter is not None and not waiter.done():
        waiter.set_result(None)


def retry_field(retry_ms: int) -> bytes:
    return b"retry: %d\n\n" % retry_ms


async def _stream(
    hub: Hub,
    conn: Connection,
    transport: SseTransport,
    req: StreamRequest,
    config: GatewayConfig,
) -> AsyncIterator[bytes]:
    try:
        yield retry_field(config.sse.retry_ms)
        await hub.subscribe(conn, list(req.channels.values()), since=req.internal_since())
        idle_s = config.sse.heartbeat_interval_s
        while not conn.closed or transport.pending():
            chunk = await transport.next_chunk(idle_s)
            if chunk is None:
                yield b"data: " + heartbeat_message(time.time_ns() // 1000) + b"\n\n"
            elif chunk == _END:
                return
            else:
                yield chunk
    finally:
        transport.closed = True
        await hub.disconnect(conn)


async def sse(request: Request) -> Response:
    config: GatewayConfig = getattr(request.app.state, "config", None) or GatewayConfig()
    last_event_id = request.headers.get("last-event-id") or None
    try:
        req = parse_stream_request(
            request, cursor_text=last_event_id or request.query_params.get("cursor")
        )
        hub: Hub = request.app.state.hub
        transport = SseTransport(req.positions)
        conn = hub.connect(transport, account=req.account)
    except GatewayError as exc:
        return error_response(exc.status, exc.code, exc.message)
    return EventSourceResponse(
        _stream(hub, conn, transport, req, config),
        ping=0,
        sep="\n",
        headers={"Cache-Control": "no-store"},
        background=BackgroundTask(hub.disconnect, conn),
    )
