"""``quotegate bench distributed``: distributed mode end to end on this machine.

A broker (``--kafka``, else a Tansu broker with in-memory storage on a free port) and a Redis
(``--redis``, else one started on a free port); every node is a real process
(:mod:`loadtest.cluster`). Three phases:

* **latency**: ``quotegate engine`` (synthetic feed at ``--rate`` orders/s) and two
  ``quotegate gateway`` nodes, ``--clients`` WebSocket clients on each, subscribed to
  ``book.AAPL``, ``trades.AAPL`` and ``ticker.AAPL`` for ``--seconds``; then ``quotegate run``
  with the same feed and the same clients on its one node. Publish-to-receive latency is the
  client's wall clock at arrival minus the envelope's ``ts`` (the engine's wall clock when the
  command ran; one machine, one clock): p50 and p99 for both, side by side in one run;
* **commands**: ``--commands`` order commands (crossing buys and sells of two accounts, so half
  of them trade) sent through the command channel as a gateway sends them,
  ``--in-flight`` at a time; commands/s from the first send to the last answer;
* **failover**: two ``--failover`` engines (lease TTL ``--lease-ttl-ms``); the leader is killed
  (SIGKILL) ``--failovers`` times (a fresh standby started each time); reported: the engine's own
  takeover time (lease taken to leading) and the time from the kill to the next book update at
  a client.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import os
import platform
import re
import signal
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import orjson
from websockets.asyncio.client import connect

from loadtest.args import EXIT_BAD_ARGUMENTS, ArgumentCheck
from loadtest.cluster import Cluster, Node

CHANNELS = ["book.AAPL", "trades.AAPL", "ticker.AAPL"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    a = parser.add_argument
    a("--kafka", default=None, metavar="HOST:PORT", help="the broker; none: start a Tansu broker")
    a("--redis", default=None, metavar="URL", help="the Redis; none: start one")
    a("--rate", type=float, default=200.0, help="synthetic orders/s (latency, failover)")
    a("--seconds", type=float, default=10.0, help="latency measured per mode")
    a("--clients", type=int, default=10, help="WebSocket clients per gateway node")
    a("--commands", type=int, default=20_000, help="commands in the commands phase")
    a("--in-flight", type=int, default=500, help="commands awaiting their answer at once")
    a("--failovers", type=int, default=3, help="leader kills in the failover phase (0: skip)")
    a("--lease-ttl-ms", type=int, default=1000, help="the engines' lease TTL (failover phase)")
    a(
        "--fsync",
        choices=("every", "interval", "never"),
        default="interval",
        help="engines' journal",
    )
    a("--phases", default="latency,commands,failover", help="which phases, comma-separated")


def run(args: argparse.Namespace) -> int:
    check = ArgumentCheck("bench distributed", args)
    check.at_least(1, "clients", "commands", "in_flight")
    check.at_least(0.1, "rate", "seconds")
    check.at_least(0, "failovers")
    phases = list(check.names("phases", ("latency", "commands", "failover")))
    if check.failed():
        return EXIT_BAD_ARGUMENTS
    with contextlib.ExitStack() as stack:
        kafka = args.kafka or _start_broker(stack)
        redis = args.redis or _start_redis(stack)
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="qg-bench-")))
        print(f"bench distributed: {platform.python_version()} on {os.cpu_count()} cores; "
              f"kafka {kafka} redis {redis}")  # fmt: skip
        if "latency" in phases or "commands" in phases:
            asyncio.run(_main_phases(args, kafka, redis, folder, phases))
        if "failover" in phases and args.failovers:
            asyncio.run(_failover_phase(args, kafka, redis, folder))
    return 0


def _start_broker(stack: contextlib.ExitStack) -> str:
    from loadtest.kafka_broker import KafkaBroker

    broker = KafkaBroker()
    stack.callback(broker.stop)
    return broker.start()


def _start_redis(stack: contextlib.ExitStack) -> str:
    from loadtest.redis_server import RedisServer

    server = RedisServer()
    stack.callback(server.stop)
    return server.start()


def _cluster(kafka: str, redis: str, folder: Path, name: str) -> Cluster:
    return Cluster(
        kafka,
        redis,
        folder / name,
        f"bench{uuid.uuid4().hex[:8]}",
        accounts_text=_accounts(),
    )


def _accounts() -> str:
    from loadtest.cluster import accounts_json

    return accounts_json(usd="1000000000", shares=10_000_000)


# -- latency ------------------------------------------------------------------------------


class _Latency:
    """WebSocket clients of one node, recording (arrival - envelope ts) in microseconds."""

    def __init__(self) -> None:
        self.samples: list[int] = []
        self.measuring = False
        self.last_book = 0

    async def client(self, base: str, ready: asyncio.Event, stop: asyncio.Event) -> None:
        url = base.replace("http://", "ws://") + "/v1/ws"
        async with connect(url, max_size=None) as ws:
            await ws.send(orjson.dumps({"op": "subscribe", "ch": CHANNELS, "id": 1}).decode())
            ready.set()
            while not stop.is_set():
                try:
                    frame = await asyncio.wait_for(ws.recv(), 0.5)
                except TimeoutError:
                    continue
                now = time.time_ns() // 1000
                data = frame.encode() if isinstance(frame, str) else frame
                for line in data.split(b"\n"):
                    if b'"type":"update"' not in line:
                        continue
                    msg = orjson.loads(line)
                    if msg["ch"] == "book.AAPL":
                        self.last_book = msg["seq"]
                    if self.measuring:
                        self.samples.append(now - msg["ts"])


async def _measure(bases: list[str], clients: int, seconds: float) -> _Latency:
    lat = _Latency()
    stop = asyncio.Event()
    readies = [asyncio.Event() for _ in range(len(bases) * clients)]
    tasks = [
        asyncio.create_task(lat.client(base, readies[i * clients + j], stop))
        for i, base in enumerate(bases)
        for j in range(clients)
    ]
    await asyncio.wait_for(asyncio.gather(*(r.wait() for r in readies)), 30)
    await asyncio.sleep(1.0)  # past the snapshots
    lat.measuring = True
    await asyncio.sleep(seconds)
    lat.measuring = False
    stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    return lat


def _pct(samples: list[int], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] / 1000 if ordered else 0.0


def _report_latency(name: str, lat: _Latency) -> None:
    s = lat.samples
    print(f"  {name:<28} {len(s):>8} msgs  p50 {_pct(s, 0.5):7.2f} ms  "
          f"p99 {_pct(s, 0.99):7.2f} ms  max {_pct(s, 1.0):7.2f} ms")  # fmt: skip


async def _main_phases(
    args: argparse.Namespace, kafka: str, redis: str, folder: Path, phases: list[str]
) -> None:
    cluster = _cluster(kafka, redis, folder, "dist")
    try:
        cluster.engine("--rate", str(args.rate), "--fsync", args.fsync)
        g1 = cluster.gateway(name="g1")
        g2 = cluster.gateway(name="g2")
        if "latency" in phases:
            print(f"latency: feed {args.rate:g} orders/s, {args.clients} clients per node, "
                  f"{args.seconds:g} s each")  # fmt: skip
            dist = await _measure([g1.base, g2.base], args.clients, args.seconds)
            _report_latency("distributed (2 gateways)", dist)
            embedded = await _embedded_latency(args, folder)
            _report_latency("quotegate run (1 process)", embedded)
        if "commands" in phases:
            await _commands(args, cluster)
    finally:
        cluster.close()


def _start_run(args: argparse.Namespace, folder: Path, port: int) -> Any:
    """``quotegate run`` with the same feed, as a subprocess."""
    import subprocess
    import sys

    from loadtest.cluster import KEY, ROOT

    env = {k: v for k, v in os.environ.items() if not k.startswith("QUOTEGATE_")}
    with open(folder / "run.log", "wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "gateway.roots.cli", "run", "--port", str(port),
             "--symbols", "AAPL,MSFT", "--rate", str(args.rate), "--candles-db", ":memory:",
             "--demo-key", KEY, "--log-level", "warning"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip


async def _embedded_latency(args: argparse.Namespace, folder: Path) -> _Latency:
    from loadtest.redis_server import free_port

    port = free_port()
    proc = _start_run(args, folder, port)
    try:
        base = f"http://127.0.0.1:{port}"
        await _wait_http(base, proc)
        return await _measure([base], args.clients * 2, args.seconds)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.to_thread(proc.wait, 20)
        except Exception:
            proc.kill()
            proc.wait()


async def _wait_http(base: str, proc: Any) -> None:
    import httpx

    async with httpx.AsyncClient(timeout=1) as http:
        for _ in range(600):
            if proc.poll() is not None:
                raise RuntimeError("quotegate run exited at start")
            with contextlib.suppress(httpx.TransportError):
                if (await http.get(f"{base}/healthz")).status_code == 200:
                    return
            await asyncio.sleep(0.05)
    raise RuntimeError("quotegate run did not come up")


# -- commands -----------------------------------------------------------------------------


async def _commands(args: argparse.Namespace, cluster: Cluster) -> None:
    from gateway.seams.commands_kafka import CommandClient
    from gateway.seams.kafka_config import KafkaConfig

    topics = cluster.topics
    config = KafkaConfig(
        bootstrap=cluster.kafka,
        commands_topic=f"{topics}.commands",
        marketdata_topic=f"{topics}.marketdata",
        events_topic=f"{topics}.events",
        client_id="quotegate-bench",
    )
    client = CommandClient(config, node="bench-" + uuid.uuid4().hex[:6], timeout_s=60)
    await client.start()
    ids = itertools.count()

    async def one() -> None:
        n = next(ids)
        account, side = ("alice", "buy") if n % 2 == 0 else ("bob", "sell")
        body = {"symbol": "AAPL", "side": side, "type": "limit", "price": "50.00", "qty": 1,
                "clientOrderId": f"b{n}"}  # fmt: skip
        await client.call("submit", "AAPL", {"account": account, "body": body})

    try:
        for _ in range(min(200, args.commands)):  # warm-up, untimed
            await one()
        window = asyncio.Semaphore(args.in_flight)

        async def windowed() -> None:
            async with window:
                await one()

        started = time.perf_counter()
        await asyncio.gather(*(windowed() for _ in range(args.commands)))
        elapsed = time.perf_counter() - started
    finally:
        await client.close()
    print(f"commands: {args.commands} through Kafka in {elapsed:.2f} s = "
          f"{args.commands / elapsed:,.0f} commands/s ({args.in_flight} in flight, each "
          f"answered)")  # fmt: skip


# -- failover -----------------------------------------------------------------------------


def _leader_time(node: Node, timeout_s: float = 60.0) -> float:
    deadline = time.monotonic() + timeout_s
    while (found := re.search(r"took over in ([0-9.]+) s", node.text())) is None:
        if node.proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{node.name} did not become leader:\n{node.text()[-2000:]}")
        time.sleep(0.01)
    return float(found.group(1))


async def _failover_phase(args: argparse.Namespace, kafka: str, redis: str, folder: Path) -> None:
    cluster = _cluster(kafka, redis, folder, "failover")
    flags = ("--failover", "--lease-ttl-ms", str(args.lease_ttl_ms), "--rate", str(args.rate),
             "--fsync", args.fsync)  # fmt: skip
    own: list[float] = []
    visible: list[float] = []
    try:
        leader = cluster.engine(*flags, name="e0")
        _leader_time(leader)
        g1 = cluster.gateway(name="g1")
        lat = _Latency()
        stop = asyncio.Event()
        ready = asyncio.Event()
        task = asyncio.create_task(lat.client(g1.base, ready, stop))
        await asyncio.wait_for(ready.wait(), 30)
        for i in range(1, args.failovers + 1):
            standby = cluster.engine(*flags, name=f"e{i}")
            await asyncio.sleep(1.0)
            before = lat.last_book
            killed = time.monotonic()
            cluster.stop(leader, sig=signal.SIGKILL)
            own.append(_leader_time(standby))
            while lat.last_book <= before + 1:
                if time.monotonic() - killed > 30:
                    raise RuntimeError("no book update after the failover")
                await asyncio.sleep(0.005)
            visible.append(time.monotonic() - killed)
            leader = standby
        stop.set()
        await task
    finally:
        cluster.close()
    print(f"failover: lease TTL {args.lease_ttl_ms} ms, {len(own)} kills of the leader")
    print(f"  takeover (lease taken -> leading)   median {statistics.median(own):.3f} s  "
          f"max {max(own):.3f} s")  # fmt: skip
    print(f"  kill -> next book update at client   median {statistics.median(visible):.3f} s  "
          f"max {max(visible):.3f} s")  # fmt: skip
