"""HTTP polling ``GET /v1/poll?ch=..&cursor=..&wait=..[&token=..]``, and the stream request
parsing it shares with SSE.

A poll answers ``{"cursor":"..","messages":[envelopes]}``:

* without a cursor: each channel's snapshot;
* with one: everything after the cursor's position per channel (``store.resume``: the missed
  updates, or a snapshot where the history no longer reaches or the epoch changed);
* when that is nothing and ``wait`` > 0 (capped at ``PollConfig.wait_max_s``): a short-lived
  hub connection with a :class:`PollTransport` waits for the first batch of live envelopes,
  the same path the WebSocket and SSE take (one Transport protocol, three adapters). The
  connection's idle heartbeat (``HubConfig.heartbeat_interval_s``, 10 s) ends the wait too:
  an idle long poll answers ``{"cursor":..,"messages":[{"type":"heartbeat","ts":..}]}``
  (the cursor unchanged) within the heartbeat interval, as every transport must.

The returned cursor is the position after the last message returned on each channel, so the
next poll continues without a gap or a duplicate. The body is built by joining the envelopes'
payload bytes; nothing is re-encoded.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import Receive

from gateway.config import GatewayConfig
from gateway.edge.routes_marketdata import symbol_names
from gateway.fanout.hub import Hub
from gateway.fanout.transport import Outgoing
from gateway.seams.services import Services
from gateway.seams.store import SnapshotStore, StoreUnavailable
from gateway.wire import cursor
from gateway.wire.channels import ORDERS, orders_channel, parse_channel
from gateway.wire.envelope import UPDATE, Envelope
from gateway.wire.errors import (
    BAD_REQUEST,
    TOO_MANY_SUBSCRIPTIONS,
    UNAUTHORIZED,
    UNKNOWN_CHANNEL,
    GatewayError,
    gateway_error_response,
    quoted,
)

MAX_CH_PARAM_CHARS = 8192
ORDERS_PREFIX = ORDERS + "."


def routes() -> list[BaseRoute]:
    return [Route("/v1/poll", poll, methods=["GET"])]


# -- the stream request (shared with SSE) --------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StreamRequest:
    """A validated ``ch``/``token``/``cursor`` request. ``channels`` maps each wire name to
    its internal one (``orders`` -> ``orders.<account>``); ``positions`` holds the cursor's
    positions of those channels (wire names)."""

    channels: dict[str, str]
    account: str | None
    positions: dict[str, cursor.Position]

    def internal_since(self) -> dict[str, cursor.Position]:
        return {self.channels[ch]: pos for ch, pos in self.positions.items()}


def wire_name(channel: str) -> str:
    """The client's name of an internal channel (``orders.<account>`` -> ``orders``)."""
    return ORDERS if channel.startswith(ORDERS_PREFIX) else channel


def _config(request: Request) -> GatewayConfig:
    config: GatewayConfig | None = getattr(request.app.state, "config", None)
    return config if config is not None else GatewayConfig()


def _token(request: Request) -> str | None:
    token = request.query_params.get("token")
    if token:
        return token
    auth = request.headers.get("authorization", "")
    scheme, _, value = auth.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return None


def parse_stream_request(request: Request, *, cursor_text: str | None) -> StreamRequest:
    """Validate ``ch``, ``token`` and the cursor. Raises :class:`GatewayError` with
    ``bad_request`` (missing ``ch``, bad cursor), ``unknown_channel``,
    ``too_many_subscriptions`` or ``unauthorized`` (``orders`` without a valid token).
    ``ch`` may be left out when the cursor names the channels."""
    services: Services = request.app.state.services
    positions: dict[str, cursor.Position] = {}
    if cursor_text:
        decoded = cursor.decode(cursor_text)
        if decoded is None:
            raise GatewayError(BAD_REQUEST, "malformed cursor")
        positions = decoded
    raw = request.query_params.get("ch", "")
    if len(raw) > MAX_CH_PARAM_CHARS:
        raise GatewayError(BAD_REQUEST, "ch is too long")
    names = list(dict.fromkeys(n.strip() for n in raw.split(",") if n.strip()))
    if not names:
        names = sorted(positions)
    if not names:
        raise GatewayError(BAD_REQUEST, "ch is required: a comma-separated list of channels")
    max_channels = _config(request).ws.max_subscriptions
    if len(names) > max_channels:
        raise GatewayError(TOO_MANY_SUBSCRIPTIONS, f"at most {max_channels} channels")
    known = symbol_names(services)
    for name in names:
        parsed = parse_channel(name)
        if parsed is None:
            raise GatewayError(UNKNOWN_CHANNEL, f"unknown channel {quoted(name)}")
        if parsed.symbol is not None and known and parsed.symbol not in known:
            raise GatewayError(UNKNOWN_CHANNEL, f"unknown symbol in {quoted(name)}")
    account: str | None = None
    token = _token(request)
    if token is not None:
        account = services.authenticate(token)
        if account is None:
            raise GatewayError(UNAUTHORIZED, "invalid token")
    channels: dict[str, str] = {}
    for name in names:
        if name == ORDERS:
            if account is None:
                raise GatewayError(UNAUTHORIZED, "the orders channel needs a token")
            channels[name] = orders_channel(account)
        else:
            channels[name] = name
    kept = {ch: pos for ch, pos in positions.items() if ch in channels}
    return StreamRequest(channels, account, kept)


# -- the poll transport ----------------------------------------------------------------------


HEARTBEAT_PREFIX = b'{"type":"heartbeat",'


class PollTransport:
    """Collects the envelopes of a long poll's hub connection, and its idle heartbeat. Other
    control messages are not part of a poll answer and are dropped. ``wait`` returns once a
    batch with at least one envelope, or a heartbeat, arrived, or after the timeout."""

    name = "poll"

    def __init__(self) -> None:
        self.envelopes: list[Envelope] = []
        self.heartbeat: bytes | None = None
        self._arrived = asyncio.Event()

    def can_write(self) -> bool:
        return True

    def write(self, batch: Sequence[Outgoing]) -> int:
        for item in batch:
            if type(item) is not bytes:
                self.envelopes.append(item)  # type: ignore[arg-type]
            elif item.startswith(HEARTBEAT_PREFIX):
                self.heartbeat = item
        if self.envelopes or self.heartbeat is not None:
            self._arrived.set()
        return 0

    def buffered(self) -> int:
        return 0

    async def wait_writable(self) -> None:
        return None

    async def close(self, code: int, reason: str) -> None:
        self._arrived.set()

    async def wait(self, timeout_s: float, *, gone: Receive | None = None) -> None:
        """Until envelopes arrived, ``timeout_s`` passed or (``gone``: the request's ASGI
        ``receive``) the client disconnected."""
        waits: list[asyncio.Future[Any]] = [asyncio.ensure_future(self._arrived.wait())]
        if gone is not None:
            waits.append(asyncio.ensure_future(_disconnect(gone)))
        try:
            await asyncio.wait(waits, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in waits:
                task.cancel()
            for task in waits:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task


async def _disconnect(receive: Receive) -> None:
    """Return when the client has gone (``http.disconnect``)."""
    while (await receive())["type"] != "http.disconnect":
        pass


# -- the endpoint ------------------------------------------------------------------------------


def _wait_s(request: Request) -> float:
    config = _config(request).poll
    text = request.query_params.get("wait")
    if text is None or text == "":
        return min(config.wait_default_s, config.wait_max_s)
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise GatewayError(
            BAD_REQUEST,
            f"wait must be a number of seconds, 0 or more (at most {config.wait_max_s:g} is "
            f"used), not {quoted(text, 32)}",
        ) from None
    return min(value, config.wait_max_s)


async def catch_up(store: SnapshotStore, req: StreamRequest) -> list[Envelope]:
    """Snapshots of channels without a position; the updates after the position (or a
    snapshot) of the others. In request channel order."""

    async def one(wire: str, internal: str) -> list[Envelope]:
        position = req.positions.get(wire)
        if position is None:
            found = await store.snapshot(internal)
            return [] if found is None else [found]
        resumed = await store.resume(internal, *position)
        if resumed.snapshot is not None:
            return [resumed.snapshot]
        return list(resumed.updates)

    parts = await asyncio.gather(*(one(w, i) for w, i in req.channels.items()))
    return [env for part in parts for env in part]


def _has(known: cursor.Position | None, env: Envelope) -> bool:
    return known is not None and known[0] == env.epoch and env.seq <= known[1]


def advance(
    positions: Mapping[str, cursor.Position], envelopes: Sequence[Envelope]
) -> tuple[list[Envelope], dict[str, cursor.Position]]:
    """The envelopes a client at ``positions`` still needs (updates it already has are
    dropped) and the positions after them (wire names)."""
    after = dict(positions)
    fresh: list[Envelope] = []
    for env in envelopes:
        wire = wire_name(env.channel)
        known = after.get(wire)
        if env.type == UPDATE and _has(known, env):
            continue  # an update the client already has
        fresh.append(env)
        after[wire] = (env.epoch, env.seq)
    return fresh, after


def poll_body(
    cursor_text: str, envelopes: Sequence[Envelope], control: Sequence[bytes] = ()
) -> bytes:
    """``{"cursor":..,"messages":[..]}`` from the envelopes' payloads, not re-encoded, then
    the ``control`` messages (a heartbeat)."""
    head = b'{"cursor":"' + cursor_text.encode("ascii") + b'","messages":['
    return head + b",".join([env.payload for env in envelopes] + list(control)) + b"]}"


async def long_poll(
    hub: Hub, req: StreamRequest, timeout_s: float, *, gone: Receive | None = None
) -> PollTransport:
    """Wait up to ``timeout_s`` for what arrives after ``req.positions`` (through the hub),
    or the connection's idle heartbeat; stop early when the client disconnects (``gone``: the
    request's ASGI ``receive``). The transport holds what arrived."""
    transport = PollTransport()
    conn = hub.connect(transport, account=req.account)
    try:
        await hub.subscribe(conn, list(req.channels.values()), since=req.internal_since())
        if len(conn.subscriptions) < len(req.channels):  # the hub dropped what it could not read
            raise StoreUnavailable()
        await transport.wait(timeout_s, gone=gone)
    finally:
        await hub.disconnect(conn)
    return transport


async def poll(request: Request) -> Response:
    try:
        req = parse_stream_request(request, cursor_text=request.query_params.get("cursor"))
        wait_s = _wait_s(request)
        services: Services = request.app.state.services
        found = await catch_up(services.store, req)
        messages, after = advance(req.positions, found)
        control: list[bytes] = []
        if not messages and wait_s > 0:
            hub: Hub = request.app.state.hub
            waited = await long_poll(hub, req, wait_s, gone=request.receive)
            messages, after = advance(req.positions, waited.envelopes)
            if not messages and waited.heartbeat is not None:
                control.append(waited.heartbeat)
    except GatewayError as exc:  # the store's StoreUnavailable too: 503 with Retry-After
        return gateway_error_response(exc)
    body = poll_body(cursor.encode(after), messages, control)
    return Response(body, media_type="application/json", headers={"Cache-Control": "no-store"})
