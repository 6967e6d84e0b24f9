"""One protocol, three transports: the same (channel, seq) carries the same bytes over
WebSocket, SSE and polling, on a real uvicorn server."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import orjson
from websockets.asyncio.client import connect

from gateway.fanout.hub import Hub
from tests.gateway.conftest import Server, Stack

CHANNELS = ["book.AAPL", "trades.AAPL", "book.MSFT"]
UPDATES_PER_CHANNEL = 20
TIMEOUT_S = 10.0

Key = tuple[str, int]


def key(raw: bytes) -> Key | None:
    msg = orjson.loads(raw)
    if msg.get("type") not in ("snapshot", "update"):
        return None
    return msg["ch"], msg["seq"]


async def ws_collect(server: Server, ready: asyncio.Event, want: set[Key]) -> dict[Key, bytes]:
    got: dict[Key, bytes] = {}
    async with connect(server.ws_url) as ws:
        await ws.send(orjson.dumps({"op": "subscribe", "ch": CHANNELS, "id": 1}))
        ready.set()
        while not want <= got.keys():
            frame = await ws.recv()
            data = frame.encode() if isinstance(frame, str) else frame
            for raw in data.split(b"\n"):
                k = key(raw)
                if k is not None:
                    got[k] = raw
    return got


async def sse_collect(server: Server, ready: asyncio.Event, want: set[Key]) -> dict[Key, bytes]:
    got: dict[Key, bytes] = {}
    async with (
        httpx.AsyncClient(base_url=server.http_url, timeout=TIMEOUT_S) as client,
        client.stream("GET", "/v1/sse", params={"ch": ",".join(CHANNELS)}) as r,
    ):
        assert r.status_code == 200
        ready.set()
        async for line in r.aiter_lines():
            if line.startswith("data: "):
                raw = line.removeprefix("data: ").encode()
                k = key(raw)
                if k is not None:
                    got[k] = raw
            if want <= got.keys():
                break
    return got


async def poll_collect(server: Server, ready: asyncio.Event, want: set[Key]) -> dict[Key, bytes]:
    got: dict[Key, bytes] = {}
    params: dict[str, Any] = {"ch": ",".join(CHANNELS)}
    async with httpx.AsyncClient(base_url=server.http_url, timeout=TIMEOUT_S) as client:
        while not want <= got.keys():
            r = await client.get("/v1/poll", params=params)
            assert r.status_code == 200
            ready.set()
            body = orjson.loads(r.content)
            for msg in body["messages"]:
                raw = orjson.dumps(msg)
                # the body embeds the payload bytes verbatim
                assert raw in r.content
                got[(msg["ch"], msg["seq"])] = raw
            params = {"ch": ",".join(CHANNELS), "cursor": body["cursor"], "wait": 5}
    return got


async def test_same_channel_and_seq_same_bytes_on_every_transport(
    server: Server, stack: Stack, app: Any
) -> None:
    hub: Hub = app.state.hub
    stack.publisher.emit("book.MSFT")
    want = {
        (ch, stack.publisher.seqs[ch] + i)
        for ch in CHANNELS
        for i in range(1, UPDATES_PER_CHANNEL + 1)
    }
    sent: dict[Key, bytes] = {}
    readies = [asyncio.Event() for _ in range(3)]
    tasks = [
        asyncio.create_task(ws_collect(server, readies[0], want)),
        asyncio.create_task(sse_collect(server, readies[1], want)),
        asyncio.create_task(poll_collect(server, readies[2], want)),
    ]
    for ready in readies:
        await asyncio.wait_for(ready.wait(), TIMEOUT_S)
    for _ in range(2000):  # WS and SSE subscribed
        if all(hub.subscribers(ch) >= 2 for ch in CHANNELS):
            break
        await asyncio.sleep(0.005)
    for i in range(UPDATES_PER_CHANNEL):
        for ch in CHANNELS:
            env = stack.publisher.emit(ch)
            sent[(ch, env.seq)] = env.payload
        if i % 5 == 4:
            await asyncio.sleep(0.01)  # let the streams drain in several batches
    ws_got, sse_got, poll_got = await asyncio.wait_for(asyncio.gather(*tasks), TIMEOUT_S * 2)
    for k in sorted(want):
        assert ws_got[k] == sse_got[k] == poll_got[k] == sent[k], k
