"""WebSocket transport ``GET /v1/ws`` (protocol.md): ops ``subscribe``, ``unsubscribe``,
``auth`` and ``ping``; replies ``subscribed``/``unsubscribed``/``authed``/``pong``/``error``
carrying the request's ``id``.

Every bad message gets an ``error`` reply and the connection stays open: ``bad_request``
(malformed JSON, unknown op, bad fields), ``unknown_channel`` (not a channel name, or a symbol
the gateway does not list), ``unauthorized`` (``orders`` before ``auth``, a bad token),
``too_many_subscriptions`` (``WsConfig.max_subscriptions``), ``rate_limited`` (inbound token
bucket, ``rate_msgs_per_s``/``rate_burst_msgs``), ``too_large`` (``max_message_bytes``; the
server's own frame limit is set above it, see ``GatewayConfig.uvicorn_kwargs``).

Outbound, each write (everything pending for the client in a loop tick) is ONE text frame of
newline-separated messages. Under uvicorn with :mod:`gateway.edge.lane` the frame bytes go
straight to the socket (the lane is the transport; a frame is built once, :func:`frame_of`,
and the same bytes are written to every client with the same batch); under any other ASGI
server through ``websocket.send`` (:class:`AsgiWsTransport`). At the connection limit the
socket is closed with 1013.

Closing a slow client (4008) is bounded by ``WsConfig.close_timeout_s``: the close frame is
queued behind what the client has not read yet; if the client has not taken all of it within
the bound, the connection is aborted (the client sees the TCP connection end without a close
frame: 1006 in a browser).
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import orjson

from gateway.fanout.transport import Outgoing, Transport, join
from gateway.wire import errors
from gateway.wire.channels import ORDERS, orders_channel, parse_channel
from gateway.wire.envelope import dumps
from gateway.wire.errors import TooManyConnections, error_message, quoted

if TYPE_CHECKING:
    from starlette.routing import BaseRoute
    from starlette.websockets import WebSocket

    from gateway.config import WsConfig
    from gateway.fanout.connection import Connection
    from gateway.fanout.hub import Hub
    from gateway.seams.services import Services

PATH = "/v1/ws"


WS_LANE = "quotegate.ws_lane"
"""``scope["extensions"]`` key of a server's direct lane: a ready
:class:`~gateway.fanout.transport.Transport` for this WebSocket (:mod:`gateway.edge.lane`)."""

ASGI_LOW_WATER_BYTES = 64 * 1024
"""The ASGI fallback takes writes while less than this is waiting for ``websocket.send``."""


def text_frame(data: bytes) -> bytes:
    """One unmasked, final WebSocket text frame (a server's frame) carrying ``data``."""
    n = len(data)
    if n < 126:
        return bytes((0x81, n)) + data
    if n < 65536:
        return struct.pack("!BBH", 0x81, 126, n) + data
    return struct.pack("!BBQ", 0x81, 127, n) + data


class _FrameCache:
    """The frame of the last batch framed. In a write round every client of a channel gets
    the same batch (the same envelope objects), so the frame is built once per round."""

    __slots__ = ("batch", "frame")

    def __init__(self) -> None:
        self.batch: list[Outgoing] = []
        self.frame = b""

    def frame_of(self, batch: Sequence[Outgoing]) -> bytes:
        if batch == self.batch:  # identity first: a C-speed compare of the same objects
            return self.frame
        frame = text_frame(join(batch))
        self.batch = list(batch)
        self.frame = frame
        return frame


frame_of = _FrameCache().frame_of
"""The WebSocket frame of a batch (cached for the next client with the same batch)."""


class AsgiWsTransport:
    """:class:`~gateway.fanout.transport.Transport` over ASGI ``websocket.send`` (any server):
    writes are collected and sent by a task that exists only while something is waiting."""

    __slots__ = ("_close_timeout_s", "_failed", "_pending", "_pending_bytes", "_pump", "_websocket")
    name = "ws"

    def __init__(self, websocket: WebSocket, *, close_timeout_s: float) -> None:
        self._websocket = websocket
        self._close_timeout_s = close_timeout_s
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        self._pump: asyncio.Task[None] | None = None
        self._failed = False

    def can_write(self) -> bool:
        return self._pending_bytes < ASGI_LOW_WATER_BYTES

    def write(self, batch: Sequence[Outgoing]) -> int:
        if self._failed:
            raise ConnectionError("the client is gone")
        data = join(batch)
        self._pending.append(data)
        self._pending_bytes += len(data)
        if self._pump is None:
            self._pump = asyncio.get_running_loop().create_task(self._send_pending())
        return self._pending_bytes

    def buffered(self) -> int:
        return self._pending_bytes

    async def wait_writable(self) -> None:
        pump = self._pump
        if pump is not None and not self.can_write():
            with contextlib.suppress(Exception):
                await asyncio.shield(pump)

    async def _send_pending(self) -> None:
        try:
            while self._pending:
                chunks = self._pending
                self._pending = []
                text = b"\n".join(chunks).decode()
                await self._websocket.send({"type": "websocket.send", "text": text})
                self._pending_bytes -= sum(len(c) for c in chunks)
        except Exception:
            self._failed = True
            self._pending = []
            self._pending_bytes = 0
        finally:
            self._pump = None

    async def close(self, code: int, reason: str) -> None:
        pump = self._pump
        if pump is not None:
            pump.cancel()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._websocket.close(code, reason), self._close_timeout_s)


class TokenBucket:
    """Inbound rate limit: ``burst`` tokens, refilled at ``rate_per_s``."""

    def __init__(
        self, rate_per_s: float, burst: int, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate_per_s = rate_per_s
        self.burst = float(max(burst, 1))
        self._clock = clock
        self._tokens = self.burst
        self._at = clock()

    def take(self) -> bool:
        """Spend one token; False when none is left."""
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate_per_s)
        self._at = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False


def _reply(kind: str, id_: Any, **fields: Any) -> bytes:
    obj: dict[str, Any] = {"type": kind, **fields}
    if id_ is not None:
        obj["id"] = id_
    return dumps(obj)


class Invalid(Exception):
    """A request the session answers with an error (code, message)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class WsSession:
    """The ops of one WebSocket client over its hub connection."""

    def __init__(self, hub: Hub, conn: Connection, services: Services, config: WsConfig) -> None:
        self.hub = hub
        self.conn = conn
        self.services = services
        self.config = config
        self.bucket = TokenBucket(config.rate_msgs_per_s, config.rate_burst_msgs)

    async def handle(self, data: str | bytes) -> None:
        """Answer one inbound message. Never raises for bad input."""
        raw = data.encode() if isinstance(data, str) else data
        if len(raw) > self.config.max_message_bytes:
            self.conn.enqueue(
                error_message(
                    errors.TOO_LARGE,
                    f"message of {len(raw)} bytes, at most {self.config.max_message_bytes}",
                )
            )
            return
        if not self.bucket.take():
            limit = self.config.rate_msgs_per_s
            self.conn.enqueue(error_message(errors.RATE_LIMITED, f"more than {limit:g} messages/s"))
            return
        try:
            msg = orjson.loads(raw)
        except orjson.JSONDecodeError:
            self.conn.enqueue(error_message(errors.BAD_REQUEST, "malformed JSON"))
            return
        if not isinstance(msg, dict):
            self.conn.enqueue(error_message(errors.BAD_REQUEST, "a message is a JSON object"))
            return
        id_ = msg.get("id")
        if id_ is not None and (
            isinstance(id_, bool) or not isinstance(id_, int | str) or len(str(id_)) > 64
        ):
            self.conn.enqueue(error_message(errors.BAD_REQUEST, "id: an integer or a string"))
            return
        op = msg.get("op")
        try:
            if op == "subscribe":
                await self._subscribe(msg, id_)
            elif op == "unsubscribe":
                self._unsubscribe(msg, id_)
            elif op == "auth":
                self._auth(msg, id_)
            elif op == "ping":
                self.conn.enqueue(_reply("pong", id_))
            else:
                raise Invalid(errors.BAD_REQUEST, f"unknown op {quoted(op, 32)}")
        except Invalid as exc:
            self.conn.enqueue(error_message(exc.code, exc.message, id_))

    # -- ops -------------------------------------------------------------------------------

    def _channel_names(self, msg: dict[str, Any]) -> list[str]:
        names = msg.get("ch")
        if isinstance(names, str):
            names = [names]
        if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
            raise Invalid(errors.BAD_REQUEST, "ch: a non-empty list of channel names")
        if len(names) > self.config.max_subscriptions:
            raise Invalid(
                errors.TOO_MANY_SUBSCRIPTIONS,
                f"at most {self.config.max_subscriptions} subscriptions per connection",
            )
        return list(dict.fromkeys(names))

    def _internal(self, name: str, symbols: set[str] | None) -> str:
        channel = parse_channel(name)
        if channel is None:
            raise Invalid(errors.UNKNOWN_CHANNEL, f"unknown channel {quoted(name)}")
        if channel.kind == ORDERS:
            if self.conn.account is None:
                raise Invalid(errors.UNAUTHORIZED, "auth before subscribing to orders")
            return orders_channel(self.conn.account)
        if symbols is not None and channel.symbol not in symbols:
            raise Invalid(errors.UNKNOWN_CHANNEL, f"unknown symbol {quoted(channel.symbol)}")
        return name

    def _symbols(self) -> set[str] | None:
        listed: list[Any] = self.services.symbols()
        if not listed:
            return None  # the gateway lists no symbols: any symbol is accepted
        return {s if isinstance(s, str) else str(s.get("symbol")) for s in listed}

    def _since(self, msg: dict[str, Any], wanted: dict[str, str]) -> dict[str, tuple[str, int]]:
        raw = msg.get("since")
        if raw is None:
            return {}
        if not isinstance(raw, dict):
            raise Invalid(errors.BAD_REQUEST, "since: an object of channel to {epoch, seq}")
        since: dict[str, tuple[str, int]] = {}
        for name, pos in raw.items():
            if not isinstance(pos, dict):
                raise Invalid(errors.BAD_REQUEST, f"since[{quoted(name)}]: {{epoch, seq}}")
            epoch, seq = pos.get("epoch"), pos.get("seq")
            if (
                not isinstance(epoch, str)
                or isinstance(seq, bool)
                or not isinstance(seq, int)
                or seq < 0
            ):
                raise Invalid(
                    errors.BAD_REQUEST, f"since[{quoted(name)}]: epoch string and seq >= 0"
                )
            internal = wanted.get(name)
            if internal is not None:
                since[internal] = (epoch, seq)
        return since

    async def _subscribe(self, msg: dict[str, Any], id_: Any) -> None:
        names = self._channel_names(msg)
        symbols = self._symbols()
        wanted = {name: self._internal(name, symbols) for name in names}
        since = self._since(msg, wanted)
        total = set(self.conn.subscriptions) | set(wanted.values())
        if len(total) > self.config.max_subscriptions:
            raise Invalid(
                errors.TOO_MANY_SUBSCRIPTIONS,
                f"at most {self.config.max_subscriptions} subscriptions per connection",
            )
        self.conn.enqueue(_reply("subscribed", id_, ch=names))
        await self.hub.subscribe(self.conn, list(wanted.values()), since)

    def _unsubscribe(self, msg: dict[str, Any], id_: Any) -> None:
        names = self._channel_names(msg)
        internal = [self._internal(name, None) for name in names]
        self.hub.unsubscribe(self.conn, internal)
        self.conn.enqueue(_reply("unsubscribed", id_, ch=names))

    def _auth(self, msg: dict[str, Any], id_: Any) -> None:
        token = msg.get("token")
        if not isinstance(token, str) or not token:
            raise Invalid(errors.BAD_REQUEST, "token: the API key")
        account = self.services.authenticate(token)
        if account is None:
            raise Invalid(errors.UNAUTHORIZED, "unknown API key")
        if self.conn.account is not None and self.conn.account != account:
            raise Invalid(errors.UNAUTHORIZED, "already authenticated as another account")
        self.conn.account = account
        self.conn.enqueue(_reply("authed", id_, account=account))


async def ws_endpoint(websocket: WebSocket) -> None:
    """``/v1/ws``: accept, register with the hub, answer ops until the client leaves."""
    state = websocket.app.state
    hub: Hub = state.hub
    config: WsConfig = state.config.ws
    await websocket.accept()
    extensions = websocket.scope.get("extensions") or {}
    transport: Transport | None = extensions.get(WS_LANE)
    if transport is None:
        transport = AsgiWsTransport(websocket, close_timeout_s=config.close_timeout_s)
    try:
        conn = hub.connect(transport)
    except TooManyConnections:
        await websocket.close(errors.WS_CLOSE_TRY_AGAIN, "too many connections")
        return
    session = WsSession(hub, conn, state.services, config)
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                break
            data = message.get("text")
            if data is None:
                data = message.get("bytes")
            if data is not None and not conn.closed:
                await session.handle(data)
    except Exception:
        pass  # the peer went away mid-message; nothing to answer
    finally:
        await hub.disconnect(conn)


def routes() -> list[BaseRoute]:
    """The WebSocket route, for :func:`gateway.edge.app.create_app`."""
    from starlette.routing import WebSocketRoute

    return [WebSocketRoute(PATH, ws_endpoint)]
