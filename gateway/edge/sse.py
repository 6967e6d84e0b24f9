"""Server-Sent Events ``GET /v1/sse?ch=book.AAPL,trades.AAPL[&token=..][&cursor=..]``.

Each event's ``data:`` is one envelope (its payload bytes as published) and its ``id:`` the
cursor (:mod:`gateway.wire.cursor`) after that event: the position of EVERY channel of the stream,
so the ``Last-Event-ID`` an ``EventSource`` sends when it reconnects (or an explicit
``cursor=``) resumes all of them with no gap and no duplicate (missed updates, or a snapshot
where the history no longer reaches). Control messages (heartbeats) are events without an
``id:`` and so do not move the client's cursor.

The stream opens with a ``retry:`` field (``SseConfig.retry_ms``). The connection's writer
hands each batch to :class:`SseTransport`, which renders it as one chunk: one write per batch.
``send`` waits until the response has taken the chunk, so a slow reader holds back only its own
writer (whose queue then conflates, see :mod:`gateway.fanout.connection`). Heartbeats have one
source on this transport, so that an idle stream gets one per interval with a rising ``ts``:
the stream writes one whenever nothing at all was written for the shorter of
``SseConfig.heartbeat_interval_s`` and ``HubConfig.heartbeat_interval_s``, and the transport
drops the connection's own idle heartbeats (which would race it).

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


class SseTransport:
    """Renders batches as SSE text and hands them, one chunk per batch, to the response.

    ``positions`` (wire channel name -> ``(epoch, seq)``) start at the client's cursor and
    advance with every envelope; each data event's ``id:`` is their cursor."""

    name = "sse"

    def __init__(self, positions: Mapping[str, cursor.Position]) -> None:
        self.positions: dict[str, cursor.Position] = dict(positions)
        self._chunks: asyncio.Queue[bytes] = asyncio.Queue(maxsize=1)
        self.closed = False

    def render(self, batch: Sequence[Outgoing]) -> bytes:
        parts: list[bytes] = []
        positions = self.positions
        for item in batch:
            if type(item) is bytes:
                if not item.startswith(HEARTBEAT_PREFIX):  # the stream writes its own
                    parts.append(b"data: " + item + b"\n\n")
                continue
            env: Envelope = item  # type: ignore[assignment]
            positions[wire_name(env.channel)] = (env.epoch, env.seq)
            event_id = cursor.encode(positions).encode("ascii")
            parts.append(b"id: " + event_id + b"\ndata: " + env.payload + b"\n\n")
        return b"".join(parts)

    async def send(self, batch: Sequence[Outgoing]) -> None:
        if self.closed:
            raise ConnectionError("stream closed")
        chunk = self.render(batch)
        if chunk:  # (b"" is the end marker)
            await self._chunks.put(chunk)

    async def close(self, code: int, reason: str) -> None:
        if self.closed:
            return
        self.closed = True
        while not self._chunks.empty():  # make room for the end marker
            self._chunks.get_nowait()
        self._chunks.put_nowait(_END)

    def pending(self) -> bool:
        return not self._chunks.empty()

    async def next_chunk(self, timeout_s: float) -> bytes | None:
        """The next chunk; ``None`` after ``timeout_s`` idle; ``b""`` when closed."""
        try:
            return await asyncio.wait_for(self._chunks.get(), timeout_s)
        except TimeoutError:
            return None


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
        wanted = len(req.channels)
        idle_s = min(config.sse.heartbeat_interval_s, config.hub.heartbeat_interval_s)
        while not conn.closed or transport.pending():
            chunk = await transport.next_chunk(idle_s)
            if chunk is None:
                yield b"data: " + heartbeat_message(time.time_ns() // 1000) + b"\n\n"
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
        transport = SseTransport(req.positions)
        conn = hub.connect(transport, account=req.account)
    except GatewayError as exc:
        return gateway_error_response(exc)
    return EventSourceResponse(
        _stream(hub, conn, transport, req, config),
        ping=0,
        sep="\n",
        headers={"Cache-Control": "no-store"},
        background=BackgroundTask(hub.disconnect, conn),
    )
