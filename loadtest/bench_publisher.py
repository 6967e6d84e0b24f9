"""``quotegate bench publisher``: engine events into encoded envelopes, events/s on one core.

A seeded command stream (:mod:`loadtest.cmdgen`, 100 symbols by default) is run through the
engine first, untimed, keeping each command's events. The timed loop then feeds those event
lists to a fresh :class:`~gateway.marketdata.publisher.Publisher` (``on_events`` per command,
``flush_due`` at each command's time when conflation is on) whose sink only counts envelopes
and bytes, so the figure is the publisher's own cost: L2 diffs and checksums, trades, ticker,
six candle resolutions, private orders streams, sequencing and one orjson encode per envelope.
Best of ``--repeat`` runs (the machine is noisy).

Without ``--conflate-ms`` it reports two figures from the same stream: every change published
(no conflation) and the venue-style intervals of ``VENUE_CONFLATE_MS`` (book 100 ms, ticker and
candles 250 ms, trades and orders unconflated). The pre-generated stream is frozen out of the
garbage collector (``gc.freeze``), as a live runtime's events are short-lived and never there.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import platform
import pstats
import time
from dataclasses import dataclass, field
from typing import Any

from loadtest.args import EXIT_BAD_ARGUMENTS, ArgumentCheck
from loadtest.progress import Progress, silent

TARGET_EVENTS_S = 200_000


@dataclass(frozen=True, slots=True, kw_only=True)
class PublisherBenchConfig:
    commands: int = 300_000
    symbols: int = 100
    accounts: int = 100
    seed: int = 1
    book_depth: int = 50
    conflate_ms: dict[str, int] = field(default_factory=dict)
    repeat: int = 3
    profile: bool = False


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--commands", type=int, default=300_000, help="length of the generated command stream"
    )
    parser.add_argument("--symbols", type=int, default=100, help="symbols the stream trades")
    parser.add_argument("--accounts", type=int, default=100, help="accounts the stream trades for")
    parser.add_argument("--seed", type=int, default=1, help="seed of the generated stream")
    parser.add_argument("--depth", type=int, default=50, help="book depth D: price levels per side")
    parser.add_argument(
        "--conflate-ms",
        default=None,
        help="per-kind publish intervals, e.g. book=100,ticker=100, '' for none; when not "
        "given, two runs: none, and book=100,ticker=250,candles=250",
    )
    parser.add_argument("--repeat", type=int, default=3, help="timed runs; the best counts")
    parser.add_argument("--profile", action="store_true", help="print cProfile's hot spots")


def run(args: argparse.Namespace) -> int:
    from gateway.marketdata.publisher import VENUE_CONFLATE_MS, parse_conflate_ms

    check = ArgumentCheck("bench publisher", args)
    if args.conflate_ms is None:
        conflations = [{}, dict(VENUE_CONFLATE_MS)]
    else:
        conflations = [check.parsed("conflate_ms", parse_conflate_ms, {})]
    check.at_least(1, "commands", "symbols", "accounts", "repeat", "depth")
    if check.failed():
        return EXIT_BAD_ARGUMENTS
    configs = [
        PublisherBenchConfig(
            commands=args.commands,
            symbols=args.symbols,
            accounts=args.accounts,
            seed=args.seed,
            book_depth=args.depth,
            conflate_ms=conflate,
            repeat=args.repeat,
            profile=args.profile,
        )
        for conflate in conflations
    ]
    total = args.commands + sum(planned_work(c) for c in configs)
    with Progress(total, desc="bench publisher", unit="cmd") as progress:
        progress.note("generating the engine's events")
        stream = generate_events(configs[0])
        progress.advance(args.commands)
        for config in configs:
            run_bench(config, log=progress.write, stream=stream, progress=progress)
    return 0


def planned_work(config: PublisherBenchConfig) -> int:
    """The commands whose events :func:`run_bench` publishes (one measuring pass, ``repeat``
    timed passes and the profile's), for the progress bar (the stream given)."""
    return config.commands * (1 + config.repeat + config.profile)


def generate_events(config: PublisherBenchConfig) -> tuple[list[list[Any]], dict[str, Any]]:
    """Run the seeded command stream through the engine: each command's events, and the
    instruments."""
    from engine import Engine
    from loadtest.cmdgen import CmdGenConfig, generate

    engine = Engine(clock=lambda: 0)
    gen = CmdGenConfig(seed=config.seed, symbols=config.symbols, accounts=config.accounts)
    batches = []
    for cmd in generate(gen, config.commands):
        events = engine.submit(cmd)
        if events:
            batches.append(events)
    return batches, dict(engine.instruments)


def publish_all(
    config: PublisherBenchConfig,
    batches: list[list[Any]],
    instruments: dict[str, Any],
    *,
    measure_bytes: bool = False,
) -> tuple[float, int, int]:
    """One pass: (CPU seconds of this process, envelopes, bytes). CPU time, not wall time, so
    that other processes on a busy machine do not count against the publisher. The timed
    passes use a C-level sink (``deque(maxlen=1).append``); ``measure_bytes`` sums payload
    sizes instead (an untimed pass)."""
    from collections import deque

    from gateway.marketdata.publisher import Publisher, PublisherConfig

    nbytes = [0]
    last: deque[Any] = deque(maxlen=1)

    def counting_sink(env: Any) -> None:
        nbytes[0] += len(env.payload)

    cfg = PublisherConfig(
        epoch="bench",
        book_depth=config.book_depth,
        conflate_ms={"book": 0, "ticker": 0, "candles": 0, "trades": 0, **config.conflate_ms},
    )
    pub = Publisher(cfg, sink=counting_sink if measure_bytes else last.append, clock=lambda: 0)
    for inst in instruments.values():
        pub.add_instrument(inst)
    on_events = pub.on_events
    flush_due = pub.flush_due
    conflated = any(config.conflate_ms.values())
    gc.collect()
    start = time.process_time()
    if conflated:
        for events in batches:
            flush_due(events[0].ts)
            on_events(events)
    else:
        for events in batches:
            on_events(events)
    pub.flush_all()
    elapsed = time.process_time() - start
    envelopes = sum(pub.seq(ch) or 0 for ch in pub.channels())
    return elapsed, envelopes, nbytes[0]


def run_bench(
    config: PublisherBenchConfig,
    log: Any = print,
    *,
    stream: tuple[list[list[Any]], dict[str, Any]] | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """One configuration: ``stream`` is a :func:`generate_events` result to reuse (it must
    come from the same commands, symbols, accounts and seed); ``progress`` advances by the
    commands of each pass (:func:`planned_work`)."""
    progress = progress or silent()
    label = f"conflation {config.conflate_ms or 'off'}"
    log(
        f"bench publisher: {config.commands:,} commands, {config.symbols} symbols, "
        f"{config.accounts} accounts, depth {config.book_depth}, "
        f"conflation {config.conflate_ms or 'off'} (python {platform.python_version()})"
    )
    t0 = time.perf_counter()
    batches, instruments = stream if stream is not None else generate_events(config)
    events = sum(len(b) for b in batches)
    kinds: dict[str, int] = {}
    for batch in batches:
        for ev in batch:
            name = type(ev).__name__
            kinds[name] = kinds.get(name, 0) + 1
    log(
        f"  engine events: {events:,} from {len(batches):,} commands "
        f"({time.perf_counter() - t0:.1f} s to generate) {kinds}"
    )
    gc.collect()
    gc.freeze()  # the pre-generated stream: nothing a live runtime's collector would scan
    try:
        progress.note(f"{label}: measuring")
        _, envelopes, nbytes = publish_all(config, batches, instruments, measure_bytes=True)
        progress.advance(config.commands)
        progress.note(f"{label}: timed runs")
        runs = []
        for _ in range(config.repeat):
            runs.append(publish_all(config, batches, instruments)[0])
            progress.advance(config.commands)
        elapsed = min(runs)
    finally:
        gc.unfreeze()
    rate = events / elapsed
    result = {
        "events": events,
        "seconds": round(elapsed, 3),
        "events_per_s": round(rate),
        "envelopes": envelopes,
        "envelopes_per_s": round(envelopes / elapsed),
        "mb_per_s": round(nbytes / elapsed / 1e6, 1),
        "target_events_per_s": TARGET_EVENTS_S,
    }
    verdict = "meets" if rate >= TARGET_EVENTS_S else "BELOW"
    log(
        f"  publisher: {rate:,.0f} events/s ({verdict} the {TARGET_EVENTS_S:,} target), "
        f"{envelopes / elapsed:,.0f} envelopes/s, {nbytes / elapsed / 1e6:.1f} MB/s, "
        f"{envelopes / events:.2f} envelopes per event; best of {config.repeat}"
    )
    if config.profile:
        prof = cProfile.Profile()
        prof.enable()
        publish_all(config, batches, instruments)
        prof.disable()
        progress.advance(config.commands)
        out = io.StringIO()
        pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(18)
        log(out.getvalue())
    return result
