"""Faults in distributed mode: Redis goes down and comes back empty. Pushes keep flowing (they
come through Kafka), REST answers 503 ``unavailable`` meanwhile, and once Redis is back the
engine writes every snapshot again and REST answers as before."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.distributed.clients import Recorder, assert_contiguous, wait_for
from tests.distributed.cluster import Cluster
from tests.services import RedisServer, RedisServerConfig, missing_service

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

PUBLIC = ["book.AAPL", "trades.AAPL", "ticker.MSFT"]


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    """A Redis of this test's own, which it stops and starts again."""
    server = RedisServer()
    try:
        server.start()
    except RuntimeError as exc:
        missing_service(f"no Redis server available: {exc}")
    try:
        yield server
    finally:
        server.stop()


async def test_redis_down_and_back(
    kafka_bootstrap: str, own_redis: RedisServer, tmp_path: Path
) -> None:
    cluster = Cluster(kafka_bootstrap, own_redis.url, tmp_path / "c", "f" + uuid.uuid4().hex[:8])
    back: RedisServer | None = None
    try:
        cluster.engine("--rate", "300", "--store-flush-interval-ms", "20")
        g1 = cluster.gateway(name="g1")
        client = Recorder(g1.base, PUBLIC)
        await client.start()
        await wait_for(lambda: all(len(client.updates(ch)) >= 10 for ch in PUBLIC))
        async with httpx.AsyncClient(base_url=g1.base, timeout=10) as http:
            assert (await http.get("/v1/marketdata/ticker?symbol=MSFT")).status_code == 200
            channels = (await http.get("/healthz")).json()["channels"]

            own_redis.stop()
            seen = len(client.updates("book.AAPL"))
            await wait_for(lambda: len(client.updates("book.AAPL")) >= seen + 30)
            down = await http.get("/v1/marketdata/ticker?symbol=MSFT")
            assert down.status_code == 503, down.text
            assert down.json()["error"]["code"] == "unavailable"
            assert (await http.get("/healthz")).status_code == 503

            back = RedisServer(RedisServerConfig(port=own_redis.port))
            back.start()  # empty: the old one kept nothing

            async def rebuilt() -> bool:
                health = await http.get("/healthz")
                return health.status_code == 200 and health.json()["channels"] == channels

            for _ in range(400):  # every channel's snapshot again, quiet ones included
                if await rebuilt():
                    break
                await asyncio.sleep(0.05)
            assert await rebuilt()
            ticker = await http.get("/v1/marketdata/ticker?symbol=MSFT")
            assert ticker.status_code == 200, ticker.text
            book = await http.get("/v1/marketdata/orderBook/L2?symbol=AAPL")
            assert book.status_code == 200 and book.json()["bids"], book.text
        await client.close()
        for ch in PUBLIC:
            assert_contiguous(client.got[ch], ch)  # nothing lost or doubled on the push side
    finally:
        cluster.close()
        if back is not None:
            back.stop()
