"""Coverage-guided fuzzing of what a client may send to the gateway (atheris).

Each input is a sequence of client inputs driven in process into a gateway app (the real
``create_app`` over the in-memory bus and snapshot store, fed by the gateway tests'
``FakePublisher``, its lifespan running):

* WebSocket ops through :class:`gateway.edge.ws.WsSession` over a hub connection whose
  transport records what it is sent: ``subscribe``/``unsubscribe``/``auth``/``ping`` with
  mutated fields (wrong types, huge or odd ids, unknown or overlong channels, very many
  channels, odd ``since`` epochs and seqs), unknown ops, non-JSON, non-object JSON, oversize
  and binary frames, unicode; interleaved with live updates from the publisher;
* ``GET /v1/poll`` and ``GET /v1/sse`` requests (their Starlette endpoints called with a
  request built from a fuzzed query string and ``Last-Event-ID``/``Authorization`` headers):
  ``ch``, ``cursor`` (valid, mutated, garbage), ``wait`` and ``token`` values.

Checked after every input: nothing raises; each WebSocket message gets exactly one reply
(``subscribed``/``unsubscribed``/``authed``/``pong``/``error`` with the request's ``id``),
every server message is JSON of a spec type, every error has a spec code; envelopes only on
subscribed channels, each channel's stream a snapshot or the updates after the client's
``since``, then gap-free updates; the writer never stalls; a bystander connection gets every
update it subscribed to; the connection stays usable (after unsubscribing everything a fresh
subscribe gets its snapshot at the publisher's seq). HTTP: a 200 poll is
``{"cursor","messages"}`` with a cursor that decodes, a 4xx is the spec's error body, never 5xx;
an SSE stream starts with ``retry:`` and carries ``id:``-tagged envelopes.

    .venv/bin/python tests/fuzz/fuzz_client.py -max_total_time=900 -max_len=1024 /tmp/fuzz/client
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
from typing import Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

try:
    import atheris
except ImportError:  # replay-only mode
    atheris = None

_GATEWAY = [
    "gateway.edge.ws",
    "gateway.edge.poll",
    "gateway.edge.sse",
    "gateway.fanout.hub",
    "gateway.fanout.connection",
    "gateway.wire.cursor",
    "gateway.wire.channels",
    "gateway.wire.errors",
]

with atheris.instrument_imports(include=_GATEWAY) if atheris else contextlib.nullcontext():
    import fuzz_checks  # puts the repo root on sys.path
    import orjson

    from gateway.config import GatewayConfig, HubConfig, PollConfig, SseConfig, WsConfig
    from gateway.edge.app import create_app
    from gateway.edge.poll import poll
    from gateway.edge.sse import sse
    from gateway.edge.ws import TokenBucket, WsSession
    from gateway.fanout.connection import Connection, Mode
    from gateway.wire import cursor
    from gateway.wire.envelope import SNAPSHOT, UPDATE, Envelope
    from gateway.wire.errors import WS_CLOSE_SLOW
    from tests.gateway.conftest import EPOCH, SYMBOLS, TOKENS, RecordingTransport, make_stack

SPEC_CODES = {
    "bad_request",
    "unknown_channel",
    "unauthorized",
    "too_many_subscriptions",
    "rate_limited",
    "too_large",
}
HTTP_CODES = SPEC_CODES | {"forbidden", "not_found", "conflict", "unavailable"}
SEEDED = ("book.AAPL", "book.MSFT", "trades.AAPL", "orders.alice")
REPLIES = {"subscribed", "unsubscribed", "authed", "pong", "error"}
MAX_SUBSCRIPTIONS = 12
MAX_MESSAGE_BYTES = 2048

VALID = [
    *(f"{kind}.{sym}" for sym in SYMBOLS for kind in ("book", "trades", "ticker")),
    *(f"candles.AAPL.{res}" for res in ("1s", "1m", "5m", "1h")),
    "candles.MSFT.1d",
    "orders",
]
ODD = [
    "book.ZZZ",
    "book.",
    "book",
    "trades.AAPL.1m",
    "candles.AAPL.7m",
    "candles.AAPL",
    "orders.alice",
    "orders.bob",
    "Book.AAPL",
    "book.AAPL ",
    "",
    ".",
    "book.AAPL\n",
    "book.€",
    "tickér.MSFT",
    "book.A" * 20,
    "x" * 65,
    "book.\u0000",
    "ticker.AAPL,book.MSFT",
]
EPOCHS: list[Any] = [EPOCH, EPOCH, "ep2", "other", "", "e" * 65, 5, None, ["ep1"], "ép1"]
SEQS: list[Any] = [0, 1, 2, 3, 5, -1, 2**31, 2**63 - 1, 2**64, 2**80, True, 1.5, "1", None]
IDS: list[Any] = [1, 7, "a", "", 0, -1, 2**63, 2**70, 1.5, True, None, [1], {"x": 1}, "i" * 64]
IDS += ["i" * 65, "ünï"]
TOKEN_VALUES: list[Any] = [*TOKENS, "nope", "", 5, None, ["key-alice"], "key-alice ", "ключ"]
OPS: list[Any] = ["subscribe", "unsubscribe", "auth", "ping", "SUBSCRIBE", "", 1, None, ["ping"]]
JUNK_JSON = [b"[]", b"1", b'"subscribe"', b"null", b"true", b"{}", b"[{}]", b"{" * 2000]
WAITS = ["", "0", "0.001", "1", "-1", "nan", "inf", "-inf", "1e309", "0x10", "abc", "1_0", " 1"]


class Input:
    """Reads choices out of the fuzz bytes (zeros once they run out)."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def more(self) -> bool:
        return self.pos < len(self.data)

    def byte(self) -> int:
        if self.pos >= len(self.data):
            return 0
        self.pos += 1
        return self.data[self.pos - 1]

    def pick(self, items: list[Any]) -> Any:
        return items[self.byte() % len(items)]

    def raw(self, limit: int) -> bytes:
        n = self.byte() % (limit + 1)
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def text(self) -> str:
        return self.raw(24).decode("utf-8", "replace")

    def channel(self) -> Any:
        b = self.byte()
        if b < 150:
            return VALID[b % len(VALID)]
        if b < 230:
            return ODD[b % len(ODD)]
        if b < 245:
            return self.text()
        return [None, 5, ["book.AAPL"], {"ch": 1}][b % 4]

    def channels(self) -> Any:
        b = self.byte()
        if b < 200:
            return [self.channel() for _ in range(1 + b % 4)]
        if b < 210:
            return self.channel()  # a bare string (accepted) or junk
        if b < 225:
            return [VALID[i % len(VALID)] for i in range(b - 200)]  # up to 25, duplicates
        if b < 230:
            return [f"book.S{i}" for i in range(b * 9)]  # past the frame limit
        if b < 240:
            return [f"book.S{i}" for i in range(b - 225)]  # 5-14 unknown symbols
        return self.pick([[], {}, None, 7, "", [[]]])

    def since(self, names: Any) -> Any:
        b = self.byte()
        if b < 110:
            return None
        if b < 120:
            return self.pick([[], "x", 1, {"book.AAPL": 3}, {"book.AAPL": None}])
        pool = names if isinstance(names, list) and names else VALID
        out: dict[Any, Any] = {}
        for _ in range(1 + self.byte() % 3):
            name = self.pick(pool) if self.byte() % 4 else self.channel()
            pos: dict[str, Any] = {}
            if self.byte() % 8:
                pos["epoch"] = self.pick(EPOCHS)
            if self.byte() % 8:
                pos["seq"] = self.pick(SEQS)
            out[name if isinstance(name, str) else str(name)] = pos
        return out

    def ident(self) -> Any:
        return self.pick(IDS) if self.byte() % 4 else None


def dumps(obj: Any) -> str:
    """JSON as a client library would write it (big ints, NaN allowed; ASCII escapes)."""
    return json.dumps(obj)


def ws_message(inp: Input) -> tuple[str | bytes, Any]:
    """One inbound WebSocket message and the ``id`` a reply must carry (or ``...``: none)."""
    kind = inp.byte() % 16
    msg: dict[str, Any] = {}
    if kind < 6:
        msg = {"op": "subscribe", "ch": inp.channels()}
        since = inp.since(msg["ch"])
        if since is not None:
            msg["since"] = since
    elif kind < 8:
        msg = {"op": "unsubscribe", "ch": inp.channels()}
    elif kind < 10:
        msg = {"op": "auth", "token": inp.pick(TOKEN_VALUES)}
    elif kind == 10:
        msg = {"op": "ping"}
    elif kind == 11:
        msg = {"op": inp.pick(OPS), "ch": inp.channels(), "token": inp.pick(TOKEN_VALUES)}
    elif kind == 12:
        junk = inp.raw(64)
        if inp.byte() % 2:
            return junk, ...
        return junk.decode("utf-8", "replace"), ...
    elif kind == 13:
        return inp.pick(JUNK_JSON).decode(), ...
    elif kind == 14:
        pad = "é" * (MAX_MESSAGE_BYTES // 2 + inp.byte())
        return dumps({"op": "ping", "pad": pad, "id": 1}), ...
    else:
        # a valid op with one byte changed
        text = bytearray(dumps({"op": "subscribe", "ch": ["book.AAPL"], "id": 3}).encode())
        text[inp.byte() % len(text)] = inp.byte()
        return bytes(text), ...
    ident = inp.ident()
    if ident is not None or inp.byte() % 2:
        msg["id"] = ident
    if inp.byte() % 16 == 0:
        msg["extra"] = inp.text()
    return dumps(msg), msg.get("id")


# -- the WebSocket client's view -------------------------------------------------------------


class Client:
    """What a client has received on one connection, checked as it arrives."""

    def __init__(self, conn: Connection, transport: RecordingTransport) -> None:
        self.conn = conn
        self.transport = transport
        self.seen = 0
        self.streams: dict[str, tuple[str, int] | None] = {}
        """Per subscribed wire channel: the (epoch, seq) the next update follows."""

    def new_messages(self) -> list[dict[str, Any] | Envelope]:
        items = self.transport.items()
        fresh = items[self.seen :]
        self.seen = len(items)
        out: list[dict[str, Any] | Envelope] = []
        for item in fresh:
            if isinstance(item, Envelope):
                out.append(item)
            else:
                msg = orjson.loads(item)
                assert isinstance(msg, dict), item
                out.append(msg)
        return out

    def check_envelope(self, env: Envelope) -> None:
        msg = orjson.loads(env.payload)
        assert msg["type"] in (SNAPSHOT, UPDATE), msg
        wire = msg["ch"]
        assert wire in self.streams, f"an envelope of {wire} which is not subscribed"
        assert type(msg["epoch"]) is str and type(msg["seq"]) is int and type(msg["ts"]) is int
        assert isinstance(msg["data"], dict)
        if msg["type"] == UPDATE:
            at = self.streams[wire]
            if at is None:  # no snapshot: only a stream's very first update may come first
                assert msg["seq"] == 1, f"an update of {wire} before its snapshot"
            else:
                assert (msg["epoch"], msg["seq"]) == (at[0], at[1] + 1), (wire, at, msg["seq"])
        self.streams[wire] = (msg["epoch"], msg["seq"])

    def check_control(self, msg: dict[str, Any]) -> None:
        kind = msg.get("type")
        assert kind in REPLIES or kind == "heartbeat", msg
        if kind == "error":
            assert msg["code"] in SPEC_CODES, msg
            assert isinstance(msg["message"], str)


async def drain(client: Client) -> None:
    """Let the writer hand over everything queued and finish its resyncs (it must not
    stall)."""
    conn = client.conn
    for _ in range(200):
        await asyncio.sleep(0)
        if conn.closed or (
            conn.queued == 0
            and not conn._stale
            and all(sub.mode is Mode.LIVE for sub in conn.subscriptions.values())
        ):
            return
    raise AssertionError("the writer stalled with items queued")


async def drain_checked(client: Client, *, updates_only: bool = False) -> None:
    """:func:`drain`, then check every message the client got; ``updates_only``: there may
    be envelopes only (the bystander sends nothing after subscribing)."""
    await drain(client)
    for msg in client.new_messages():
        if isinstance(msg, Envelope):
            client.check_envelope(msg)
        else:
            assert not updates_only, msg
            client.check_control(msg)


async def send_op(client: Client, session: WsSession, data: str | bytes, id_: Any) -> None:
    """Send one message; check its single reply and everything else that arrived."""
    sent = dict(parse_ws(data))
    await session.handle(data)
    await drain(client)
    replies = []
    for msg in client.new_messages():
        if isinstance(msg, Envelope):
            client.check_envelope(msg)
            continue
        client.check_control(msg)
        if msg["type"] == "heartbeat":
            continue
        replies.append(msg)
        if msg["type"] == "subscribed":
            since = sent.get("since") if isinstance(sent.get("since"), dict) else {}
            for name in msg["ch"]:
                pos = since.get(name) if isinstance(since, dict) else None
                client.streams[name] = (pos["epoch"], pos["seq"]) if pos else None
        elif msg["type"] == "unsubscribed":
            for name in msg["ch"]:
                client.streams.pop(name, None)
    assert len(replies) == 1, f"{len(replies)} replies to {data!r}: {replies}"
    (reply,) = replies
    if id_ is not ...:
        if "id" in reply:
            assert reply["id"] == id_, (reply, id_)
        else:  # no id sent, or one the server refused (its error carries none)
            assert id_ is None or reply["type"] == "error", (reply, id_)
    if reply["type"] == "subscribed":
        assert all(isinstance(n, str) for n in reply["ch"])


def parse_ws(data: str | bytes) -> dict[str, Any]:
    try:
        msg = json.loads(data)
    except (ValueError, RecursionError):
        return {}
    return msg if isinstance(msg, dict) else {}


async def probe(client: Client, session: WsSession, at: tuple[str, int]) -> None:
    """The connection is still usable: unsubscribe everything, subscribe book.MSFT afresh and
    get its snapshot at the publisher's seq."""
    session.bucket = TokenBucket(0.0, 10**9)
    if client.streams:
        await send_op(
            client, session, dumps({"op": "unsubscribe", "ch": sorted(client.streams)}), ...
        )
        assert not client.conn.subscriptions, client.conn.subscriptions
    await send_op(client, session, dumps({"op": "subscribe", "ch": ["book.MSFT"], "id": 9}), 9)
    assert client.streams["book.MSFT"] == at, client.streams


# -- HTTP: poll and SSE --------------------------------------------------------------------


def query(inp: Input) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    parts: list[str] = []
    headers: list[tuple[bytes, bytes]] = []
    if inp.byte() % 8:
        chans = inp.channels()
        names = chans if isinstance(chans, list) else [chans]
        sep = inp.pick([",", ",", ", ", ",,", "%2C", ";"])
        text = sep.join(str(n) for n in names)
        parts.append("ch=" + (quote(text, safe=",") if inp.byte() % 4 else text))
    b = inp.byte()
    cur = None
    if b % 4 == 1:
        positions = {
            inp.pick(VALID): (inp.pick([EPOCH, "ep2"]), inp.byte() % 6)
            for _ in range(1 + inp.byte() % 3)
        }
        cur = cursor.encode(positions)
        if inp.byte() % 3 == 0:
            chars = list(cur)
            chars[inp.byte() % len(chars)] = chr(inp.byte() % 128)
            cur = "".join(chars)
    elif b % 4 == 2:
        body = inp.raw(48)
        cur = "v1." + base64.urlsafe_b64encode(body).rstrip(b"=").decode()
    elif b % 4 == 3:
        cur = inp.pick(["", "v1.", "v2.e30", "v1.e30", "v1.W10", "x" * 9000, inp.text()])
    if cur is not None:
        if inp.byte() % 2:
            parts.append("cursor=" + quote(cur))
        else:
            headers.append((b"last-event-id", cur.encode("utf-8", "replace")[:9000]))
    if inp.byte() % 2:
        parts.append("wait=" + quote(inp.pick(WAITS)))
    t = inp.byte() % 4
    token = inp.pick(TOKEN_VALUES)
    if t == 1:
        parts.append("token=" + quote(str(token)))
    elif t == 2:
        headers.append((b"authorization", ("Bearer " + str(token)).encode("utf-8")))
    if inp.byte() % 16 == 0:
        parts.append(inp.raw(32).decode("latin-1"))
    qs = "&".join(parts)
    return qs.encode("utf-8", "replace"), headers


def request(app: Any, path: str, qs: bytes, headers: list[tuple[bytes, bytes]]) -> Request:
    async def receive() -> dict[str, Any]:
        await asyncio.Event().wait()  # the client never goes away
        return {"type": "http.disconnect"}

    scope = {
        "type": "http",
        "method": "GET",
        "path": path,
        "raw_path": path.encode(),
        "query_string": qs,
        "headers": headers,
        "app": app,
        "http_version": "1.1",
        "scheme": "http",
        "server": ("test", 80),
        "client": ("test", 1),
        "root_path": "",
    }
    return Request(scope, receive)


def check_error_response(resp: Response) -> None:
    assert 400 <= resp.status_code < 500, (resp.status_code, resp.body)
    err = orjson.loads(resp.body)["error"]
    assert err["code"] in HTTP_CODES and isinstance(err["message"], str), err


async def get_ok(app: Any, inp: Input, endpoint: Any, path: str) -> Any:
    """``endpoint`` of a GET of ``path`` with the input's query and headers: its response if
    200, else ``None`` after checking the error response."""
    qs, headers = query(inp)
    resp = await endpoint(request(app, path, qs, headers))
    if resp.status_code != 200:
        check_error_response(resp)
        return None
    return resp


async def do_poll(app: Any, inp: Input) -> None:
    resp = await get_ok(app, inp, poll, "/v1/poll")
    if resp is None:
        return
    body = orjson.loads(resp.body)
    assert cursor.decode(body["cursor"]) is not None, body
    for msg in body["messages"]:
        assert msg["type"] in (SNAPSHOT, UPDATE) and isinstance(msg["seq"], int), msg


async def do_sse(app: Any, inp: Input) -> None:
    resp = await get_ok(app, inp, sse, "/v1/sse")
    if resp is None:
        return
    stream: Any = resp.body_iterator if isinstance(resp, StreamingResponse) else None
    stream = getattr(resp, "body_iterator", stream)  # an EventSourceResponse's
    try:
        chunks = [await anext(stream) for _ in range(2)]
    finally:
        await stream.aclose()
        if resp.background is not None:
            await resp.background()
    first = chunks[0] if isinstance(chunks[0], bytes) else str(chunks[0]).encode()
    assert first.startswith(b"retry: "), first
    for chunk in chunks[1:]:
        raw = chunk if isinstance(chunk, bytes) else str(chunk).encode()
        for event in raw.split(b"\n\n"):
            if not event:
                continue
            fields = dict(line.split(b": ", 1) for line in event.split(b"\n"))
            msg = orjson.loads(fields[b"data"])
            if msg["type"] in (SNAPSHOT, UPDATE):
                assert cursor.decode(fields[b"id"].decode()) is not None
            else:
                assert msg["type"] == "heartbeat", msg


# -- one input ---------------------------------------------------------------------------------


def config(inp: Input) -> GatewayConfig:
    limited = inp.byte() % 8 == 0
    return GatewayConfig(
        hub=HubConfig(
            heartbeat_interval_s=30.0,
            queue_max_messages=(8, 64, 10_000)[inp.byte() % 3],
        ),
        ws=WsConfig(
            max_subscriptions=MAX_SUBSCRIPTIONS,
            max_message_bytes=MAX_MESSAGE_BYTES,
            rate_msgs_per_s=0.0 if limited else 1e9,
            rate_burst_msgs=4 if limited else 10**9,
        ),
        sse=SseConfig(heartbeat_interval_s=0.001),
        poll=PollConfig(wait_max_s=0.001),
    )


async def run(data: bytes) -> None:
    inp = Input(data)
    stack = make_stack(history_max=1 + inp.byte() % 8)
    pub = stack.publisher
    for ch in SEEDED:
        pub.emit_many(ch, 1 + inp.byte() % 4)
    cfg = config(inp)
    app = create_app(cfg, services=stack.services, metrics=stack.metrics)
    async with app.router.lifespan_context(app):
        hub = app.state.hub
        by_transport = RecordingTransport()
        bystander = Client(hub.connect(by_transport), by_transport)
        by_session = WsSession(hub, bystander.conn, stack.services, cfg.ws)
        by_session.bucket = TokenBucket(0.0, 10**9)
        await send_op(bystander, by_session, dumps({"op": "auth", "token": "key-alice"}), ...)
        watched = ["book.AAPL", "trades.AAPL", "orders"]
        await send_op(bystander, by_session, dumps({"op": "subscribe", "ch": watched}), ...)

        transport = RecordingTransport()
        client = Client(hub.connect(transport), transport)
        session = WsSession(hub, client.conn, stack.services, cfg.ws)
        for _ in range(40):
            if not inp.more():
                break
            what = inp.byte() % 16
            if what < 11:
                frame, id_ = ws_message(inp)
                await send_op(client, session, frame, id_)
            elif what < 13:
                ch = inp.pick(["book.AAPL", "book.MSFT", "trades.AAPL", "ticker.MSFT"])
                pub.emit_many(ch if inp.byte() % 4 else "orders.alice", 1 + inp.byte() % 6)
                await drain_checked(client)
            elif what < 15:
                await do_poll(app, inp)
            elif inp.byte() % 4:
                await do_sse(app, inp)
            else:
                # the publisher restarts without its journal: a new epoch, seqs from 1
                pub.epoch = f"ep{int(pub.epoch[2:]) + 1}"
                pub.seqs = {}
                for ch in SEEDED:
                    pub.emit(ch)
                await drain_checked(client)
            await drain_checked(bystander, updates_only=True)
            if client.conn.closed:
                # only the documented case: `orders` past the send queue's bound
                assert client.conn.close_code == WS_CLOSE_SLOW, client.conn.close_code
                break
        else:
            await probe(client, session, (pub.epoch, pub.seqs["book.MSFT"]))
        # the bystander got every update of its channels, gap-free (unless it was closed as
        # slow: a burst of `orders` past its queue bound)
        await drain_checked(bystander, updates_only=True)
        if bystander.conn.closed:
            assert bystander.conn.close_code == WS_CLOSE_SLOW, bystander.conn.close_code
        else:
            assert bystander.streams == {
                "book.AAPL": (pub.epoch, pub.seqs["book.AAPL"]),
                "trades.AAPL": (pub.epoch, pub.seqs["trades.AAPL"]),
                "orders": (pub.epoch, pub.seqs["orders.alice"]),
            }, bystander.streams
    assert hub.connection_count == 0


_LOOP = asyncio.new_event_loop()


def test_one_input(data: bytes) -> None:
    _LOOP.run_until_complete(run(data))


def main() -> None:
    fuzz_checks.fuzz_main(test_one_input, atheris)


if __name__ == "__main__":
    main()
