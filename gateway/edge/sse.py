"""Server-Sent Events ``GET /v1/sse?ch=book.AAPL,trades.AAPL[&token=..][&cursor=..]``.

Each event's ``data:`` is one envelope (its payload bytes as published) and its ``id:`` the
cursor (:mod:`gateway.wire.cursor`) after that event: the position of EVERY channel of the stream,
so the ``Last-Event-ID`` an ``EventSource`` sends when it reconnects (or an explicit
``cursor=``) resumes all of them with no gap and no duplicate (missed updates, or a snapshot
where the history no longer reaches). Control messages (heartbeats) are events without an
``id:`` and so do not move the client's cursor.

The stream opens with a ``retry:`` field (``SseConfig.retry_ms``). Each write of the hub (a
loop tick's batch) is rendered by :class:`SseTransport` (on a one-channel stream an event is
rendered once per write round and the same bytes go to every such client). Under uvicorn with
:mod:`gateway.edge.lane` the rendered text goes straight to the response body (one chunk per
write, no task switch); under any other ASGI server the response's stream takes everything
rendered since its last chunk as one chunk. What a slow reader has not taken counts against its
connection's bound (whose queue then conflates, see :mod:`gateway.fanout.connection`). When a
stream is ended (``orders`` too slow) and the client does not take what is left within
``SseConfig.close_timeout_s``, the connection is aborted (with the lane).

Heartbeats have one source on this transport, so that an idle stream gets one per interval
with a rising ``ts``: the stream writes one whenever nothing at all was written for the
shorter of ``SseConfig.heartbeat_interval_s`` and ``HubConfig.heartbeat_interval_s``, and the
transport drops the connection's own idle heartbeats (which would race it).

A channel the snapshot store cannot serve (Redis down) is never left silent: the hub sends an
``unavailable`` error and drops the channel, and the stream then ends after that event, so the
client reconnects (``retry:``) and resumes every channel from its ``Last-Event-ID``. While the
store stays down each reconnect gets the same: a ``200`` stream with the ``unavailable`` event,
then its end (not a ``503``: an ``EventSource`` gives up for good on an error status).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Protocol

from sse_starlette import EventSourceResponse
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from gateway.config import GatewayConfig
from gateway.edge.poll import HEARTBEAT_PREFIX, StreamRequest, parse_stream_request, wire_name
from gateway.fanout.connection import Connection, heartbeat_message
from gateway.fanout.hub import Hub
from gateway.fanout.transport import Outgoing
from gateway.wire import cursor
from gateway.wire.envelope import Envelope
from gateway.wire.errors import GatewayError, gateway_error_response

_END = b""


def routes() -> list[BaseRoute]:
    return [Route("/v1/sse", sse, methods=["GET"])]


LOW_WATER_BYTES = 64 * 1024
"""The ASGI path takes writes while less than this waits for the response to take it."""

HTTP_LANE = "quotegate.http_lane"
"""``scope["extensions"]`` key of a server's direct lane for a GET response's body
(:class:`BodyLane`, :mod:`gateway.edge.lane`)."""


class BodyLane(Protocol):
    """Direct writes of a started, chunked response body (:mod:`gateway.edge.lane`)."""

    def can_write(self) -> bool: ...

    def write(self, data: bytes) -> int: ...

    def buffered(self) -> int: ...

    async def wait_writable(self) -> None: ...

    def abort(self) -> None: ...


class _EventCache:
    """The event text of the last envelope rendered for a one-channel stream: every such
    stream at the same position gets the same bytes (its ``id:`` names only that channel),
    so in a write round the event is rendered once."""

    __slots__ = ("envelope", "event")

    def __init__(self) -> None:
        self.envelope: Envelope | None = None
        self.event = b""


_events = _EventCache()


class SseTransport:
    """Renders batches as SSE text. With a server's lane (:meth:`attach`) each write goes
    straight to the response body; without one (any ASGI server) writes pile up here
    (counted by :meth:`buffered`) and the response's stream takes everything rendered so far
    as one chunk.

    ``positions`` (wire channel name -> ``(epoch, seq)``) start at the client's cursor and
    advance with every envelope; each data event's ``id:`` is their cursor."""

    __slots__ = (
        "_chunks",
        "_data",
        "_lane",
        "_pending_bytes",
        "_space",
        "close_timeout_s",
        "closed",
        "positions",
        "wrote",
    )
    name = "sse"

    def __init__(
        self, positions: Mapping[str, cursor.Position], *, close_timeout_s: float = 1.0
    ) -> None:
        self.positions: dict[str, cursor.Position] = dict(positions)
        self._chunks: list[bytes] = []
        self._pending_bytes = 0
        self._data: asyncio.Future[None] | None = None
        self._space: asyncio.Future[None] | None = None
        self._lane: BodyLane | None = None
        self.closed = False
        self.wrote = False
        """Something was written since the stream last looked (its idle heartbeat)."""
        self.close_timeout_s = close_timeout_s

    def attach(self, lane: BodyLane) -> None:
        """Write through ``lane`` from now on (the response has started)."""
        self._lane = lane

    def render(self, batch: Sequence[Outgoing]) -> bytes:
        parts: list[bytes] = []
        positions = self.positions
        for item in batch:
            if type(item) is bytes:
                if not item.startswith(HEARTBEAT_PREFIX):  # the stream writes its own
                    parts.append(b"data: " + item + b"\n\n")
                continue
            env: Envelope = item  # type: ignore[assignment]
            wire = wire_name(env.channel)
            positions[wire] = (env.epoch, env.seq)
            if len(positions) == 1:
                if _events.envelope is env:
                    parts.append(_events.event)
                    continue
                event = _event(positions, env)
                _events.envelope = env
                _events.event = event
                parts.append(event)
            else:
                parts.append(_event(positions, env))
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def can_write(self) -> bool:
        lane = self._lane
        if lane is not None:
            return lane.can_write()
        return self._pending_bytes < LOW_WATER_BYTES

    def write(self, batch: Sequence[Outgoing]) -> int:
        if self.closed:
            raise ConnectionError("stream closed")
        chunk = self.render(batch)
        if not chunk:
            return self.buffered()  # only heartbeats of the connection: the stream writes its own
        self.wrote = True
        lane = self._lane
        if lane is not None:
            held = lane.write(chunk)
            if self._data is not None and _has_control(batch):
                _wake(self._data)  # an error: the stream looks whether it must end
            return held
        self._chunks.append(chunk)
        self._pending_bytes += len(chunk)
        _wake(self._data)
        return self._pending_bytes

    def heartbeat(self, now_us: int) -> bytes:
        """The stream's idle heartbeat: written through the lane when there is one (and room),
        else returned for the response's stream to send."""
        event = b"data: " + heartbeat_message(now_us) + b"\n\n"
        lane = self._lane
        if lane is not None:
            if lane.can_write() and not self.closed:
                lane.write(event)
            return b""
        return event

    def buffered(self) -> int:
        lane = self._lane
        return lane.buffered() if lane is not None else self._pending_bytes

    async def wait_writable(self) -> None:
        lane = self._lane
        if lane is not None:
            await lane.wait_writable()
            return
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
        lane = self._lane
        if lane is not None and lane.buffered():
            # the response's end waits behind what the client has not taken: bounded
            await asyncio.sleep(self.close_timeout_s)
            if lane.buffered():
                lane.abort()

    def pending(self) -> bool:
        return bool(self._chunks)

    async def next_chunk(self, timeout_s: float) -> bytes | None:
        """Everything written so far as one chunk; ``None`` after ``timeout_s`` idle; ``b""``
        when closed. (With a lane only the end or the timeout come this way.)"""
        if not self._chunks and not self.closed:
            self._data = asyncio.get_running_loop().create_future()
            try:
                await asyncio.wait_for(self._data, timeout_s)
            except TimeoutError:
                return None
            finally:
                self._data = None
        if not self._chunks:
            return _END if self.closed else None
        chunks = self._chunks
        self._chunks = []
        self._pending_bytes = 0
        _wake(self._space)
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _event(positions: Mapping[str, cursor.Position], env: Envelope) -> bytes:
    event_id = cursor.encode(positions).encode("ascii")
    return b"id: " + event_id + b"\ndata: " + env.payload + b"\n\n"


def _has_control(batch: Sequence[Outgoing]) -> bool:
    return any(type(item) is bytes for item in batch)


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
    lane: BodyLane | None,
) -> AsyncIterator[bytes]:
    try:
        yield retry_field(config.sse.retry_ms)
        if lane is not None:
            transport.attach(lane)  # the response has started: the hub writes the body
        await hub.subscribe(conn, list(req.channels.values()), since=req.internal_since())
        wanted = len(req.channels)
        idle_s = min(config.sse.heartbeat_interval_s, config.hub.heartbeat_interval_s)
        while lane is not None and not conn.closed:
            # the hub writes the body; the stream only heartbeats and ends
            if len(conn.subscriptions) < wanted:
                # a channel was dropped (see below): end once its error event is written
                for _ in range(100):
                    if not conn.queued:
                        break
                    await asyncio.sleep(0.01)
                return
            transport.wrote = False
            if await transport.next_chunk(idle_s) == _END:
                return
            if not transport.wrote and len(conn.subscriptions) >= wanted:
                transport.heartbeat(time.time_ns() // 1000)
        while not conn.closed or transport.pending():
            chunk = await transport.next_chunk(idle_s)
            if chunk is None:
                yield transport.heartbeat(time.time_ns() // 1000)
            elif chunk == _END:
                return
            else:
                yield chunk
            if len(conn.subscriptions) < wanted and not transport.pending():
                # the hub dropped a channel the snapshot store could not serve (its
                # ``unavailable`` error is in what was just sent): end the stream, so that the
                # EventSource reconnects after ``retry`` and resumes from its Last-Event-ID
                return
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
        transport = SseTransport(req.positions, close_timeout_s=config.sse.close_timeout_s)
        conn = hub.connect(transport, account=req.account)
    except GatewayError as exc:
        return gateway_error_response(exc)
    extensions = request.scope.get("extensions") or {}
    lane: BodyLane | None = extensions.get(HTTP_LANE)
    return EventSourceResponse(
        _stream(hub, conn, transport, req, config, lane),
        ping=0,
        sep="\n",
        headers={"Cache-Control": "no-store"},
        background=BackgroundTask(hub.disconnect, conn),
    )
