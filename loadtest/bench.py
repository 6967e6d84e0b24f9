"""``quotegate bench``: the benchmark dispatcher.

``quotegate bench NAME [options]`` runs one benchmark; each lives in its own module
``loadtest.bench_<name>`` exposing ``add_arguments(parser)`` and ``run(args) -> int``, imported
only when chosen (so the engine benchmark does not pay for the web stack, and a benchmark whose
module is missing does not break the others).
"""

from __future__ import annotations

import argparse
import importlib

BENCHMARKS: dict[str, str] = {
    "engine": "matching engine: commands/s, latency, resting-order memory, replay lines/s",
    "publisher": "market-data publisher: events/s into envelopes",
    "store": "snapshot store: writes and reads per second",
    "reporter": "reporting database: rows/s into SQLite and PostgreSQL, engine commands/s "
    "with the reporter off and on",
    "durability": "journal: latency publish-after-commit would add vs the clean-shutdown mark",
    "fanout": "push fan-out: quotegate WebSocket/SSE/polling against websockets, Starlette, "
    "sse-starlette and python-socketio, side by side",
    "distributed": "engine + gateways over Kafka and Redis: latency vs run, commands/s, failover",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("benchmark", choices=sorted(BENCHMARKS), help="which benchmark to run")
    parser.add_argument(
        "options", nargs=argparse.REMAINDER, help="the benchmark's own options (see NAME --help)"
    )
    parser.epilog = "benchmarks: " + "; ".join(f"{k}: {v}" for k, v in BENCHMARKS.items())


def build_parser(name: str) -> argparse.ArgumentParser:
    """The chosen benchmark's own parser (imports its module)."""
    module = importlib.import_module(f"loadtest.bench_{name}")
    parser = argparse.ArgumentParser(
        prog=f"quotegate bench {name}",
        description=BENCHMARKS.get(name, name),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    module.add_arguments(parser)
    parser.set_defaults(_bench=module)
    return parser


def run(args: argparse.Namespace) -> int:
    try:
        parser = build_parser(args.benchmark)
    except ModuleNotFoundError as exc:
        print(f"quotegate bench {args.benchmark}: not available ({exc})")
        return 2
    bench_args = parser.parse_args(args.options)
    return int(bench_args._bench.run(bench_args))
