"""``quotegate reconcile``: the engine's wallets against the reporting database.

``quotegate reconcile --journal PATH [--database-url URL] [--stream NAME]`` rebuilds the
engine from the journal up to the last command the database holds (the stream's progress
mark), then checks, for every account and asset, that the engine's total (available +
reserved) equals the deposits plus the fills in the database, and equals the sum of its
balance changes (:mod:`gateway.reporting.reconcile`). Each difference is printed; the exit
status is 0 when there is none, 1 when there are, 2 when it cannot run. The stream defaults to
the journal's (``PATH.stream``), else the newest in the database.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from gateway.roots.report import add_database_arguments, database_url, find_stream


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--journal", required=True, metavar="PATH", help="the engine's journal")
    add_database_arguments(parser)


async def _reconcile(args: argparse.Namespace, name: str | None) -> int:
    from engine import Engine, EngineConfig
    from engine.journal import replay
    from gateway.reporting.database import open_database
    from gateway.reporting.reconcile import engine_totals, reconcile

    db = open_database(database_url(args))
    await db.open()
    try:
        stream = await find_stream(db, name)
        if stream is None:
            print(f"quotegate reconcile: no stream {name or ''} in the database", file=sys.stderr)
            return 2
        mark = int((await db.fetch("SELECT last_in_seq FROM streams WHERE id = $1", stream))[0][0])
        engine = Engine(EngineConfig(finished_orders_max=1, executions_per_account_max=1))
        for in_seq, ts, cmd in replay(args.journal):
            if in_seq > mark:
                break
            engine.submit_sequenced(in_seq, ts, cmd)
        if engine.in_seq < mark:
            print(
                f"quotegate reconcile: the database holds commands up to inSeq {mark}, the "
                f"journal only up to {engine.in_seq}",
                file=sys.stderr,
            )
            return 1
        wallets = {a: engine.wallets.balances(a) for a in engine.wallets.accounts()}
        differences = await reconcile(db, stream, engine_totals(wallets))
    finally:
        await db.close()
    for d in differences:
        print(
            f"{d.account} {d.asset}: engine {d.engine}, database ({d.source}) {d.database}, "
            f"difference {d.database - d.engine}"
        )
    accounts = len(engine.wallets.accounts())
    if differences:
        print(f"quotegate reconcile: {len(differences)} differences", file=sys.stderr)
        return 1
    print(f"quotegate reconcile: ok, {accounts} accounts agree at inSeq {mark}")
    return 0


def run(args: argparse.Namespace) -> int:
    try:
        name = args.stream
        side = Path(f"{args.journal}.stream")
        if name is None and side.is_file():
            name = side.read_text("ascii").strip()
        return asyncio.run(_reconcile(args, name))
    except (OSError, ValueError) as exc:
        print(f"quotegate reconcile: {exc}", file=sys.stderr)
        return 2
