"""``quotegate bench fanout``: push fan-out, quotegate against the plain libraries, side by side.

Each run starts one server process (:mod:`loadtest.fanout_servers`, pinned to
``--server-cpu``) fed by its in-process publisher (:mod:`loadtest.fanout_publisher`), and one
client process per ``--client-cpus`` core (:mod:`loadtest.fanout_clients`, picows for
WebSocket, an httptools reader for SSE and polling) sharing the connections. Everything listens
and connects on 127.0.0.1. The message is a ~190-byte quotegate book update stamped with its
publish time (:mod:`loadtest.fanout_message`).

Servers (``--servers``): ``quotegate-ws``, ``quotegate-sse``, ``quotegate-poll`` (one
quotegate app, ``create_app`` with its memory bus and store, served as ``quotegate run``
serves it), ``websockets`` (its own server and ``broadcast()``), ``starlette-ws``,
``sse-starlette``, ``socketio``, and ``raw-ws`` (not run unless named): a hand-written
asyncio protocol writing each message's frame, built once, to every transport, the ceiling of
this machine and client.

Scenarios (``--scenarios``), run in this order, every server once per scenario before the
next scenario (so neighbours in time are compared), ``--repeat`` times over:

* ``steady``: ``--clients`` on one channel at ``--rate`` messages/s;
* ``steady-many``: ``--many-clients`` on one channel at ``--rate``;
* ``max``: ``--clients`` on one channel, the publisher publishing one message per turn of
  the server's event loop (as fast as the server lets it);
* ``memory``: server RSS per added connection with ``--many-clients``: connected (WebSocket
  kinds: not subscribed; SSE and polling cannot be connected without a subscription) and
  subscribed after a second of traffic at 10 messages/s;
* ``channels``: ``--many-clients``, each on the book and trades channels of 1-10 (seeded) of
  ``--symbols`` symbols, ``--channels-rate`` updates/s over all those channels; lost counts
  every per-channel seq gap.

Per run: deliveries/s (messages counted by the clients in the ``--duration-s`` window after
``--warmup-s``), expected deliveries/s (published in the window times the subscribers of each
message's channel), publish-to-receive p50/p99/p99.9, server CPU % and CPU microseconds per
delivered message (``/proc/PID/stat`` utime+stime), the busiest client process's CPU % (a
``!`` marks > 90 %: the client, not the server, may be the limit), server RSS, messages lost
(seq gaps), connections closed, how far behind schedule the publisher fell. ``--json FILE``
writes every run and the medians.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import multiprocessing
import random
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from multiprocessing.connection import Connection
from typing import Any

import orjson

from loadtest.args import EXIT_BAD_ARGUMENTS, ArgumentCheck
from loadtest.fanout_clients import WS_KINDS, ClientSpec, run_clients
from loadtest.fanout_message import book_channels, latency_summary, merge_buckets
from loadtest.fanout_proc import ask, cpu_seconds, raise_nofile, receive, rss_bytes
from loadtest.fanout_servers import QUOTEGATE, ServerSpec, serve

SERVERS = (
    "quotegate-ws",
    "quotegate-sse",
    "quotegate-poll",
    "websockets",
    "starlette-ws",
    "sse-starlette",
    "socketio",
    "raw-ws",
)
SCENARIOS = ("steady", "steady-many", "max", "memory", "channels")
DEFAULT_SERVERS = ",".join(s for s in SERVERS if s != "raw-ws")
DEFAULT_CLIENT_CPUS: tuple[int, ...] = (1,)
SATURATED_PCT = 90.0
MEMORY_RATE = 10.0
PROCESS_TIMEOUT_S = 60.0


@dataclass(frozen=True, slots=True, kw_only=True)
class FanoutBenchConfig:
    servers: tuple[str, ...] = tuple(DEFAULT_SERVERS.split(","))
    scenarios: tuple[str, ...] = SCENARIOS
    clients: int = 1000
    many_clients: int = 5000
    rate_msgs_per_s: float = 100.0
    duration_s: float = 3.0
    warmup_s: float = 1.0
    symbols: int = 100
    channels_rate_msgs_per_s: float = 200.0
    server_cpu: int = 0
    client_cpus: tuple[int, ...] = DEFAULT_CLIENT_CPUS
    repeat: int = 1
    seed: int = 1
    poll_wait_s: float = 5.0
    gc_threshold: int = 50_000
    nice: int = 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    a = parser.add_argument
    a("--servers", default=DEFAULT_SERVERS, help=f"comma-separated, among {','.join(SERVERS)}")
    a(
        "--scenarios",
        default=",".join(SCENARIOS),
        help=f"comma-separated, among {','.join(SCENARIOS)}",
    )
    a("--clients", type=int, default=1000, help="connections of steady and max")
    a("--many-clients", type=int, default=5000, help="connections of steady-many, memory, channels")
    a("--rate", type=float, default=100.0, help="messages/s of steady and steady-many")
    a("--duration-s", type=float, default=3.0, help="measured window of each run")
    a("--warmup-s", type=float, default=1.0, help="traffic before the window")
    a("--symbols", type=int, default=100, help="symbols of the channels scenario")
    a("--channels-rate", type=float, default=200.0, help="updates/s of the channels scenario")
    a("--server-cpu", type=int, default=0, help="core the server process is pinned to")
    a("--client-cpus", default="1", help="cores of the client processes, one process each")
    a("--repeat", type=int, default=1, help="runs of every server and scenario (medians shown)")
    a("--seed", type=int, default=1, help="channel choice of the channels scenario")
    a("--poll-wait-s", type=float, default=5.0, help="long-poll wait of quotegate-poll")
    a(
        "--gc-threshold",
        type=int,
        default=50_000,
        help="every server's GC generation-0 threshold, as quotegate run sets it; 0 leaves it",
    )
    a(
        "--nice",
        type=int,
        default=0,
        help="niceness of the server and client processes; negative (as root) gives them "
        "their cores on a shared machine",
    )
    a("--json", metavar="FILE", help="write every run and the medians as JSON")


def _cpus(text: str) -> tuple[int, ...]:
    try:
        cpus = tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise ValueError(f"not a comma-separated list of core numbers: {text!r}") from None
    if not cpus:
        raise ValueError("name at least one core")
    return cpus


def run(args: argparse.Namespace) -> int:
    check = ArgumentCheck("bench fanout", args)
    servers = check.names("servers", SERVERS)
    scenarios = check.names("scenarios", SCENARIOS)
    client_cpus = check.parsed("client_cpus", _cpus, DEFAULT_CLIENT_CPUS)
    check.at_least(1, "clients", "many_clients", "repeat", "symbols")
    check.at_least(0.001, "rate", "channels_rate", "duration_s")
    check.at_least(0, "warmup_s", "server_cpu", "gc_threshold", "poll_wait_s")
    check.within(-20, 19, "nice")
    if check.failed():
        return EXIT_BAD_ARGUMENTS
    config = FanoutBenchConfig(
        servers=servers,
        scenarios=scenarios,
        clients=args.clients,
        many_clients=args.many_clients,
        rate_msgs_per_s=args.rate,
        duration_s=args.duration_s,
        warmup_s=args.warmup_s,
        symbols=args.symbols,
        channels_rate_msgs_per_s=args.channels_rate,
        server_cpu=args.server_cpu,
        client_cpus=client_cpus,
        repeat=args.repeat,
        seed=args.seed,
        poll_wait_s=args.poll_wait_s,
        gc_threshold=args.gc_threshold,
        nice=args.nice,
    )
    result = run_bench(config, log=lambda text: print(text, flush=True))
    print(format_table(result["summary"]), flush=True)
    if args.json:
        with open(args.json, "wb") as f:
            f.write(orjson.dumps(result, option=orjson.OPT_INDENT_2))
    return 0


# -- one run ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Plan:
    """One server and scenario: who subscribes to what, at which rate."""

    server: str
    scenario: str
    channels: tuple[str, ...]
    channel_sets: tuple[tuple[str, ...], ...]
    rate_msgs_per_s: float


def plan(config: FanoutBenchConfig, server: str, scenario: str) -> Plan:
    one = tuple(book_channels(1))
    if scenario == "channels":
        rng = random.Random(config.seed)
        channels = tuple(book_channels(max(2, config.symbols)))
        symbols = len(channels) // 2
        sets = []
        for _ in range(config.many_clients):
            chosen = sorted(rng.sample(range(symbols), rng.randint(1, min(10, symbols))))
            sets.append(tuple(ch for i in chosen for ch in channels[2 * i : 2 * i + 2]))
        return Plan(
            server=server,
            scenario=scenario,
            channels=channels,
            channel_sets=tuple(sets),
            rate_msgs_per_s=config.channels_rate_msgs_per_s,
        )
    clients = config.clients if scenario in ("steady", "max") else config.many_clients
    rate = {"max": math.inf, "memory": MEMORY_RATE}.get(scenario, config.rate_msgs_per_s)
    return Plan(
        server=server,
        scenario=scenario,
        channels=one,
        channel_sets=(one,) * clients,
        rate_msgs_per_s=rate,
    )


def expected_per_message(p: Plan) -> float:
    """Deliveries one published message makes on average (round-robin over the channels)."""
    return sum(len(s) for s in p.channel_sets) / len(p.channels)


class Processes:
    """The server process and the client processes of one run; ``close`` ends them all."""

    def __init__(self) -> None:
        self.ctx = multiprocessing.get_context("spawn")
        self.server: Any = None
        self.server_pipe: Connection | None = None
        self.clients: list[tuple[Any, Connection]] = []

    def start_server(self, spec: ServerSpec) -> int:
        self.server_pipe, child = self.ctx.Pipe()
        self.server = self.ctx.Process(target=serve, args=(spec, child), daemon=True)
        self.server.start()
        child.close()
        port: int = receive(self.server_pipe, "ready", PROCESS_TIMEOUT_S)
        return port

    def start_clients(self, specs: list[ClientSpec]) -> list[dict[str, int]]:
        for spec in specs:
            pipe, child = self.ctx.Pipe()
            proc = self.ctx.Process(target=run_clients, args=(spec, child), daemon=True)
            proc.start()
            child.close()
            self.clients.append((proc, pipe))
        return [receive(pipe, "connected", PROCESS_TIMEOUT_S * 2) for _, pipe in self.clients]

    def server_ask(self, command: tuple[Any, ...], expect: str) -> Any:
        assert self.server_pipe is not None
        return ask(self.server_pipe, command, expect, PROCESS_TIMEOUT_S)

    def set_rate(self, rate: float) -> None:
        assert self.server_pipe is not None
        self.server_pipe.send(("rate", rate))

    def clients_all(self, command: tuple[Any, ...], expect: str | None) -> list[Any]:
        for _, pipe in self.clients:
            pipe.send(command)
        if expect is None:
            return []
        return [receive(pipe, expect, PROCESS_TIMEOUT_S) for _, pipe in self.clients]

    def cpu(self) -> tuple[float, list[float]]:
        return cpu_seconds(self.server.pid), [cpu_seconds(p.pid) for p, _ in self.clients]

    def close(self) -> None:
        for proc, pipe in self.clients:
            if proc.is_alive():
                with contextlib.suppress(OSError):
                    pipe.send(("close",))
        if self.server is not None and self.server.is_alive() and self.server_pipe is not None:
            with contextlib.suppress(OSError):
                self.server_pipe.send(("stop",))
        for proc in [p for p, _ in self.clients] + [self.server]:
            if proc is None:
                continue
            proc.join(10)
            if proc.is_alive():
                proc.kill()
                proc.join(5)


def client_specs(config: FanoutBenchConfig, p: Plan, port: int) -> list[ClientSpec]:
    kind = p.server
    n = len(config.client_cpus)
    subscribe_now = p.scenario != "memory" or kind not in WS_KINDS
    return [
        ClientSpec(
            kind=kind,
            port=port,
            channel_sets=p.channel_sets[i::n],
            subscribe_at_connect=subscribe_now,
            cpus=(cpu,),
            nice=config.nice,
            poll_wait_s=config.poll_wait_s,
        )
        for i, cpu in enumerate(config.client_cpus)
        if p.channel_sets[i::n]
    ]


def server_spec(config: FanoutBenchConfig, p: Plan) -> ServerSpec:
    kind = QUOTEGATE if p.server.startswith("quotegate-") else p.server
    return ServerSpec(
        kind=kind,
        channels=p.channels,
        cpus=(config.server_cpu,),
        nice=config.nice,
        gc_threshold=config.gc_threshold,
        max_connections=max(10_000, len(p.channel_sets) + 100),
    )


def run_one(config: FanoutBenchConfig, p: Plan) -> dict[str, Any]:
    """One server, one scenario; the figures of :func:`measure` or :func:`measure_memory`."""
    procs = Processes()
    out: dict[str, Any] = {
        "server": p.server,
        "scenario": p.scenario,
        "clients": len(p.channel_sets),
        "rate": p.rate_msgs_per_s,
    }
    try:
        port = procs.start_server(server_spec(config, p))
        rss_empty = rss_bytes(procs.server.pid)
        connected = procs.start_clients(client_specs(config, p, port))
        out["connected"] = sum(c["open"] for c in connected)
        out["failed"] = sum(c["failed"] + c["not_ready"] for c in connected)
        if p.scenario == "memory":
            out.update(measure_memory(procs, p, rss_empty))
        else:
            out.update(measure(config, procs, p))
    except (RuntimeError, TimeoutError, OSError) as exc:
        out["error"] = str(exc)
    finally:
        procs.close()
    return out


def measure(config: FanoutBenchConfig, procs: Processes, p: Plan) -> dict[str, Any]:
    procs.set_rate(p.rate_msgs_per_s)
    time.sleep(config.warmup_s)
    cpu0, clients0 = procs.cpu()
    procs.clients_all(("start",), None)
    t0 = time.monotonic()
    time.sleep(config.duration_s)
    procs.clients_all(("stop",), None)
    t1 = time.monotonic()
    cpu1, clients1 = procs.cpu()
    elapsed = t1 - t0
    # the server answers when its loop gets round to it, perhaps late: its publisher's own
    # samples say what it published inside the window
    window = procs.server_ask(("window", t0, t1), "window")
    procs.set_rate(0)
    tallies = [receive(pipe, "tally", PROCESS_TIMEOUT_S) for _, pipe in procs.clients]
    delivered = sum(t["messages"] for t in tallies)
    published_per_s = window["published"] / window["seconds"] if window["seconds"] else 0.0
    server_cpu_s = cpu1 - cpu0
    client_pct = [(b - a) / elapsed * 100 for a, b in zip(clients0, clients1, strict=True)]
    return {
        "seconds": round(elapsed, 3),
        "published_per_s": round(published_per_s, 1),
        "delivered": delivered,
        "delivered_per_s": round(delivered / elapsed),
        "expected_per_s": round(published_per_s * expected_per_message(p)),
        **latency_summary(merge_buckets(tallies)),
        "server_cpu_pct": round(server_cpu_s / elapsed * 100, 1),
        "cpu_us_per_msg": round(server_cpu_s * 1e6 / delivered, 2) if delivered else None,
        "client_cpu_pct": round(max(client_pct), 1),
        "client_saturated": max(client_pct) > SATURATED_PCT,
        "server_rss_mb": round(rss_bytes(procs.server.pid) / 1e6, 1),
        "lost": sum(t["lost"] for t in tallies),
        "repeated": sum(t["repeated"] for t in tallies),
        "closed": sum(t["closed"] for t in tallies),
        "publisher_behind_ms": round(window["max_behind_ms"], 1),
    }


def measure_memory(procs: Processes, p: Plan, rss_empty: int) -> dict[str, Any]:
    n = len(p.channel_sets)
    time.sleep(0.5)
    rss_idle = rss_bytes(procs.server.pid)
    if p.server in WS_KINDS:
        procs.clients_all(("subscribe",), "subscribed")
    procs.set_rate(MEMORY_RATE)
    time.sleep(1.0)
    procs.set_rate(0)
    time.sleep(0.5)
    rss_sub = rss_bytes(procs.server.pid)
    return {
        "rss_empty_mb": round(rss_empty / 1e6, 1),
        "rss_idle_mb": round(rss_idle / 1e6, 1),
        "rss_subscribed_mb": round(rss_sub / 1e6, 1),
        "idle_kb_per_conn": round((rss_idle - rss_empty) / n / 1024, 1),
        "subscribed_kb_per_conn": round((rss_sub - rss_empty) / n / 1024, 1),
    }


# -- the whole benchmark ------------------------------------------------------------------------


def run_bench(config: FanoutBenchConfig, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Every scenario, every server, ``repeat`` times; the runs and their medians."""
    nofile = raise_nofile(config.many_clients * 2 + 1024)
    log(
        f"bench fanout: servers {','.join(config.servers)}; scenarios "
        f"{','.join(config.scenarios)}; {config.clients:,}/{config.many_clients:,} clients; "
        f"server on core {config.server_cpu}, clients on {config.client_cpus}; "
        f"{config.duration_s:g} s per run after {config.warmup_s:g} s; nice {config.nice}; "
        f"open files {nofile}"
    )
    runs: list[dict[str, Any]] = []
    for repeat in range(config.repeat):
        for scenario in config.scenarios:
            for server in config.servers:
                result = run_one(config, plan(config, server, scenario))
                result["repeat"] = repeat
                runs.append(result)
                log("  " + format_run(result))
    return {"config": asdict(config), "runs": runs, "summary": summarize(runs)}


NUMERIC = (
    "connected", "failed", "published_per_s", "delivered_per_s", "expected_per_s", "p50_ms",
    "p99_ms", "p999_ms", "max_ms", "server_cpu_pct", "cpu_us_per_msg", "client_cpu_pct",
    "server_rss_mb", "lost", "repeated", "closed", "publisher_behind_ms", "rss_empty_mb",
    "rss_idle_mb", "rss_subscribed_mb", "idle_kb_per_conn", "subscribed_kb_per_conn",
)  # fmt: skip


def summarize(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per server and scenario: the median of each figure over the repeats (errors listed)."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in runs:
        groups.setdefault((r["scenario"], r["server"]), []).append(r)
    out = []
    for (scenario, server), group in groups.items():
        first = group[0]
        row: dict[str, Any] = {
            "server": server,
            "scenario": scenario,
            "runs": len(group),
            "clients": first["clients"],
            "rate": first["rate"],
        }
        for key in NUMERIC:
            values = [r[key] for r in group if r.get(key) is not None]
            if values:
                row[key] = statistics.median(values)
        row["client_saturated"] = any(r.get("client_saturated") for r in group)
        errors = [r["error"] for r in group if "error" in r]
        if errors:
            row["errors"] = errors
        out.append(row)
    return out


def _num(value: Any, digits: int = 0) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and math.isinf(value):
        return "max"
    return f"{value:,.{digits}f}"


def format_run(r: dict[str, Any]) -> str:
    head = f"{r['scenario']:<11} {r['server']:<14}"
    if "error" in r:
        return f"{head} ERROR {r['error']}"
    if r["scenario"] == "memory":
        return (
            f"{head} {r['connected']:,} conns: RSS {r['rss_empty_mb']} -> idle "
            f"{r['rss_idle_mb']} -> subscribed {r['rss_subscribed_mb']} MB; "
            f"{r['idle_kb_per_conn']} / {r['subscribed_kb_per_conn']} KB per connection"
        )
    flag = "!" if r["client_saturated"] else ""
    return (
        f"{head} {r['connected']:,} conns, {_num(r['delivered_per_s'])}/s delivered "
        f"(expected {_num(r['expected_per_s'])}), p50 {_num(r['p50_ms'], 1)} p99 "
        f"{_num(r['p99_ms'], 1)} p99.9 {_num(r['p999_ms'], 1)} ms, server CPU "
        f"{r['server_cpu_pct']} % ({_num(r['cpu_us_per_msg'], 1)} us/msg), client CPU "
        f"{r['client_cpu_pct']} %{flag}, lost {r['lost']:,}, closed {r['closed']}, "
        f"publisher behind {r['publisher_behind_ms']} ms"
    )


COLUMNS = (
    ("scenario", "scenario", None), ("server", "server", None), ("clients", "conns", 0),
    ("rate", "msg/s", 0), ("delivered_per_s", "delivered/s", 0),
    ("expected_per_s", "expected/s", 0), ("p50_ms", "p50 ms", 1), ("p99_ms", "p99 ms", 1),
    ("p999_ms", "p99.9 ms", 1), ("server_cpu_pct", "srv CPU%", 0),
    ("cpu_us_per_msg", "us/msg", 1), ("client_cpu_pct", "cli CPU%", 0),
    ("server_rss_mb", "RSS MB", 0), ("lost", "lost", 0),
    ("idle_kb_per_conn", "KB/conn idle", 1), ("subscribed_kb_per_conn", "KB/conn sub", 1),
)  # fmt: skip


def format_table(summary: list[dict[str, Any]]) -> str:
    """A plain-text table of :func:`summarize` (medians; ``!`` after a saturated client)."""
    rows = [[title for _, title, _ in COLUMNS]]
    for row in summary:
        cells = []
        for key, _, digits in COLUMNS:
            value = row.get(key)
            cell = str(value) if digits is None else _num(value, digits)
            if key == "client_cpu_pct" and row.get("client_saturated"):
                cell += "!"
            cells.append(cell)
        if row.get("errors"):
            cells[-1] += f"  ERROR: {row['errors'][0]}"
        rows.append(cells)
    widths = [max(len(r[i]) for r in rows) for i in range(len(COLUMNS))]
    lines = []
    for cells in rows:
        padded = (
            c.rjust(w) if i > 1 else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        )
        lines.append("  ".join(padded).rstrip())
    return "\n".join(lines)
