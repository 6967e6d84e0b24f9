"""The engine process restarted (after SIGKILL): it recovers from its journal and the offsets
next to it, keeps the epoch, continues every channel's seq, and runs the order that arrived while
it was down; clients see no gap, no duplicate and no different bytes. Without an engine, order
entry answers 504 ``timeout`` instead of hanging."""

from __future__ import annotations

import asyncio
import signal

import httpx
import pytest

from tests.distributed.clients import Recorder, assert_contiguous, assert_same_stream, wait_for
from tests.distributed.cluster import KEY, Cluster

pytestmark = [pytest.mark.kafka, pytest.mark.redis, pytest.mark.slow]

CHANNELS = ["book.AAPL", "trades.AAPL", "ticker.MSFT", "orders"]


async def _order(base: str, coid: str) -> httpx.Response:
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        return await http.post(
            "/v1/order",
            headers={"Authorization": f"Bearer {KEY}"},
            json={"symbol": "AAPL", "side": "buy", "type": "limit", "price": "1.00",
                  "qty": 1, "clientOrderId": coid},
        )  # fmt: skip


async def test_a_killed_engine_restarts_where_it_was(cluster: Cluster) -> None:
    engine = cluster.engine("--rate", "300", "--fsync", "interval")
    g1 = cluster.gateway("--command-timeout-s", "20", name="g1")
    before = Recorder(g1.base, CHANNELS, key=KEY)
    await before.start()
    await wait_for(lambda: all(len(before.updates(ch)) >= 20 for ch in CHANNELS[:3]))
    first = await _order(g1.base, "before-kill")
    assert first.status_code == 200, first.text

    assert cluster.stop(engine, sig=signal.SIGKILL) == -signal.SIGKILL
    seen = {ch: before.got[ch][-1][1] for ch in CHANNELS}
    pending = asyncio.create_task(_order(g1.base, "while-down"))  # waits in the commands topic
    await asyncio.sleep(0.5)
    assert not pending.done()

    restarted = cluster.engine("--rate", "300", "--fsync", "interval")
    assert "commands restored" in restarted.text()
    answer = await asyncio.wait_for(pending, 30)
    assert answer.status_code == 200, answer.text
    assert answer.json()["order"]["status"] == "new"

    g2 = cluster.gateway(name="g2")
    after = Recorder(g2.base, CHANNELS, key=KEY)
    await after.start()
    await wait_for(
        lambda: (
            all(before.got[ch][-1][1] >= seen[ch] + 20 for ch in CHANNELS[:3])
            and all(len(after.updates(ch)) >= 10 for ch in CHANNELS[:3])
            and any(b"while-down" in line for *_, line in before.got["orders"])
        )
    )
    await before.close()
    await after.close()
    for ch in CHANNELS:
        assert_contiguous(before.got[ch], ch)  # one epoch, no gap, no duplicate across the kill
    # no command ran twice (a second run of an order is rejected as a duplicate)
    assert not [line for *_, line in before.got["orders"] if b'"rejected"' in line]
    for ch in CHANNELS[:3]:
        assert_same_stream(before.updates(ch), after.updates(ch), ch)
    async with httpx.AsyncClient(base_url=g2.base, timeout=10) as http:
        orders = await http.get(
            "/v1/orders?status=open", headers={"Authorization": f"Bearer {KEY}"}
        )
    coids = [o["clientOrderId"] for o in orders.json()["orders"]]
    assert coids.count("before-kill") == 1 and coids.count("while-down") == 1, coids


async def test_without_an_engine_order_entry_times_out_with_504(cluster: Cluster) -> None:
    g1 = cluster.gateway("--command-timeout-s", "1", name="g1")
    resp = await _order(g1.base, "nobody-home")
    assert resp.status_code == 504
    assert resp.json()["error"]["code"] == "timeout"
