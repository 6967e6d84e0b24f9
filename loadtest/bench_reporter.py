"""``quotegate bench reporter``: rows/s into the reporting databases, and the engine's
commands/s in ``quotegate run``-like operation with the reporter off and on.

A seeded command stream (:mod:`loadtest.cmdgen`) is the input of both phases.

* **rows**: the stream runs through an engine untimed (:class:`~gateway.reporting.tap.EngineTap`
  collects its offers); then the timed part: :meth:`Reporter.write` of all of them, in
  transactions of ``--batch-records``, into a fresh SQLite file and a fresh PostgreSQL
  database. Reported: rows/s, engine events/s and the rows per event.
* **engine**: an :class:`~gateway.roots.embedded.EmbeddedRuntime` (engine, publisher, memory
  store and bus, no feed) gets the stream through ``runtime.submit`` the way the synthetic
  feed sends it: ``--chunk`` commands, then a yield to the event loop (the reporter's task and
  the publisher's flush run there too). Rounds alternate reporter off, on SQLite, on PostgreSQL
  (``--rounds`` of each, interleaved in one run, a fresh runtime each round); each round runs
  ``--commands`` commands as fast as possible (**max**) and, in a second series, paced at
  ``--rate`` commands/s (**paced**, the synthetic feed's way). Reported per mode: median
  commands/s, its ratio to the reporter off, the reporter's lag (events) when the last command
  was submitted, and how long it then took to write the rest.

PostgreSQL is ``--database-url`` or a server started in a temporary directory
(:mod:`loadtest.postgres_server`); ``--no-postgres`` leaves it out.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from loadtest.args import EXIT_BAD_ARGUMENTS, ArgumentCheck


@dataclass(frozen=True, kw_only=True)
class ReporterBenchConfig:
    commands: int = 100_000
    symbols: int = 20
    accounts: int = 50
    seed: int = 1
    batch_records: int = 5000
    chunk: int = 500
    rate: int = 5000
    rounds: int = 3
    database_url: str | None = None
    postgres: bool = True


def add_arguments(parser: argparse.ArgumentParser) -> None:
    a = parser.add_argument
    a("--commands", type=int, default=100_000, help="commands of the generated stream")
    a("--symbols", type=int, default=20, help="symbols of the stream")
    a("--accounts", type=int, default=50, help="accounts of the stream")
    a("--seed", type=int, default=1, help="seed of the stream")
    a("--batch-records", type=int, default=5000, help="records per reporting transaction")
    a("--chunk", type=int, default=500, help="commands between two yields to the event loop")
    a("--rate", type=int, default=5000, help="commands/s of the paced series")
    a("--rounds", type=int, default=3, help="rounds of each mode, interleaved")
    a(
        "--database-url",
        default=None,
        metavar="URL",
        help="PostgreSQL server to use (None: "
        "start one in a temporary directory); the benchmark creates its own databases on it",
    )
    a("--no-postgres", action="store_true", help="SQLite only")
    a("--json", default=None, metavar="FILE", help="also write the results here")


def run(args: argparse.Namespace) -> int:
    check = ArgumentCheck("bench reporter", args)
    check.at_least(1, "commands", "symbols", "accounts", "batch_records", "chunk", "rate")
    check.at_least(1, "rounds")
    if check.failed():
        return EXIT_BAD_ARGUMENTS
    config = ReporterBenchConfig(
        commands=args.commands,
        symbols=args.symbols,
        accounts=args.accounts,
        seed=args.seed,
        batch_records=args.batch_records,
        chunk=args.chunk,
        rate=args.rate,
        rounds=args.rounds,
        database_url=args.database_url,
        postgres=not args.no_postgres,
    )
    server = None
    pg_url = config.database_url
    if config.postgres and pg_url is None:
        from loadtest.postgres_server import PostgresServer

        server = PostgresServer()
        try:
            pg_url = server.start()
        except RuntimeError as exc:
            print(f"bench reporter: {exc}")
            return 1
    try:
        with tempfile.TemporaryDirectory(prefix="quotegate-bench-reporter-") as tmp:
            results = asyncio.run(_bench(config, tmp, pg_url if config.postgres else None))
    finally:
        if server is not None:
            server.stop()
    _print(results)
    if args.json:
        with open(args.json, "wb") as f:
            f.write(orjson.dumps(results, option=orjson.OPT_INDENT_2))
    return 0


def _commands(config: ReporterBenchConfig) -> list[Any]:
    from loadtest.cmdgen import CmdGenConfig, generate

    gen = CmdGenConfig(
        seed=config.seed,
        symbols=config.symbols,
        accounts=config.accounts,
        ts_step_us=0,
    )
    return list(generate(gen, config.commands))


async def _fresh_pg(admin_url: str, name: str) -> str:
    import asyncpg

    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await conn.execute(f"CREATE DATABASE {name}")
    finally:
        await conn.close()
    base, _, _ = admin_url.rpartition("/")
    return f"{base}/{name}"


async def _rows_phase(config: ReporterBenchConfig, url: str, commands: list[Any]) -> dict[str, Any]:
    from engine import Engine, EngineConfig
    from gateway.reporting.records import Offer
    from gateway.reporting.reporter import Reporter, ReporterConfig
    from gateway.reporting.tap import EngineTap

    engine = Engine(EngineConfig())
    offers: list[Offer] = []
    tap = EngineTap(engine, offers.append)
    for cmd in commands:
        tap.submit(cmd)
    rep = Reporter(
        ReporterConfig(database_url=url, stream="bench", batch_max_records=config.batch_records)
    )
    await rep.open()
    try:
        started = time.perf_counter()
        rows = await rep.write(offers)
        elapsed = time.perf_counter() - started
    finally:
        await rep.close()
    events = engine.out_seq
    return {
        "rows": rows,
        "events": events,
        "seconds": round(elapsed, 3),
        "rows_per_s": round(rows / elapsed),
        "events_per_s": round(events / elapsed),
        "rows_per_event": round(rows / max(1, events), 2),
    }


async def _engine_round(
    config: ReporterBenchConfig, commands: list[Any], url: str | None, paced: bool
) -> dict[str, Any]:
    from gateway.roots.embedded import EmbeddedRuntime
    from gateway.roots.embedded_config import EmbeddedConfig

    runtime = EmbeddedRuntime(
        EmbeddedConfig(
            symbols=["X"],
            feed="none",
            database_url=url,
            reporter_batch_records=config.batch_records,
            gc_threshold=50_000,
        )
    )
    await runtime.start()
    try:
        submit: Callable[[Any], Any] = runtime.submit
        chunk = config.chunk
        interval = chunk / config.rate if paced else 0.0
        started = time.perf_counter()
        next_at = started
        for i in range(0, len(commands), chunk):
            for cmd in commands[i : i + chunk]:
                submit(cmd)
            if paced:
                next_at += interval
                await asyncio.sleep(max(0.0, next_at - time.perf_counter()))
            else:
                await asyncio.sleep(0)
        elapsed = time.perf_counter() - started
        out: dict[str, Any] = {"commands_per_s": round(len(commands) / elapsed)}
        reporter = runtime.reporter
        if reporter is not None:
            out["lag_events_at_end"] = reporter.lag_events()
            drain_started = time.perf_counter()
            await reporter.drain(600)
            out["drain_s"] = round(time.perf_counter() - drain_started, 3)
            out["dropped"] = reporter.dropped_records()
        return out
    finally:
        await runtime.close()


async def _bench(config: ReporterBenchConfig, tmp: str, pg_admin: str | None) -> dict[str, Any]:
    commands = _commands(config)
    results: dict[str, Any] = {
        "config": {k: v for k, v in config.__dict__.items() if k != "database_url"},
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
    }
    counter = iter(range(1_000_000))

    async def url_of(kind: str) -> str | None:
        n = next(counter)
        if kind == "off":
            return None
        if kind == "sqlite":
            return f"sqlite:{tmp}/bench{n}.sqlite3"
        assert pg_admin is not None
        return await _fresh_pg(pg_admin, f"qgbench{n}")

    kinds = ["sqlite"] + (["postgres"] if pg_admin else [])
    results["rows"] = {}
    for kind in kinds:
        url = await url_of(kind)
        assert url is not None
        results["rows"][kind] = await _rows_phase(config, url, commands)
    modes = ["off", *kinds]
    for series, paced in (("max", False), ("paced", True)):
        rounds: dict[str, list[dict[str, Any]]] = {m: [] for m in modes}
        for _ in range(config.rounds):
            for mode in modes:  # interleaved: the machine's noise hits every mode alike
                rounds[mode].append(
                    await _engine_round(config, commands, await url_of(mode), paced)
                )
        base = statistics.median(r["commands_per_s"] for r in rounds["off"])
        summary: dict[str, Any] = {}
        for mode in modes:
            rates = [r["commands_per_s"] for r in rounds[mode]]
            median = statistics.median(rates)
            summary[mode] = {
                "commands_per_s_median": round(median),
                "commands_per_s": rates,
                "ratio_to_off": round(median / base, 3),
            }
            if mode != "off":
                summary[mode]["lag_events_at_end"] = [r["lag_events_at_end"] for r in rounds[mode]]
                summary[mode]["drain_s"] = [r["drain_s"] for r in rounds[mode]]
                summary[mode]["dropped"] = sum(r["dropped"] for r in rounds[mode])
        results[series] = summary
    return results


def _print(results: dict[str, Any]) -> None:
    cfg = results["config"]
    print(
        f"bench reporter: {cfg['commands']} commands, {cfg['symbols']} symbols, "
        f"{cfg['accounts']} accounts, batches of {cfg['batch_records']} records"
    )
    for kind, r in results["rows"].items():
        print(
            f"  rows {kind:9s} {r['rows_per_s']:>9,} rows/s  ({r['events_per_s']:,} engine "
            f"events/s, {r['rows_per_event']} rows/event, {r['rows']:,} rows in {r['seconds']} s)"
        )
    for series in ("max", "paced"):
        extra = f" (offered {cfg['rate']:,}/s)" if series == "paced" else ""
        print(f"  engine {series}{extra}, chunks of {cfg['chunk']}:")
        for mode, s in results[series].items():
            line = (
                f"    reporter {mode:9s} {s['commands_per_s_median']:>9,} commands/s "
                f"(x{s['ratio_to_off']}; rounds {s['commands_per_s']})"
            )
            if mode != "off":
                line += (
                    f", lag at end {s['lag_events_at_end']} events, then written in "
                    f"{s['drain_s']} s, dropped {s['dropped']}"
                )
            print(line)
