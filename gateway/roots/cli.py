"""The ``quotegate`` console script: one entry point, a subcommand per job.

Each subcommand lives in its own module exposing ``add_arguments(parser)`` and
``run(args) -> int``. Only the chosen subcommand's module is imported, so ``quotegate replay``
does not pay for the web stack and a missing optional dependency of one subcommand does not
break the others.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from types import ModuleType

SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "run": ("gateway.roots.run", "run everything in one process (engine, feed, gateway, web UI)"),
    "engine": (
        "gateway.roots.engine_process",
        "distributed mode: the engine process (commands from Kafka, market data to Kafka, "
        "snapshots to Redis)",
    ),
    "gateway": (
        "gateway.roots.gateway_process",
        "distributed mode: a stateless gateway node (market data from Kafka, REST from Redis)",
    ),
    "replay": ("gateway.roots.replay", "run a command file through a fresh engine"),
    "report": ("gateway.roots.report", "one account's statement for one day (reporting db)"),
    "reconcile": ("gateway.roots.reconcile", "engine wallets against the reporting database"),
    "bench": (
        "loadtest.bench",
        "benchmarks: engine, publisher, store, reporter, fanout, distributed",
    ),
}


DESCRIPTION = (
    "quotegate: a realtime market-data gateway with an embedded matching engine. "
    "Run 'quotegate COMMAND --help' for a command's options."
)


def version() -> str:
    """The installed distribution's version (``pyproject.toml``)."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    try:
        return dist_version("quotegate")
    except PackageNotFoundError:  # running from a source tree that is not installed
        return "unknown"


def build_parser(chosen: str | None = None) -> argparse.ArgumentParser:
    """The parser; only ``chosen``'s module is imported to add its arguments."""
    parser = argparse.ArgumentParser(prog="quotegate", description=DESCRIPTION)
    parser.add_argument("--version", action="version", version=f"quotegate {version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name == chosen:
            module: ModuleType = importlib.import_module(module_name)
            module.add_arguments(p)
            p.set_defaults(_module=module)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    chosen = next((a for a in argv if not a.startswith("-")), None)
    args = build_parser(chosen if chosen in SUBCOMMANDS else None).parse_args(argv)
    try:
        return int(args._module.run(args))
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
