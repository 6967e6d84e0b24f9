"""``quotegate bench store``: the Redis snapshot store under a realistic envelope stream.

A seeded command stream (:mod:`loadtest.cmdgen`, 100 symbols) runs through the engine first,
untimed. Its events then go through the real publisher (``gateway.marketdata.publisher``)
whose sink is :meth:`RedisSnapshotStore.record` and whose ``snapshot`` is the store's provider,
exactly as in the gateway. Two phases:

* **paced** (``--rate``, default 10,000 engine events/s for ``--seconds``): events are fed at
  that rate in wall-clock time while the store's own flush task writes every
  ``--flush-interval-ms``; reported: Redis commands per engine event and per second (``INFO
  commandstats`` delta), bytes sent to Redis, flushes;
* **max**: the rest of the stream as fast as possible (the loop yields every few thousand
  events so the flush task keeps up): sustained engine events/s with the store, next to the
  same stream into a counting sink (the publisher alone);

then a read phase: ``snapshot`` and ``resume`` calls, ``--readers`` in flight, reads/s.
Redis is ``--redis URL`` or a ``redis-server`` started on a free port (loadtest/redis_server.py).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import platform
import random
import time
from dataclasses import dataclass, field
from typing import Any

import orjson

from loadtest.args import EXIT_BAD_ARGUMENTS, ArgumentCheck
from loadtest.progress import Progress, silent


@dataclass(frozen=True, kw_only=True)
class StoreBenchConfig:
    redis_url: str | None = None
    symbols: int = 100
    accounts: int = 100
    seed: int = 1
    rate_events_s: int = 10_000
    paced_s: float = 10.0
    max_events: int = 300_000
    flush_interval_ms: int = 50
    flush_duty_max_pct: int = 20
    history_max: int = 1000
    conflate_ms: dict[str, int] = field(default_factory=dict)
    reads: int = 20_000
    readers: int = 32


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--redis",
        default=None,
        metavar="URL",
        help="the Redis to write to (default None: start one on a free port)",
    )
    parser.add_argument("--symbols", type=int, default=100, help="symbols the stream trades")
    parser.add_argument("--accounts", type=int, default=100, help="accounts the stream trades for")
    parser.add_argument("--seed", type=int, default=1, help="seed of the generated stream")
    parser.add_argument("--rate", type=int, default=10_000, help="paced engine events/s")
    parser.add_argument("--seconds", type=float, default=10.0, help="paced phase length")
    parser.add_argument("--max-events", type=int, default=300_000, help="max-rate phase events")
    parser.add_argument(
        "--flush-interval-ms", type=int, default=50, help="the store's write batching interval"
    )
    parser.add_argument(
        "--flush-duty-max-pct",
        type=int,
        default=20,
        help="the share of time the store's flush may take on the event loop",
    )
    parser.add_argument("--history-max", type=int, default=1000, help="updates kept per channel")
    parser.add_argument(
        "--conflate-ms",
        default="",
        help="publisher intervals per kind, e.g. book=100,ticker=100 ('' publishes every change)",
    )
    parser.add_argument("--reads", type=int, default=20_000, help="read phase calls")
    parser.add_argument("--readers", type=int, default=32, help="reads in flight")
    parser.add_argument("--json", default=None, metavar="FILE", help="also write results here")


def run(args: argparse.Namespace) -> int:
    from gateway.marketdata.publisher import parse_conflate_ms

    check = ArgumentCheck("bench store", args)
    conflate: dict[str, int] = check.parsed("conflate_ms", parse_conflate_ms, {})
    check.at_least(1, "symbols", "accounts", "rate", "flush_interval_ms", "history_max")
    check.at_least(0, "seconds", "max_events", "reads", "readers")
    check.within(1, 100, "flush_duty_max_pct")
    if check.failed():
        return EXIT_BAD_ARGUMENTS
    config = StoreBenchConfig(
        redis_url=args.redis,
        symbols=args.symbols,
        accounts=args.accounts,
        seed=args.seed,
        rate_events_s=args.rate,
        paced_s=args.seconds,
        max_events=args.max_events,
        flush_interval_ms=args.flush_interval_ms,
        flush_duty_max_pct=args.flush_duty_max_pct,
        history_max=args.history_max,
        conflate_ms=conflate,
        reads=args.reads,
        readers=max(1, args.readers),
    )
    from loadtest.redis_server import RedisServer

    server = None
    url = config.redis_url
    if url is None:
        server = RedisServer()
        url = server.start()
    try:
        with Progress(planned_work(config), desc="bench store", unit="event") as progress:
            results = asyncio.run(run_bench(config, url, log=progress.write, progress=progress))
    finally:
        if server is not None:
            server.stop()
    if args.json:
        with open(args.json, "wb") as fh:
            fh.write(orjson.dumps(results, option=orjson.OPT_INDENT_2) + b"\n")
    return 0


# --- the stream ---------------------------------------------------------------------------------


def generate_batches(config: StoreBenchConfig, events_needed: int) -> tuple[list[list[Any]], Any]:
    """Engine events per command, stamped so that event time runs at ``rate_events_s``."""
    from engine import Engine
    from loadtest.cmdgen import CmdGenConfig, generate

    probe = Engine(clock=lambda: 0)
    probe_cmds = 5_000
    probe_events = sum(
        len(probe.submit(cmd))
        for cmd in generate(CmdGenConfig(seed=config.seed, symbols=config.symbols), probe_cmds)
    )
    per_cmd = max(probe_events / probe_cmds, 0.1)
    step_us = max(1, round(1e6 / (config.rate_events_s / per_cmd)))
    gen = CmdGenConfig(
        seed=config.seed, symbols=config.symbols, accounts=config.accounts, ts_step_us=step_us
    )
    engine = Engine(clock=lambda: 0)
    batches: list[list[Any]] = []
    total = 0
    for cmd in generate(gen, int(events_needed / per_cmd * 1.2) + 10_000):
        events = engine.submit(cmd)
        if events:
            batches.append(events)
            total += len(events)
            if total >= events_needed:
                break
    return batches, engine


def _publisher(config: StoreBenchConfig, engine: Any, sink: Any) -> Any:
    from gateway.marketdata.publisher import Publisher, PublisherConfig

    cfg = PublisherConfig(
        epoch="bench",
        history_max=config.history_max,
        conflate_ms={"book": 0, "ticker": 0, "candles": 0, "trades": 0, **config.conflate_ms},
    )
    pub = Publisher(cfg, sink=sink, clock=lambda: 0)
    for inst in engine.instruments.values():
        pub.add_instrument(inst)
    return pub


class _RedisCounters:
    """``INFO commandstats`` / ``INFO stats`` deltas (the INFO calls themselves excluded)."""

    def __init__(self, client: Any) -> None:
        self._client = client

    async def read(self) -> tuple[int, int]:
        stats = await self._client.info("commandstats")
        calls = sum(int(v["calls"]) for k, v in stats.items() if k != "cmdstat_info")
        net = await self._client.info("stats")
        return calls, int(net["total_net_input_bytes"])


# --- phases -------------------------------------------------------------------------------------


def planned_work(config: StoreBenchConfig) -> int:
    """The engine events the bench generates and then publishes (paced, then at the maximum
    rate): the progress bar's total. The Redis memory and read phases follow, shown by name."""
    return 2 * (int(config.rate_events_s * config.paced_s) + config.max_events)


async def run_bench(
    config: StoreBenchConfig, url: str, log: Any = print, progress: Progress | None = None
) -> dict[str, Any]:
    import redis.asyncio as aioredis

    from gateway.seams.store_config import RedisStoreConfig
    from gateway.seams.store_redis import RedisSnapshotStore

    progress = progress or silent()
    paced_events = int(config.rate_events_s * config.paced_s)
    log(
        f"bench store: {config.symbols} symbols, {config.accounts} accounts, flush every "
        f"{config.flush_interval_ms} ms (duty <= {config.flush_duty_max_pct}%), "
        f"history {config.history_max}, conflation "
        f"{config.conflate_ms or 'off'}, redis {url} (python {platform.python_version()})"
    )
    t0 = time.perf_counter()
    progress.note("generating the engine's events")
    batches, engine = generate_batches(config, paced_events + config.max_events)
    progress.advance(paced_events + config.max_events)
    total_events = sum(len(b) for b in batches)
    log(f"  stream: {total_events:,} engine events ({time.perf_counter() - t0:.1f} s to generate)")
    # The pre-generated stream is the bench's own baggage, not the app's: keep it out of the
    # garbage collector's full passes (the store's buffers trigger them more often).
    gc.collect()
    gc.freeze()

    admin = aioredis.Redis.from_url(url)
    prefix = f"qgbench:{os.getpid()}:{int(time.time())}:"  # never touches other keys
    counters = _RedisCounters(admin)
    publisher: list[Any] = []  # the store and the publisher refer to each other
    provider_s = [0.0]  # CPU spent in the publisher's snapshot(channel), called by the store
    store = RedisSnapshotStore(
        RedisStoreConfig(
            url=url,
            key_prefix=prefix,
            history_max=config.history_max,
            flush_interval_ms=config.flush_interval_ms,
            flush_duty_max_pct=config.flush_duty_max_pct,
        ),
        snapshot_provider=lambda channel: _timed_snapshot(publisher[0], channel, provider_s),
    )
    pub = _publisher(config, engine, store.record)
    publisher.append(pub)
    await store.start()
    results: dict[str, Any] = {"events": total_events}
    try:
        # paced
        split = 0
        count = 0
        while split < len(batches) and count < paced_events:
            count += len(batches[split])
            split += 1
        if split:
            progress.note(f"paced at {config.rate_events_s:,} events/s")
            results["paced"] = await _paced(config, pub, store, batches[:split], counters)
            p = results["paced"]
            log(
                f"  paced {p['events_per_s']:,} events/s for {p['seconds']} s: "
                f"{p['redis_commands_per_event']:.4f} Redis commands per engine event "
                f"({p['redis_commands_per_s']:,} commands/s, {p['redis_mb_per_s']} MB/s in), "
                f"{p['envelopes_per_event']:.2f} envelopes per event, {p['flushes']} flushes, "
                f"process CPU {p['cpu_share']:.0%} ({p['cpu_us_per_event']} us per event), "
                f"flushing {p['flush_wall_share']:.1%} of the time "
                f"(building batches {p['flush_build_share']:.1%})"
            )
        progress.advance(paced_events)
        rest = batches[split:]
        if rest:
            progress.note("at the maximum rate")
            provider0 = provider_s[0]
            results["max"] = await _max_rate(config, pub, store, rest, counters)
            m = results["max"]
            m["provider_cpu_us_per_event"] = round(
                (provider_s[0] - provider0) / m["events"] * 1e6, 1
            )
            base = _baseline(config, engine, batches[:split], rest)
            m["publisher_only_events_per_s"] = base["events_per_s"]
            m["publisher_only_cpu_us_per_event"] = base["cpu_us_per_event"]
            m["store_cpu_us_per_event"] = round(m["cpu_us_per_event"] - base["cpu_us_per_event"], 1)
            log(
                f"  max rate: {m['events_per_s']:,} events/s sustained with the store "
                f"(publisher alone: {base['events_per_s']:,} events/s); CPU per event "
                f"{m['cpu_us_per_event']} us with the store, {base['cpu_us_per_event']} us "
                f"without: the store costs {m['store_cpu_us_per_event']} us per engine event "
                f"(of which {m['provider_cpu_us_per_event']} us in the publisher's snapshot() "
                f"for the flushes); "
                f"{m['redis_commands_per_event']:.4f} commands per event, "
                f"{m['redis_commands_per_s']:,} commands/s, {m['redis_mb_per_s']} MB/s in"
            )
        progress.advance(config.max_events)
        progress.note("Redis memory")
        results["redis_memory"] = await _memory(admin, prefix)
        mem = results["redis_memory"]
        log(
            f"  redis memory: {mem['used_mb']} MB used for {mem['keys']:,} keys "
            f"({mem['channels']:,} channels, history {config.history_max})"
        )
        if config.reads:
            progress.note("snapshot and resume reads")
            results["reads"] = await _reads(config, url, prefix, pub)
            r = results["reads"]
            log(
                f"  reads: {r['snapshot_per_s']:,} snapshot/s, {r['resume_per_s']:,} resume/s "
                f"({config.readers} in flight, one node)"
            )
    finally:
        await store.close()
        await _delete_prefix(admin, prefix)
        gc.unfreeze()
        await admin.aclose()
    return results


async def _paced(
    config: StoreBenchConfig, pub: Any, store: Any, batches: list[list[Any]], counters: Any
) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    run = await _Run.start(store, counters)
    flushes0 = store.flushes
    busy0 = (store.flush_seconds, store.flush_cpu_seconds)
    rate = config.rate_events_s
    tick_s = 0.005
    chunk_max = max(1, int(rate * tick_s * 2))  # never hog the loop to catch up
    fed = 0
    i = 0
    start = run.start_s
    while i < len(batches):
        due = rate * (loop.time() - start)
        if fed >= due:
            await asyncio.sleep(tick_s)
            continue
        target = min(due, fed + chunk_max)
        while fed < target and i < len(batches):
            pub.on_events(batches[i])
            fed += len(batches[i])
            i += 1
        pub.flush_due(batches[i - 1][0].ts)
        await asyncio.sleep(0)
    figures = await run.finish(pub, fed)
    elapsed = run.elapsed_s
    return {
        **figures,
        "cpu_share": round(run.cpu_s / elapsed, 3),
        "envelopes_per_event": _envelopes_per_event(pub, batches),
        "flushes": store.flushes - flushes0,
        "flush_wall_share": round((store.flush_seconds - busy0[0]) / elapsed, 3),
        "flush_build_share": round((store.flush_cpu_seconds - busy0[1]) / elapsed, 3),
    }


def _envelopes_per_event(pub: Any, batches: list[list[Any]]) -> float:
    seqs = sum(pub.seq(ch) or 0 for ch in pub.channels())
    events = sum(len(b) for b in batches)
    return seqs / max(events, 1)


async def _max_rate(
    config: StoreBenchConfig, pub: Any, store: Any, batches: list[list[Any]], counters: Any
) -> dict[str, Any]:
    gc.collect()
    run = await _Run.start(store, counters)
    fed = 0
    since_yield = 0
    for events in batches:
        pub.flush_due(events[0].ts)
        pub.on_events(events)
        fed += len(events)
        since_yield += len(events)
        if since_yield >= 100:  # like the app: the loop runs between commands
            since_yield = 0
            await asyncio.sleep(0)
    return await run.finish(pub, fed)


class _Run:
    """One timed feed into the store: Redis's counters, the loop and CPU clocks from a
    flushed start to the flushed end."""

    def __init__(self, store: Any, counters: Any, calls: int, nbytes: int) -> None:
        self.store = store
        self.counters = counters
        self.calls0 = calls
        self.bytes0 = nbytes
        self.cpu0 = time.process_time()
        self.start_s = asyncio.get_running_loop().time()
        self.elapsed_s = self.cpu_s = 0.0  # set by finish

    @classmethod
    async def start(cls, store: Any, counters: Any) -> _Run:
        await store.flush()
        calls, nbytes = await counters.read()
        return cls(store, counters, calls, nbytes)

    async def finish(self, pub: Any, fed: int) -> dict[str, Any]:
        """Publish what is pending, flush the store: the figures of ``fed`` events (and
        ``elapsed_s``, ``cpu_s`` unrounded)."""
        pub.flush_all()
        await self.store.flush()
        elapsed = self.elapsed_s = asyncio.get_running_loop().time() - self.start_s
        cpu = self.cpu_s = time.process_time() - self.cpu0
        calls1, bytes1 = await self.counters.read()
        calls = calls1 - self.calls0
        return {
            "events": fed,
            "seconds": round(elapsed, 2),
            "events_per_s": round(fed / elapsed),
            "cpu_us_per_event": round(cpu / fed * 1e6, 1),
            "redis_commands": calls,
            "redis_commands_per_event": calls / fed,
            "redis_commands_per_s": round(calls / elapsed),
            "redis_mb_per_s": round((bytes1 - self.bytes0) / elapsed / 1e6, 2),
        }


def _baseline(
    config: StoreBenchConfig, engine: Any, warm: list[list[Any]], batches: list[list[Any]]
) -> dict[str, Any]:
    """The same events through a publisher into a counting sink (no store). The publisher
    first gets ``warm`` untimed, so its books and orders are in the same state as the timed
    run's (a cold publisher ignores events about orders it never saw and is cheaper)."""
    count = [0]

    def sink(_env: Any) -> None:
        count[0] += 1

    pub = _publisher(config, engine, sink)
    for events in warm:
        pub.flush_due(events[0].ts)
        pub.on_events(events)
    gc.collect()
    cpu0 = time.process_time()
    start = time.perf_counter()
    for events in batches:
        pub.flush_due(events[0].ts)
        pub.on_events(events)
    pub.flush_all()
    elapsed = time.perf_counter() - start
    cpu = time.process_time() - cpu0
    n_events = sum(len(b) for b in batches)
    return {
        "events_per_s": round(n_events / elapsed),
        "cpu_us_per_event": round(cpu / n_events * 1e6, 1),
    }


def _timed_snapshot(pub: Any, channel: str, total_s: list[float]) -> Any:
    started = time.process_time()
    try:
        return pub.snapshot(channel)
    finally:
        total_s[0] += time.process_time() - started


async def _memory(client: Any, prefix: str) -> dict[str, Any]:
    info = await client.info("memory")
    keys = 0
    async for _key in client.scan_iter(match=prefix + "*", count=1000):
        keys += 1
    channels = await client.scard(prefix + "channels")
    return {
        "used_mb": round(int(info["used_memory"]) / 1e6, 1),
        "keys": keys,
        "channels": int(channels),
    }


async def _delete_prefix(client: Any, prefix: str) -> None:
    batch: list[bytes] = []
    async for key in client.scan_iter(match=prefix + "*", count=1000):
        batch.append(key)
        if len(batch) >= 1000:
            await client.unlink(*batch)
            batch.clear()
    if batch:
        await client.unlink(*batch)


async def _reads(config: StoreBenchConfig, url: str, prefix: str, pub: Any) -> dict[str, Any]:
    from gateway.seams.store_config import RedisStoreConfig
    from gateway.seams.store_redis import RedisSnapshotStore

    reader = RedisSnapshotStore(RedisStoreConfig(url=url, key_prefix=prefix))
    await reader.start()
    rng = random.Random(config.seed)
    channels = [ch for ch in pub.channels() if (pub.seq(ch) or 0) > 0]
    try:
        half = max(1, config.reads // 2)

        async def snapshots(n: int) -> None:
            for _ in range(n):
                await reader.snapshot(rng.choice(channels))

        async def resumes(n: int) -> None:
            for _ in range(n):
                ch = rng.choice(channels)
                seq = pub.seq(ch) or 0
                await reader.resume(ch, "bench", max(0, seq - rng.randint(0, 50)))

        per = max(1, half // config.readers)
        loop = asyncio.get_running_loop()
        start = loop.time()
        await asyncio.gather(*(snapshots(per) for _ in range(config.readers)))
        snap_s = loop.time() - start
        start = loop.time()
        await asyncio.gather(*(resumes(per) for _ in range(config.readers)))
        resume_s = loop.time() - start
        n = per * config.readers
        return {
            "snapshot_per_s": round(n / snap_s),
            "resume_per_s": round(n / resume_s),
            "calls": 2 * n,
        }
    finally:
        await reader.close()
