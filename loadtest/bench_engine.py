"""``quotegate bench engine``: matching-engine throughput, latency, memory and replay speed.

Phases, each on a fresh engine (:mod:`loadtest.cmdgen` generates the seeded streams first, so
generation is never timed):

1. ``resting``: the RSS growth of ``--resting`` non-crossing GTC limit orders (run first, so
   memory freed by other phases does not hide growth); ``/proc/self/statm``.
2. ``throughput``: commands/s of ``engine.submit`` over ``--commands`` commands with the
   journal on (fsync ``interval``, ``--fsync-interval-ms``, in a temporary directory), and
   again with the journal off. One untimed-per-command loop, so no timer overhead.
3. ``latency``: every submit timed with ``time.perf_counter_ns`` (journal on), recorded in an
   HdrHistogram: p50, p99, p99.9 and max in microseconds. Also where the slowest 1 % comes
   from (:func:`tail_by_events`): per number of events a command emitted (a proxy for how much
   matching it did), its share of the commands and of the commands at or above p99, and its own
   p50 and p99, from the run with the median p99.
4. ``replay``: lines/s of the ``quotegate replay`` path (JSON in, JSON events out, in-process)
   over the same stream written as a JSON-lines file.
5. ``journal`` (not run unless named): where the journal's cost per command goes, sink by
   sink, from a no-op ``append`` to the real group-committed journal
   (:mod:`loadtest.journal_cost`).

Fairness: the pre-generated stream is collected and frozen (``gc.collect(); gc.freeze()``)
before any timing, so the million command tuples are not walked by every full collection (a
process serving live input does not hold them). Each timed phase runs ``--repeat`` times (3 by
default) under each ``--gc`` setting, ``tuned,default`` by default: ``tuned`` is what
``quotegate run`` does (frozen start-up state, generation-0 threshold 50,000, see
:mod:`gateway.roots.embedded`), ``default`` is Python's thresholds; ``off`` disables the collector.
Rates are reported per wall second and per CPU second of the process, as the median and the
best of the repeats (the runs are listed too), so that the noise of a shared machine is
visible. The flat result keys are the first ``--gc`` setting's medians; ``results["gc_modes"]``
holds every setting's figures.

``--profile`` prints cProfile's top functions of an extra journal-on pass.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import os
import platform
import pstats
import statistics
import tempfile
import time
from array import array
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from engine import Engine, EngineConfig, JournalSink
from engine.commands import Command
from engine.journal import Journal, JournalConfig
from loadtest.args import EXIT_BAD_ARGUMENTS, ArgumentCheck
from loadtest.cmdgen import CmdGenConfig, generate, resting, write_jsonl
from loadtest.journal_cost import SINKS as JOURNAL_SINKS
from loadtest.journal_cost import bench_journal_cost, describe
from loadtest.progress import Progress, silent

TARGETS = {
    "throughput_cmd_s": 300_000,
    "latency_p99_us": 20.0,
    "replay_lines_s": 200_000,
    "resting_mb_per_million": 400.0,
}


PHASES = ("resting", "throughput", "latency", "replay", "journal")
DEFAULT_PHASES = ("resting", "throughput", "latency", "replay")
GC_MODES = ("default", "tuned", "off")
TUNED_GEN0_THRESHOLD = 50_000


@dataclass(frozen=True, slots=True, kw_only=True)
class EngineBenchConfig:
    commands: int = 1_000_000
    symbols: int = 100
    accounts: int = 100
    seed: int = 1
    resting_orders: int = 1_000_000
    fsync_interval_ms: float = 5.0
    phases: tuple[str, ...] = DEFAULT_PHASES
    profile: bool = False
    gc_modes: tuple[str, ...] = ("tuned", "default")
    repeat: int = 3


def add_arguments(parser: argparse.ArgumentParser) -> None:
    a = parser.add_argument
    a("--commands", type=int, default=1_000_000, help="length of the generated command stream")
    a("--symbols", type=int, default=100, help="symbols the stream trades")
    a("--accounts", type=int, default=100, help="accounts the stream trades for")
    a("--seed", type=int, default=1, help="seed of the generated stream")
    a("--resting", type=int, default=1_000_000, help="resting orders for the memory phase")
    a("--fsync-interval-ms", type=float, default=5.0, help="the journal's group-commit interval")
    a(
        "--phases",
        default=",".join(DEFAULT_PHASES),
        help=f"comma-separated subset of {','.join(PHASES)}",
    )
    a("--profile", action="store_true", help="also print cProfile's hot spots")
    a(
        "--gc",
        default="tuned,default",
        help=f"comma-separated cyclic garbage collector settings among {','.join(GC_MODES)}",
    )
    a("--repeat", type=int, default=3, help="runs of each timed phase (the median is reported)")
    a("--json", default=None, metavar="FILE", help="also write the results here as JSON")


def run(args: argparse.Namespace) -> int:
    check = ArgumentCheck("bench engine", args)
    phases = check.names("phases", PHASES, required=False)
    gc_modes = check.names("gc", GC_MODES)
    check.at_least(1, "commands", "symbols", "accounts", "repeat")
    if check.failed():
        return EXIT_BAD_ARGUMENTS
    config = EngineBenchConfig(
        commands=args.commands,
        symbols=args.symbols,
        accounts=args.accounts,
        seed=args.seed,
        resting_orders=args.resting,
        fsync_interval_ms=args.fsync_interval_ms,
        phases=phases,
        profile=args.profile,
        gc_modes=gc_modes,
        repeat=args.repeat,
    )
    with Progress(planned_work(config), desc="bench engine", unit="cmd") as progress:
        results = run_bench(config, log=progress.write, progress=progress)
    if args.json:
        Path(args.json).write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2) + b"\n")
    return 0


# --------------------------------------------------------------------------- engine plumbing


def _engine(journal: JournalSink | None) -> Engine:
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


def _throughput(commands: Sequence[Command], journal: JournalSink | None) -> tuple[float, float]:
    """Commands/s by the wall clock and by the process's CPU time (which includes the
    journal's sync thread but not other processes competing for the two cores); a
    :class:`Journal` is closed (written and synced) inside the timing."""
    engine = _engine(journal)
    submit = engine.submit
    gc.collect()
    started, cpu_started = time.perf_counter(), time.process_time()
    for cmd in commands:
        submit(cmd)
    if isinstance(journal, Journal):
        journal.close()
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    return len(commands) / wall, len(commands) / cpu


def _journal(directory: str, name: str, interval_ms: float) -> Journal:
    path = Path(directory) / name
    return Journal(JournalConfig(path=path, fsync="interval", fsync_interval_ms=interval_ms))


def _rates(name: str, values: Sequence[float]) -> dict[str, Any]:
    """``name`` (the median), ``name_best`` (the highest) and ``name_runs`` of a rate."""
    return {
        name: round(statistics.median(values)),
        f"{name}_best": round(max(values)),
        f"{name}_runs": [round(v) for v in values],
    }


def _no_progress(n: int) -> None:
    pass


def bench_throughput(
    config: EngineBenchConfig,
    commands: Sequence[Command],
    directory: str,
    advance: Callable[[int], None] = _no_progress,
) -> dict[str, Any]:
    on: list[tuple[float, float]] = []
    off: list[tuple[float, float]] = []
    path = Path(directory) / "t.journal"
    journal_bytes = syncs = 0
    for _ in range(config.repeat):
        path.unlink(missing_ok=True)
        journal = _journal(directory, path.name, config.fsync_interval_ms)
        on.append(_throughput(commands, journal))
        advance(len(commands))
        journal_bytes, syncs = path.stat().st_size, journal.syncs
        path.unlink()
        off.append(_throughput(commands, None))
        advance(len(commands))
    return {
        **_rates("throughput_journal_cmd_s", [w for w, _ in on]),
        **_rates("throughput_journal_cmd_cpu_s", [c for _, c in on]),
        **_rates("throughput_no_journal_cmd_s", [w for w, _ in off]),
        **_rates("throughput_no_journal_cmd_cpu_s", [c for _, c in off]),
        "journal_mb": round(journal_bytes / 1e6, 1),
        "journal_syncs": syncs,
    }


def tail_by_events(samples: Sequence[int], events: Sequence[int]) -> list[dict[str, Any]]:
    """Per number of events a command emitted (0 to 5, then "6+"): ``share_pct`` of the
    commands, ``tail_pct`` of the commands at or above the overall p99, and the group's own
    ``p50_us`` and ``p99_us`` (nearest rank)."""
    if not samples:
        return []
    p99 = sorted(samples)[int(len(samples) * 0.99)]
    groups: dict[int, list[int]] = {}
    for ns, n in zip(samples, events, strict=True):
        groups.setdefault(min(n, 6), []).append(ns)
    tail = sum(1 for ns in samples if ns >= p99)
    rows = []
    for key in sorted(groups):
        values = sorted(groups[key])
        rows.append(
            {
                "events": "6+" if key == 6 else str(key),
                "share_pct": round(100 * len(values) / len(samples), 2),
                "tail_pct": round(100 * sum(1 for ns in values if ns >= p99) / tail, 2),
                "p50_us": values[len(values) // 2] / 1000,
                "p99_us": values[int(len(values) * 0.99)] / 1000,
            }
        )
    return rows


def _latency_run(
    config: EngineBenchConfig, commands: Sequence[Command], directory: str
) -> dict[str, Any]:
    journal = _journal(directory, "l.journal", config.fsync_interval_ms)
    engine = _engine(journal)
    submit = engine.submit
    samples = array("q")
    counts = array("q")
    record = samples.append
    count = counts.append
    now = time.perf_counter_ns
    gc.collect()
    for cmd in commands:
        t0 = now()
        events = submit(cmd)
        record(now() - t0)
        count(len(events))
    journal.close()
    (Path(directory) / "l.journal").unlink()
    return {**_percentiles(samples), "by_events": tail_by_events(samples, counts)}


def bench_latency(
    config: EngineBenchConfig,
    commands: Sequence[Command],
    directory: str,
    advance: Callable[[int], None] = _no_progress,
) -> dict[str, Any]:
    """The median of each percentile over the repeats; ``latency_p99_us_best`` the lowest p99."""
    runs = []
    for _ in range(config.repeat):
        runs.append(_latency_run(config, commands, directory))
        advance(len(commands))
    out: dict[str, Any] = {}
    for key in runs[0]:
        if key == "by_events":
            continue
        values = [run[key] for run in runs]
        out[f"latency_{key}"] = round(statistics.median(values), 2)
        out[f"latency_{key}_runs"] = [round(v, 2) for v in values]
    out["latency_p99_us_best"] = min(out["latency_p99_us_runs"])
    median_run = sorted(runs, key=lambda run: run["p99_us"])[(len(runs) - 1) // 2]
    out["latency_by_events"] = median_run["by_events"]
    return out


def _replay_run(path: Path, out: Path) -> tuple[int, float, float]:
    from gateway.roots.replay import replay_stream

    gc.collect()
    started, cpu_started = time.perf_counter(), time.process_time()
    with open(path, "rb", buffering=1 << 20) as src, open(out, "wb", buffering=1 << 20) as dst:
        lines = replay_stream(src, dst.write)
    return lines, time.perf_counter() - started, time.process_time() - cpu_started


def bench_replay(
    commands: Sequence[Command],
    directory: str,
    repeat: int = 1,
    advance: Callable[[int], None] = _no_progress,
) -> dict[str, Any]:
    path = Path(directory) / "cmds.jsonl"
    if not path.exists():
        write_jsonl(str(path), commands)
    out = Path(directory) / "events.jsonl"
    runs = []
    for _ in range(repeat):
        runs.append(_replay_run(path, out))
        advance(len(commands))
    lines = runs[0][0]
    events = out.read_bytes().count(b"\n")
    return {
        "replay_lines": lines,
        "replay_events": events,
        **_rates("replay_lines_s", [lines / wall for _, wall, _ in runs]),
        **_rates("replay_lines_cpu_s", [lines / cpu for _, _, cpu in runs]),
        "replay_events_s": round(statistics.median([events / wall for _, wall, _ in runs])),
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


def _set_gc(mode: str, default: tuple[int, int, int]) -> None:
    """``default``: Python's thresholds; ``tuned``: generation 0 at 50,000 (what ``quotegate
    run`` sets); ``off``: no cyclic collection. The frozen stream stays frozen in all three."""
    if mode == "off":
        gc.disable()
        return
    gc.enable()
    gen0 = TUNED_GEN0_THRESHOLD if mode == "tuned" else default[0]
    gc.set_threshold(gen0, default[1], default[2])


def planned_work(config: EngineBenchConfig) -> int:
    """The commands the chosen phases will process, for the progress bar's total."""
    n, repeat, phases = config.commands, config.repeat, config.phases
    per_mode = (
        repeat
        * n
        * (
            2 * ("throughput" in phases)
            + ("latency" in phases)
            + ("replay" in phases)
            + len(JOURNAL_SINKS) * ("journal" in phases)
        )
    )
    resting_orders = config.resting_orders if "resting" in phases else 0
    return resting_orders + n + per_mode * len(config.gc_modes) + n * config.profile


def run_bench(
    config: EngineBenchConfig, log: Callable[[str], None], *, progress: Progress | None = None
) -> dict[str, Any]:
    """Run the chosen phases; the results as a JSON-able dict. ``progress`` advances by the
    commands each finished run processed (:func:`planned_work` in all)."""
    threshold = gc.get_threshold()
    enabled = gc.isenabled()
    try:
        return _run_phases(config, log, threshold, progress or silent())
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)
        if enabled:
            gc.enable()
        else:
            gc.disable()


def _log_mode(log: Callable[[str], None], mode: str, r: dict[str, Any]) -> None:
    def rate(key: str) -> str:
        return f"{r[key]:,} (best {r[key + '_best']:,})"

    if "throughput_journal_cmd_s" in r:
        log(
            f"  gc {mode}: throughput (median of {len(r['throughput_journal_cmd_s_runs'])}):"
            f" journal on {rate('throughput_journal_cmd_s')} cmd/s,"
            f" {rate('throughput_journal_cmd_cpu_s')} per CPU second;"
            f" journal off {rate('throughput_no_journal_cmd_s')} cmd/s,"
            f" {rate('throughput_no_journal_cmd_cpu_s')} per CPU second"
        )
    if "latency_p99_us" in r:
        log(
            f"  gc {mode}: latency (medians): p50 {r['latency_p50_us']} us,"
            f" p99 {r['latency_p99_us']} us (best {r['latency_p99_us_best']}),"
            f" p99.9 {r['latency_p99_9_us']} us, max {r['latency_max_us']} us"
        )
        groups = "; ".join(
            f"{g['events']}: {g['share_pct']}% of commands, {g['tail_pct']}% of the tail,"
            f" p50 {g['p50_us']:.2f} p99 {g['p99_us']:.2f} us"
            for g in r["latency_by_events"]
        )
        log(f"  gc {mode}: latency by events per command (tail: at or above p99): {groups}")
    if "replay_lines_s" in r:
        log(
            f"  gc {mode}: replay {rate('replay_lines_s')} lines/s,"
            f" {rate('replay_lines_cpu_s')} per CPU second ({r['replay_events']:,} events)"
        )
    if "journal_cost" in r:
        log(f"  gc {mode}: {describe(r['journal_cost'])}")


def _run_phases(
    config: EngineBenchConfig,
    log: Callable[[str], None],
    default: tuple[int, int, int],
    progress: Progress,
) -> dict[str, Any]:
    advance = progress.advance
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
        "gc": config.gc_modes[0],
        "repeat": config.repeat,
    }
    log(
        f"bench engine: {config.commands} commands, {config.symbols} symbols, seed"
        f" {config.seed}, {config.repeat} runs each, gc {','.join(config.gc_modes)}"
    )
    if "resting" in config.phases and config.resting_orders > 0:
        _set_gc(config.gc_modes[0], default)
        progress.note("resting orders")
        results.update(bench_resting(config))
        advance(config.resting_orders)
        log(
            f"  resting: {results['resting_orders']} orders, RSS +{results['resting_rss_mb']} MB"
            f" ({results['resting_mb_per_million']} MB per million)"
        )
    gen = CmdGenConfig(seed=config.seed, symbols=config.symbols, accounts=config.accounts)
    progress.note("generating commands")
    commands = list(generate(gen, config.commands))
    advance(len(commands))
    gc.collect()
    gc.freeze()  # the stream is the harness's, not the engine's: keep it out of collections
    by_mode: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="qg-bench-") as directory:
        for mode in config.gc_modes:
            _set_gc(mode, default)
            r: dict[str, Any] = {}
            if "throughput" in config.phases:
                progress.note(f"gc {mode}: throughput")
                r.update(bench_throughput(config, commands, directory, advance))
            if "latency" in config.phases:
                progress.note(f"gc {mode}: latency")
                r.update(bench_latency(config, commands, directory, advance))
            if "replay" in config.phases:
                progress.note(f"gc {mode}: replay")
                r.update(bench_replay(commands, directory, config.repeat, advance))
            if "journal" in config.phases:
                progress.note(f"gc {mode}: journal cost")
                r.update(
                    bench_journal_cost(
                        _throughput,
                        commands,
                        directory,
                        repeat=config.repeat,
                        fsync_interval_ms=config.fsync_interval_ms,
                    )
                )
                advance(config.repeat * len(JOURNAL_SINKS) * len(commands))
            by_mode[mode] = r
            _log_mode(log, mode, r)
        results.update(by_mode[config.gc_modes[0]])
        results["gc_modes"] = by_mode
        if config.profile:
            _set_gc(config.gc_modes[0], default)
            progress.note("profile")
            text = profile_pass(commands, directory)
            advance(len(commands))
            log(text)
    return results
