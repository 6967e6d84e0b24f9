"""``quotegate bench engine``: matching-engine throughput, latency, memory and replay speed.

Phases, each on a fresh engine (:mod:`loadtest.cmdgen` generates the seeded streams first, so
generation is never timed):

1. ``resting``: the RSS growth of ``--resting`` non-crossing GTC limit orders (run first, so
   memory freed by other phases does not hide growth); ``/proc/self/statm``.
2. ``throughput``: commands/s of ``engine.submit`` over ``--commands`` commands with the
   journal on (fsync ``interval``, ``--fsync-interval-ms``, in a temporary directory), and
   again with the journal off. One untimed-per-command loop, so no timer overhead.
3. ``latency``: every submit timed with ``time.perf_counter_ns`` (journal on), recorded in an
   HdrHistogram: p50, p99, p99.9 and max in microseconds.
4. ``replay``: lines/s of the ``quotegate replay`` path (JSON in, JSON events out, in-process)
   over the same stream written as a JSON-lines file.

``--profile`` prints cProfile's top functions of an extra journal-on pass. ``--gc off`` runs
with Python's cyclic garbage collector disabled (``tuned``: gen-0 threshold 50,000), to show how
much of the tail latency is collector pauses.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import os
import platform
import pstats
import sys
import tempfile
import time
from array import array
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from engine import Engine, EngineConfig
from engine.commands import Command
from engine.journal import Journal, JournalConfig
from loadtest.cmdgen import CmdGenConfig, generate, resting, write_jsonl

TARGETS = {
    "throughput_cmd_s": 300_000,
    "latency_p99_us": 20.0,
    "replay_lines_s": 200_000,
    "resting_mb_per_million": 400.0,
}


@dataclass(frozen=True, slots=True, kw_only=True)
class EngineBenchConfig:
    commands: int = 1_000_000
    symbols: int = 100
    accounts: int = 100
    seed: int = 1
    resting_orders: int = 1_000_000
    fsync_interval_ms: float = 5.0
    phases: tuple[str, ...] = ("resting", "throughput", "latency", "replay")
    profile: bool = False
    gc_mode: str = "default"


PHASES = ("resting", "throughput", "latency", "replay")
GC_MODES = ("default", "tuned", "off")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--commands", type=int, default=1_000_000, help="stream length")
    parser.add_argument("--symbols", type=int, default=100)
    parser.add_argument("--accounts", type=int, default=100)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--resting", type=int, default=1_000_000, help="resting orders for the memory phase"
    )
    parser.add_argument("--fsync-interval-ms", type=float, default=5.0)
    parser.add_argument(
        "--phases",
        default=",".join(PHASES),
        help=f"comma-separated subset of {','.join(PHASES)}",
    )
    parser.add_argument("--profile", action="store_true", help="print cProfile's hot spots")
    parser.add_argument(
        "--gc", choices=GC_MODES, default="default", help="cyclic garbage collector setting"
    )
    parser.add_argument("--json", default=None, metavar="FILE", help="also write results here")


def run(args: argparse.Namespace) -> int:
    phases = tuple(p for p in args.phases.split(",") if p)
    unknown = [p for p in phases if p not in PHASES]
    if unknown or args.commands < 1 or args.symbols < 1 or args.accounts < 1:
        print(f"bench engine: bad arguments (unknown phases: {unknown})", file=sys.stderr)
        return 2
    config = EngineBenchConfig(
        commands=args.commands,
        symbols=args.symbols,
        accounts=args.accounts,
        seed=args.seed,
        resting_orders=args.resting,
        fsync_interval_ms=args.fsync_interval_ms,
        phases=phases,
        profile=args.profile,
        gc_mode=args.gc,
    )
    results = run_bench(config, log=lambda text: print(text, flush=True))
    if args.json:
        Path(args.json).write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2) + b"\n")
    return 0


# --------------------------------------------------------------------------- engine plumbing


def _engine(journal: Journal | None) -> Engine:
    """A fresh engine with no cap on open orders per account (the resting phase puts 10,000
    on each account) and a counting clock (the generated commands carry their own ts)."""
    ticks = [0]

    def clock() -> int:
        ticks[0] += 1
        return ticks[0]

    config = EngineConfig(max_open_orders_per_account=None)
    return Engine(config, clock=clock, journal=journal)


def _rss_bytes() -> int:
    with open("/proc/self/statm", "rb") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _percentiles(samples: array[int]) -> dict[str, float]:
    from hdrh.histogram import HdrHistogram

    hist = HdrHistogram(1, 10_000_000_000, 3)
    record = hist.record_value
    for ns in samples:
        record(ns if ns > 0 else 1)
    return {
        "p50_us": hist.get_value_at_percentile(50.0) / 1000,
        "p99_us": hist.get_value_at_percentile(99.0) / 1000,
        "p99_9_us": hist.get_value_at_percentile(99.9) / 1000,
        "max_us": hist.get_max_value() / 1000,
        "mean_us": hist.get_mean_value() / 1000,
    }


# --------------------------------------------------------------------------- phases


def bench_resting(config: EngineBenchConfig) -> dict[str, Any]:
    gen = CmdGenConfig(seed=config.seed, symbols=config.symbols, accounts=config.accounts)
    gc.collect()
    before = _rss_bytes()
    engine = _engine(None)
    submit = engine.submit
    rejected = 0
    started = time.perf_counter()
    for cmd in resting(gen, config.resting_orders):
        for event in submit(cmd):
            if type(event).__name__ == "Rejected":
                rejected += 1
    elapsed = time.perf_counter() - started
    gc.collect()
    grown = _rss_bytes() - before
    open_orders = sum(len(engine.orders.open_orders(f"acct{a}")) for a in range(gen.accounts))
    del engine
    gc.collect()
    mb = grown / 1e6
    return {
        "resting_orders": open_orders,
        "resting_rejected": rejected,
        "resting_rss_mb": round(mb, 1),
        "resting_mb_per_million": round(mb * 1e6 / max(open_orders, 1), 1),
        "resting_submit_cmd_s": round(config.resting_orders / elapsed),
    }


def _throughput(commands: Sequence[Command], journal: Journal | None) -> tuple[float, float]:
    """Commands/s by the wall clock and by the process's CPU time (which includes the
    journal's sync thread but not other processes competing for the two cores)."""
    engine = _engine(journal)
    submit = engine.submit
    gc.collect()
    started, cpu_started = time.perf_counter(), time.process_time()
    for cmd in commands:
        submit(cmd)
    if journal is not None:
        journal.close()
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    return len(commands) / wall, len(commands) / cpu


def _journal(directory: str, name: str, interval_ms: float) -> Journal:
    path = Path(directory) / name
    return Journal(JournalConfig(path=path, fsync="interval", fsync_interval_ms=interval_ms))


def bench_throughput(
    config: EngineBenchConfig, commands: Sequence[Command], directory: str
) -> dict[str, Any]:
    journal = _journal(directory, "t.journal", config.fsync_interval_ms)
    with_journal, with_journal_cpu = _throughput(commands, journal)
    journal_bytes = (Path(directory) / "t.journal").stat().st_size
    without, without_cpu = _throughput(commands, None)
    return {
        "throughput_journal_cmd_s": round(with_journal),
        "throughput_journal_cmd_cpu_s": round(with_journal_cpu),
        "throughput_no_journal_cmd_s": round(without),
        "throughput_no_journal_cmd_cpu_s": round(without_cpu),
        "journal_mb": round(journal_bytes / 1e6, 1),
        "journal_syncs": journal.syncs,
    }


def bench_latency(
    config: EngineBenchConfig, commands: Sequence[Command], directory: str
) -> dict[str, Any]:
    journal = _journal(directory, "l.journal", config.fsync_interval_ms)
    engine = _engine(journal)
    submit = engine.submit
    samples = array("q")
    record = samples.append
    now = time.perf_counter_ns
    gc.collect()
    for cmd in commands:
        t0 = now()
        submit(cmd)
        record(now() - t0)
    journal.close()
    return {f"latency_{k}": round(v, 2) for k, v in _percentiles(samples).items()}


def bench_replay(commands: Sequence[Command], directory: str) -> dict[str, Any]:
    from gateway.replay import replay_stream

    path = Path(directory) / "cmds.jsonl"
    write_jsonl(str(path), commands)
    out = Path(directory) / "events.jsonl"
    gc.collect()
    started, cpu_started = time.perf_counter(), time.process_time()
    with open(path, "rb", buffering=1 << 20) as src, open(out, "wb", buffering=1 << 20) as dst:
        lines = replay_stream(src, dst.write)
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    events = out.read_bytes().count(b"\n")
    return {
        "replay_lines": lines,
        "replay_events": events,
        "replay_lines_s": round(lines / elapsed),
        "replay_lines_cpu_s": round(lines / cpu),
        "replay_events_s": round(events / elapsed),
    }


def profile_pass(commands: Sequence[Command], directory: str, top: int = 25) -> str:
    journal = _journal(directory, "p.journal", 5.0)
    engine = _engine(journal)
    submit = engine.submit
    profiler = cProfile.Profile()
    profiler.enable()
    for cmd in commands:
        submit(cmd)
    profiler.disable()
    journal.close()
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(top)
    return text.getvalue()


def run_bench(config: EngineBenchConfig, log: Callable[[str], None]) -> dict[str, Any]:
    """Run the chosen phases; the results as a JSON-able dict."""
    threshold = gc.get_threshold()
    enabled = gc.isenabled()
    try:
        if config.gc_mode == "off":
            gc.disable()
        elif config.gc_mode == "tuned":
            gc.set_threshold(50_000, threshold[1], threshold[2])
        return _run_phases(config, log)
    finally:
        gc.set_threshold(*threshold)
        if enabled:
            gc.enable()


def _run_phases(config: EngineBenchConfig, log: Callable[[str], None]) -> dict[str, Any]:
    results: dict[str, Any] = {
        "commands": config.commands,
        "symbols": config.symbols,
        "accounts": config.accounts,
        "seed": config.seed,
        "fsync_interval_ms": config.fsync_interval_ms,
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "load_average_at_start": list(os.getloadavg()),
        "targets": TARGETS,
        "gc": config.gc_mode,
    }
    log(f"bench engine: {config.commands} commands, {config.symbols} symbols, seed {config.seed}")
    if "resting" in config.phases and config.resting_orders > 0:
        results.update(bench_resting(config))
        log(
            f"  resting: {results['resting_orders']} orders, RSS +{results['resting_rss_mb']} MB"
            f" ({results['resting_mb_per_million']} MB per million)"
        )
    gen = CmdGenConfig(seed=config.seed, symbols=config.symbols, accounts=config.accounts)
    commands = list(generate(gen, config.commands))
    with tempfile.TemporaryDirectory(prefix="qg-bench-") as directory:
        if "throughput" in config.phases:
            results.update(bench_throughput(config, commands, directory))
            log(
                f"  throughput: {results['throughput_journal_cmd_s']} cmd/s with the journal"
                f" ({results['throughput_journal_cmd_cpu_s']} per CPU second),"
                f" {results['throughput_no_journal_cmd_s']} cmd/s without"
                f" ({results['throughput_no_journal_cmd_cpu_s']} per CPU second)"
            )
        if "latency" in config.phases:
            results.update(bench_latency(config, commands, directory))
            log(
                f"  latency: p50 {results['latency_p50_us']} us, p99 {results['latency_p99_us']}"
                f" us, p99.9 {results['latency_p99_9_us']} us, max {results['latency_max_us']} us"
            )
        if "replay" in config.phases:
            results.update(bench_replay(commands, directory))
            log(
                f"  replay: {results['replay_lines_s']} lines/s"
                f" ({results['replay_lines_cpu_s']} per CPU second; {results['replay_events']}"
                " events)"
            )
        if config.profile:
            log(profile_pass(commands, directory))
    return results
