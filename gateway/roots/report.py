"""``quotegate report``: one account's statement for one day, from the reporting database.

``quotegate report --account A --date YYYY-MM-DD [--format json|csv] [--database-url URL]
[--stream NAME]`` prints the statement of ``GET /v1/account/statement`` (opening and closing
balances per asset, every fill, turnover) to stdout. The stream defaults to the newest one in
the database (the last ``quotegate run`` that reported to it, or the journal it restored).
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import os
import sys
from typing import Any

import orjson

DEFAULT_DATABASE_URL = "sqlite:data/reports.sqlite3"


def add_database_arguments(parser: argparse.ArgumentParser) -> None:
    """``--database-url`` and ``--stream``, shared with ``quotegate reconcile``."""
    parser.add_argument(
        "--database-url",
        metavar="URL",
        help="reporting database: sqlite:PATH or postgresql://user@host:port/db "
        f"(QUOTEGATE_DATABASE_URL, default {DEFAULT_DATABASE_URL})",
    )
    parser.add_argument(
        "--stream",
        metavar="NAME",
        help="the engine history to read (default: the newest in the database)",
    )


def database_url(args: argparse.Namespace) -> str:
    return str(
        args.database_url or os.environ.get("QUOTEGATE_DATABASE_URL") or DEFAULT_DATABASE_URL
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--account", required=True, help="the account")
    parser.add_argument("--date", required=True, help="the UTC day, YYYY-MM-DD")
    parser.add_argument("--format", choices=("json", "csv"), default="json", help="output format")
    add_database_arguments(parser)


async def find_stream(db: Any, name: str | None) -> int | None:
    """The id of stream ``name``, or of the newest stream without a name."""
    if name is not None:
        rows = await db.fetch("SELECT id FROM streams WHERE name = $1", name)
    else:
        rows = await db.fetch("SELECT MAX(id) FROM streams")
    return int(rows[0][0]) if rows and rows[0][0] is not None else None


def to_csv(statement: dict[str, Any]) -> str:
    """The statement as CSV: one row per balance, per fill and per turnover currency, each
    row led by its section (``balance``, ``fill``, ``turnover``), a header row per section."""
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(["section", "account", "date", "asset", "opening", "closing"])
    for asset, b in statement["balances"].items():
        w.writerow(
            ["balance", statement["account"], statement["date"], asset, b["opening"], b["closing"]]
        )
    fields = [
        "tradeId",
        "orderId",
        "clientOrderId",
        "symbol",
        "side",
        "price",
        "qty",
        "liquidity",
        "notional",
        "currency",
        "ts",
    ]
    w.writerow(["section", *fields])
    for fill in statement["fills"]:
        w.writerow(["fill", *(fill[f] for f in fields)])
    w.writerow(["section", "currency", "turnover"])
    for currency, amount in statement["turnover"].items():
        w.writerow(["turnover", currency, amount])
    return out.getvalue()


async def _statement(args: argparse.Namespace) -> dict[str, Any] | str:
    from gateway.reporting.database import open_database
    from gateway.reporting.history import parse_day, statement

    try:
        day = parse_day(args.date)
    except ValueError as exc:
        return str(exc)
    db = open_database(database_url(args))
    await db.open()
    try:
        stream = await find_stream(db, args.stream)
        if stream is None:
            return "no such stream in the database" if args.stream else "the database is empty"
        return await statement(db, stream, args.account, day)
    finally:
        await db.close()


def run(args: argparse.Namespace) -> int:
    try:
        result = asyncio.run(_statement(args))
    except (OSError, ValueError) as exc:
        print(f"quotegate report: {exc}", file=sys.stderr)
        return 2
    if isinstance(result, str):
        print(f"quotegate report: {result}", file=sys.stderr)
        return 2
    if args.format == "csv":
        sys.stdout.write(to_csv(result))
    else:
        sys.stdout.write(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode() + "\n")
    return 0
