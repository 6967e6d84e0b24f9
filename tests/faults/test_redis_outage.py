"""Redis SIGKILLed under ``quotegate run --redis`` and restarted empty on the same port.

While it is down: REST snapshots, ``/v1/poll`` and ``/healthz`` answer ``503 unavailable`` with
``Retry-After`` (no 500, no traceback in the log); a new SSE stream gets the ``unavailable``
event and ends (the EventSource reconnects) instead of staying open with no data; a WebSocket
subscribed before keeps receiving pushes, gap-free. Once Redis is back (empty), every channel's
snapshot, the history bound and the ``orders`` snapshots are rebuilt from the publisher without
restarting quotegate: ``/healthz`` counts every channel again and a new ``orders`` stream
starts with a snapshot.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path

import httpx
import orjson
import pytest
from websockets.asyncio.client import connect

from tests.faults.harness import KEY, Client, Quotegate, read_ws, subscribe_op
from tests.services import RedisServer, RedisServerConfig, free_port

pytestmark = pytest.mark.slow


async def _sse_events(base: str, query: str, max_s: float) -> tuple[list[bytes], bool]:
    """The ``data:`` lines of an SSE stream read for at most ``max_s``, and whether the server
    ended the stream in that time."""
    lines: list[bytes] = []
    ended = False
    async with httpx.AsyncClient(base_url=base, timeout=max_s + 1) as http:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max_s), http.stream("GET", f"/v1/sse?{query}") as r:
                assert r.status_code == 200
                async for line in r.aiter_lines():
                    if line.startswith("data: "):
                        lines.append(line[6:].encode())
                ended = True
    return lines, ended


def _kill9(server: RedisServer) -> None:
    proc = server._proc
    assert proc is not None
    proc.kill()
    proc.wait(timeout=10)
    server.stop()


async def _wait_healthy(http: httpx.AsyncClient, channels: int, max_s: float) -> dict[str, object]:
    deadline = time.monotonic() + max_s
    body: dict[str, object] = {}
    while time.monotonic() < deadline:
        r = await http.get("/healthz")
        body = r.json()
        if r.status_code == 200 and body.get("channels") == channels:
            return body
        await asyncio.sleep(0.1)
    raise AssertionError(f"not rebuilt within {max_s} s: {body}")


async def test_redis_killed_and_restarted_empty(tmp_path: Path) -> None:
    port = free_port()
    redis = RedisServer(RedisServerConfig(port=port))
    redis.start()
    qg = Quotegate(
        tmp_path / "qg.log",
        "--redis", redis.url, "--symbols", "AAPL", "--rate", "300",
        "--store-flush-interval-ms", "20",
    )  # fmt: skip
    try:
        qg.start()
        bystander = Client()
        async with (
            httpx.AsyncClient(base_url=qg.base, timeout=5) as http,
            connect(qg.ws_url) as ws,
        ):
            await ws.send(subscribe_op(["book.AAPL", "trades.AAPL"]))
            await read_ws(ws, bystander, 1.0)
            healthy = (await http.get("/healthz")).json()
            channels = healthy["channels"]
            assert channels >= 10  # book, trades, ticker, candles x6, orders.demo

            _kill9(redis)
            await asyncio.sleep(0.3)
            during = bystander.updates
            for path in (
                "/v1/marketdata/orderBook/L2?symbol=AAPL",
                "/v1/marketdata/trades?symbol=AAPL",
                "/v1/marketdata/ticker?symbol=AAPL",
                "/v1/poll?ch=book.AAPL",
                f"/v1/poll?ch=orders&token={KEY}",
            ):
                r = await http.get(path)
                assert r.status_code == 503, (path, r.status_code, r.text)
                assert r.json()["error"]["code"] == "unavailable", path
                assert int(r.headers["retry-after"]) >= 1, path
            health = await http.get("/healthz")
            assert health.status_code == 503 and health.json()["status"] == "unavailable"
            # a new SSE stream is told and ended, not left open with nothing
            events, ended = await _sse_events(qg.base, "ch=book.AAPL", 5.0)
            assert ended, "the SSE stream stayed open while its channel could not be served"
            assert any(orjson.loads(e).get("code") == "unavailable" for e in events), events
            # pushes keep flowing to the subscriber from before
            await read_ws(ws, bystander, 1.0)
            assert bystander.updates > during
            assert not bystander.gaps and not bystander.checksum_mismatches

            redis = RedisServer(RedisServerConfig(port=port))
            redis.start()  # back, empty
            await _wait_healthy(http, channels, 5.0)
            book = await http.get("/v1/marketdata/orderBook/L2?symbol=AAPL")
            assert book.status_code == 200 and book.json()["bids"] is not None
            polled = (await http.get("/v1/poll?ch=book.AAPL,ticker.AAPL")).json()
            assert {m["ch"] for m in polled["messages"]} == {"book.AAPL", "ticker.AAPL"}
            mine = (await http.get(f"/v1/poll?ch=orders&token={KEY}")).json()["messages"]
            assert mine and mine[0]["type"] == "snapshot"  # the orders snapshot is back
            events, _ = await _sse_events(qg.base, "ch=trades.AAPL", 1.0)
            first = orjson.loads(events[0])
            assert first["type"] == "snapshot" and first["ch"] == "trades.AAPL"
            # history is recorded again: a poll cursor resumes with updates, not a snapshot
            cursor = polled["cursor"]
            await asyncio.sleep(0.5)
            again = (await http.get(f"/v1/poll?cursor={cursor}")).json()["messages"]
            assert again and all(m["type"] == "update" for m in again)
            await read_ws(ws, bystander, 0.5)
            assert not bystander.gaps and not bystander.checksum_mismatches
        log = qg.log_text()
        assert "Traceback" not in log, log[-3000:]
    finally:
        qg.stop()
        redis.stop()
