"""The embedded runtime with a reporter (SQLite and PostgreSQL): a synthetic run reconciles,
a row altered by hand does not, a restart with the journal writes what the reporter had not
written, and a journal tail lost after its rows were written is removed from the database."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from engine import Engine, EngineConfig
from engine.journal import replay
from gateway.reporting.database import open_database
from gateway.reporting.reconcile import reconcile
from gateway.reporting.reporter import Reporter, ReporterConfig
from gateway.reporting.tap import EngineTap
from gateway.roots import cli
from gateway.roots.embedded import EmbeddedRuntime
from gateway.roots.embedded_config import EmbeddedConfig
from gateway.roots.run_journal import RunJournalConfig
from tests.gateway.reporting.support import dump, wallet_totals

SKIP_TABLES = ("candles", "streams")


def _config(tmp_path: Path, url: str, **kw: Any) -> EmbeddedConfig:
    return EmbeddedConfig(
        symbols=["AAPL", "MSFT"],
        rate_orders_per_s=20_000,
        seed=5,
        journal=RunJournalConfig(path=str(tmp_path / "journal.log"), fsync="never"),
        database_url=url,
        reporter_flush_interval_ms=5,
        **kw,
    )


async def _run(config: EmbeddedConfig, commands: int) -> EmbeddedRuntime:
    """Start a runtime, let the synthetic feed run ``commands`` more commands, close it."""
    runtime = EmbeddedRuntime(config)
    await runtime.start()
    try:
        target = runtime.engine.in_seq + commands
        for _ in range(6000):
            if runtime.engine.in_seq >= target:
                break
            await asyncio.sleep(0.005)
        else:
            raise AssertionError("the feed did not run")
    finally:
        await runtime.close()
    return runtime


async def _stream_rows(url: str, name: str) -> dict[str, list[tuple[Any, ...]]]:
    """The rows of stream ``name`` in every table, the stream column blanked."""
    db = open_database(url)
    await db.open()
    try:
        sid = (await db.fetch("SELECT id FROM streams WHERE name = $1", name))[0][0]
        tables = await dump(db)
    finally:
        await db.close()
    return {
        t: [(0, *r[1:]) for r in rows if r[0] == sid]
        for t, rows in tables.items()
        if t not in SKIP_TABLES
    }


async def _reference(journal: Path, url: str, upto: int | None = None) -> dict[str, Any]:
    """The rows a clean reporter writes for the journal's commands (up to inSeq ``upto``)."""
    engine = Engine(EngineConfig())
    rep = Reporter(ReporterConfig(database_url=url, stream="reference"))
    offers: list[Any] = []
    tap = EngineTap(engine, offers.append)
    for in_seq, ts, cmd in replay(journal):
        if upto is not None and in_seq > upto:
            break
        tap.submit_sequenced(in_seq, ts, cmd)
    await rep.open()
    try:
        await rep.write(offers)
    finally:
        await rep.close()
    return await _stream_rows(url, "reference")


def _stream_name(tmp_path: Path) -> str:
    return (tmp_path / "journal.log.stream").read_text().strip()


async def test_a_long_synthetic_run_reconciles_and_an_altered_row_does_not(
    tmp_path: Path, report_db_url: str
) -> None:
    runtime = await _run(_config(tmp_path, report_db_url), 20_000)
    reporter = runtime.reporter
    assert reporter is not None
    assert reporter.last_in_seq == runtime.engine.in_seq  # close wrote everything
    assert reporter.dropped_records() == 0
    db = open_database(report_db_url)
    await db.open()
    try:
        trades = (await db.fetch("SELECT COUNT(*) FROM executions"))[0][0]
        assert trades > 1000
        totals = wallet_totals(runtime.engine)
        assert await reconcile(db, reporter.stream, totals) == []
        args = ["reconcile", "--journal", str(tmp_path / "journal.log"),
                "--database-url", report_db_url]  # fmt: skip
        assert await asyncio.to_thread(cli.main, args) == 0
        # one execution altered by hand: both the reconcile function and the command see it
        await db.transaction(
            [
                (
                    "UPDATE executions SET qty = qty + 1 WHERE stream = $1 AND trade_id = 7"
                    " AND side = 'buy'",
                    [(reporter.stream,)],
                )
            ]
        )
        found = await reconcile(db, reporter.stream, totals)
        assert {d.source for d in found} == {"fills"} and len(found) == 2  # shares and cash
        assert await asyncio.to_thread(cli.main, args) == 1
        # and one balance change
        await db.transaction(
            [
                (
                    "UPDATE executions SET qty = qty - 1 WHERE stream = $1 AND trade_id = 7"
                    " AND side = 'buy'",
                    [(reporter.stream,)],
                ),
                (
                    "UPDATE balance_changes SET amount_lo = amount_lo + 1 WHERE stream = $1"
                    " AND kind = 'deposit' AND ref = 3",
                    [(reporter.stream,)],
                ),
            ]
        )
        found = await reconcile(db, reporter.stream, totals)
        assert [d.source for d in found] == ["fills", "ledger"]
        assert await asyncio.to_thread(cli.main, args) == 1
    finally:
        await db.close()


async def test_a_restart_writes_what_the_reporter_lost(tmp_path: Path, report_db_url: str) -> None:
    first = await _run(_config(tmp_path, report_db_url), 3000)
    name = _stream_name(tmp_path)
    # the reporter died with its last batches unwritten: the database is behind the journal
    # (rows after inSeq 1500 gone, the progress mark back there, as a lost transaction leaves it)
    rep = Reporter(ReporterConfig(database_url=report_db_url, stream=name))
    await rep.open()
    await rep.truncate_after(1500, _seq_at(tmp_path, 1500))
    await rep.close()
    assert first.engine.in_seq > 3000
    second = await _run(_config(tmp_path, report_db_url, feed="none"), 0)
    assert second.reporter is not None and second.reporter.last_in_seq == second.engine.in_seq
    reference_url = f"sqlite:{tmp_path / 'reference.sqlite3'}"
    expected = await _reference(tmp_path / "journal.log", reference_url)
    assert await _stream_rows(report_db_url, name) == expected
    assert len(expected["executions"]) > 100


async def test_a_lost_journal_tail_is_removed_from_the_database(
    tmp_path: Path, report_db_url: str
) -> None:
    await _run(_config(tmp_path, report_db_url), 3000)
    name = _stream_name(tmp_path)
    journal = tmp_path / "journal.log"
    # the journal loses its tail after the reporter wrote its rows (a crash before the sync)
    lines = journal.read_bytes().splitlines(keepends=True)
    keep = len(lines) - 1200
    journal.write_bytes(b"".join(lines[:keep]))
    second = await _run(_config(tmp_path, report_db_url, feed="none"), 0)
    assert second.engine.in_seq == keep
    expected = await _reference(journal, f"sqlite:{tmp_path / 'reference.sqlite3'}")
    got = await _stream_rows(report_db_url, name)
    assert got == expected


def _seq_at(tmp_path: Path, in_seq: int) -> int:
    """The engine's last event seq after command ``in_seq`` of the journal."""
    engine = Engine(EngineConfig())
    for n, ts, cmd in replay(tmp_path / "journal.log"):
        if n > in_seq:
            break
        engine.submit_sequenced(n, ts, cmd)
    return engine.out_seq
