"""A primary and a standby engine (``--failover``): the standby follows the engine log, takes
the lease when the primary dies and continues every channel's seq with no gap, no duplicate and
no different bytes; a deposed primary that wakes up is fenced and exits."""

from __future__ import annotations

import re
import signal
import time

import httpx
import pytest

from tests.distributed.clients import Recorder, assert_contiguous, assert_same_stream, wait_for
from tests.distributed.cluster import KEY, Cluster, Node

pytestmark = [pytest.mark.kafka, pytest.mark.redis, pytest.mark.slow]

CHANNELS = ["book.AAPL", "trades.AAPL", "ticker.MSFT", "orders"]
FAILOVER = ("--failover", "--lease-ttl-ms", "1000", "--rate", "300")


def _wait_leader(node: Node, timeout_s: float = 30.0) -> float:
    """Wait until the engine says it leads; the takeover time it measured."""
    deadline = time.monotonic() + timeout_s
    while (found := re.search(r"took over in ([0-9.]+) s", node.text())) is None:
        if node.proc.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"{node.name} did not become leader:\n{node.text()}")
        time.sleep(0.02)
    return float(found.group(1))


async def _order(base: str, coid: str) -> httpx.Response:
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        return await http.post(
            "/v1/order",
            headers={"Authorization": f"Bearer {KEY}"},
            json={"symbol": "AAPL", "side": "buy", "type": "limit", "price": "1.00",
                  "qty": 1, "clientOrderId": coid},
        )  # fmt: skip


async def test_the_standby_takes_over_within_2_s_and_continues_every_seq(
    cluster: Cluster,
) -> None:
    primary = cluster.engine(*FAILOVER, name="e1")
    _wait_leader(primary)
    standby = cluster.engine(*FAILOVER, name="e2")
    g1 = cluster.gateway("--command-timeout-s", "20", name="g1")
    client = Recorder(g1.base, CHANNELS, key=KEY)
    await client.start()
    await wait_for(lambda: all(len(client.updates(ch)) >= 20 for ch in CHANNELS[:3]))
    assert (await _order(g1.base, "before-failover")).status_code == 200
    last = client.got["book.AAPL"][-1][1]

    killed = time.monotonic()
    cluster.stop(primary, sig=signal.SIGKILL)
    took = _wait_leader(standby)
    await wait_for(lambda: client.got["book.AAPL"][-1][1] > last + 1)
    visible = time.monotonic() - killed  # kill -> the client's next book update
    assert took < 2.0, took
    assert visible < 4.0, visible  # lease TTL + takeover, on a busy test machine

    after = await _order(g1.base, "after-failover")
    assert after.status_code == 200, after.text
    g2 = cluster.gateway(name="g2")
    witness = Recorder(g2.base, CHANNELS, key=KEY)
    await witness.start()
    await wait_for(
        lambda: (
            all(len(witness.updates(ch)) >= 10 for ch in CHANNELS[:3])
            and any(b"after-failover" in line for *_, line in client.got["orders"])
        )
    )
    await client.close()
    await witness.close()
    for ch in CHANNELS:
        assert_contiguous(client.got[ch], ch)
    for ch in CHANNELS[:3]:
        assert_same_stream(client.updates(ch), witness.updates(ch), ch)
    assert not [line for *_, line in client.got["orders"] if b'"rejected"' in line]
    async with httpx.AsyncClient(base_url=g2.base, timeout=10) as http:
        orders = await http.get(
            "/v1/orders?status=open", headers={"Authorization": f"Bearer {KEY}"}
        )
    coids = [o["clientOrderId"] for o in orders.json()["orders"]]
    assert coids.count("before-failover") == 1 and coids.count("after-failover") == 1, coids


async def test_a_deposed_primary_is_fenced_and_exits(cluster: Cluster) -> None:
    primary = cluster.engine(*FAILOVER, name="e1")
    _wait_leader(primary)
    standby = cluster.engine(*FAILOVER, name="e2")
    g1 = cluster.gateway(name="g1")
    client = Recorder(g1.base, CHANNELS[:3])
    await client.start()
    await wait_for(lambda: all(len(client.updates(ch)) >= 20 for ch in CHANNELS[:3]))

    primary.proc.send_signal(signal.SIGSTOP)  # alive but silent: its lease runs out
    _wait_leader(standby)
    primary.proc.send_signal(signal.SIGCONT)  # wakes up believing it leads, for a moment
    assert primary.proc.wait(timeout=20) == 3, primary.text()
    assert "deposed" in primary.text()

    last = {ch: client.got[ch][-1][1] for ch in CHANNELS[:3]}
    await wait_for(lambda: all(client.got[ch][-1][1] >= last[ch] + 10 for ch in CHANNELS[:3]))
    witness = Recorder(g1.base, CHANNELS[:3])
    await witness.start()
    await wait_for(lambda: all(len(witness.updates(ch)) >= 10 for ch in CHANNELS[:3]))
    await client.close()
    await witness.close()
    for ch in CHANNELS[:3]:
        assert_contiguous(client.got[ch], ch)
        assert_same_stream(client.updates(ch), witness.updates(ch), ch)
