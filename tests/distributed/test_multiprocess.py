"""One engine and two gateways as separate processes over a real broker and Redis: a client on
each node sees the same (channel, seq, data) streams; an order entered on node 1 fills and shows
on the account's stream on node 2; a client that leaves node 1 resumes on node 2."""

from __future__ import annotations

import asyncio
import signal

import httpx
import pytest

from tests.distributed.clients import (
    Recorder,
    assert_contiguous,
    assert_same_stream,
    wait_for,
)
from tests.distributed.cluster import KEY, Cluster

pytestmark = [pytest.mark.kafka, pytest.mark.redis, pytest.mark.slow]

PUBLIC = ["book.AAPL", "trades.AAPL", "ticker.AAPL", "book.MSFT"]


async def test_two_nodes_serve_the_same_streams_and_orders_cross_nodes(cluster: Cluster) -> None:
    cluster.engine("--rate", "300")
    g1 = cluster.gateway(name="g1")
    g2 = cluster.gateway(name="g2")
    c1 = Recorder(g1.base, [*PUBLIC, "orders"], key=KEY)
    c2 = Recorder(g2.base, [*PUBLIC, "orders"], key=KEY)
    await c1.start()
    await c2.start()
    await asyncio.wait_for(asyncio.gather(c1.subscribed.wait(), c2.subscribed.wait()), 20)
    await wait_for(lambda: all(len(c.updates(ch)) >= 30 for c in (c1, c2) for ch in PUBLIC))

    # an order entered on node 1: the engine's answer comes back through Kafka
    async with httpx.AsyncClient(base_url=g1.base, timeout=20) as http:
        resp = await http.post(
            "/v1/order",
            headers={"Authorization": f"Bearer {KEY}"},
            json={"symbol": "AAPL", "side": "buy", "type": "market", "qty": 1,
                  "clientOrderId": "cross-node-1"},
        )  # fmt: skip
        assert resp.status_code == 200, resp.text
        body = resp.json()
        assert body["order"]["status"] == "filled"
        assert any("tradeId" in ev for ev in body["events"]), body

    def filled_on(client: Recorder) -> bool:
        """The order's execution record and its ``done`` reached this client."""
        lines = [line for _, _, _, line in client.got["orders"] if b"cross-node-1" in line]
        return any(b'"event":"done"' in x for x in lines) and any(b'"tradeId"' in x for x in lines)

    await wait_for(lambda: filled_on(c2))  # on the account's stream on node 2
    await wait_for(lambda: filled_on(c1))
    await asyncio.sleep(0.5)
    await c1.close()
    await c2.close()

    for ch in [*PUBLIC, "orders"]:
        assert_contiguous(c1.got[ch], ch)
        assert_contiguous(c2.got[ch], ch)
        common = assert_same_stream(c1.updates(ch), c2.updates(ch), ch)
        assert common >= (1 if ch == "orders" else 20), (ch, common)
    assert c1.errors == [] and c2.errors == []

    # REST on either node reads the same Redis
    async with httpx.AsyncClient(timeout=10) as http:
        a = await http.get(f"{g1.base}/v1/account", headers={"Authorization": f"Bearer {KEY}"})
        b = await http.get(f"{g2.base}/v1/account", headers={"Authorization": f"Bearer {KEY}"})
        assert a.status_code == b.status_code == 200
        assert a.json() == b.json()
        assert a.json()["balances"]["AAPL"]["available"] == 1001
        order = await http.get(
            f"{g2.base}/v1/order/{body['order']['orderId']}",
            headers={"Authorization": f"Bearer {KEY}"},
        )
        assert order.json()["status"] == "filled"


async def test_a_client_resumes_on_another_node_after_a_gateway_is_killed(
    cluster: Cluster,
) -> None:
    """Node 1 dies (SIGKILL) under its client; the client reconnects to node 2 with its
    positions and misses nothing and sees nothing twice."""
    cluster.engine("--rate", "300")
    g1 = cluster.gateway(name="g1")
    g2 = cluster.gateway(name="g2")
    first = Recorder(g1.base, PUBLIC)
    await first.start()
    await wait_for(lambda: all(len(first.updates(ch)) >= 10 for ch in PUBLIC))
    cluster.stop(g1, sig=signal.SIGKILL)
    await first.close()
    since = {ch: first.position(ch) for ch in PUBLIC}
    await asyncio.sleep(0.5)  # updates the client misses while away
    second = Recorder(g2.base, PUBLIC)
    await second.start(since=since)
    witness = Recorder(g2.base, PUBLIC)  # a client that never left, for the bytes
    await witness.start()
    await wait_for(
        lambda: all(len(c.updates(ch)) >= 20 for c in (second, witness) for ch in PUBLIC)
    )
    await second.close()
    await witness.close()
    for ch in PUBLIC:
        joined = first.got[ch] + second.got[ch]
        assert second.got[ch][0][0] == "update", f"{ch}: resumed with a snapshot"
        assert_contiguous(joined, ch)
        assert_same_stream(second.updates(ch), witness.updates(ch), ch)
