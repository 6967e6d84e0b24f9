"""``quotegate run`` with a reporting database as a real subprocess: killed with SIGKILL in the
middle of its work and restarted, it loses nothing (the restart replays the journal and the
reporter writes what it had not); ``quotegate reconcile`` and ``quotegate report`` on the
result."""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

from gateway.reporting.database import open_database
from gateway.roots.run import add_arguments, run, settings
from tests.gateway.roots.test_embedded_reporting import _reference, _stream_rows
from tests.gateway.roots.test_run import ROOT, _start
from tests.live import wait_healthy


def _wait_up(proc: subprocess.Popen[bytes], port: int, log: Path) -> None:
    wait_healthy(proc, f"http://127.0.0.1:{port}", log)


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway.roots.cli", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


async def _some_account(url: str) -> tuple[str, str]:
    db = open_database(url)
    await db.open()
    try:
        row = (await db.fetch("SELECT account, ts FROM executions ORDER BY trade_id LIMIT 1"))[0]
    finally:
        await db.close()
    day = time.strftime("%Y-%m-%d", time.gmtime(int(row[1]) / 1e6))
    return str(row[0]), day


async def test_sigkill_then_restart_loses_nothing(tmp_path: Path, free_port: int) -> None:
    log = tmp_path / "run.log"
    journal = tmp_path / "journal.log"
    db_url = f"sqlite:{tmp_path / 'reports.sqlite3'}"
    flags = ("--journal", str(journal), "--database-url", db_url, "--rate", "3000")
    proc = _start(free_port, log, *flags)
    try:
        _wait_up(proc, free_port, log)
        await asyncio.sleep(2.0)  # trading, the reporter writing batch after batch
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=20)
    assert f"reporting to {db_url}" in log.read_text()
    log2 = tmp_path / "run2.log"
    proc = _start(free_port, log2, *flags, "--feed", "none")
    try:
        _wait_up(proc, free_port, log2)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    assert proc.returncode == 0, log2.read_text()

    done = _cli("reconcile", "--journal", str(journal), "--database-url", db_url)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "ok" in done.stdout
    name = (tmp_path / "journal.log.stream").read_text().strip()
    expected = await _reference(journal, f"sqlite:{tmp_path / 'reference.sqlite3'}")
    assert len(expected["executions"]) > 100
    assert await _stream_rows(db_url, name) == expected

    account, day = await _some_account(db_url)
    as_json = _cli("report", "--account", account, "--date", day, "--database-url", db_url)
    assert as_json.returncode == 0, as_json.stderr
    statement = orjson.loads(as_json.stdout)
    assert statement["account"] == account and statement["fills"]
    assert all(isinstance(v, str) for v in statement["turnover"].values())
    as_csv = _cli("report", "--account", account, "--date", day, "--database-url", db_url,
                  "--format", "csv")  # fmt: skip
    assert as_csv.returncode == 0, as_csv.stderr
    rows = list(csv.reader(io.StringIO(as_csv.stdout)))
    fills = [r for r in rows if r[0] == "fill"]
    assert len(fills) == len(statement["fills"])
    assert [r[1] for r in fills] == [str(f["tradeId"]) for f in statement["fills"]]
    bad = _cli("report", "--account", account, "--date", "2024-02-30", "--database-url", db_url)
    assert bad.returncode == 2 and "date" in bad.stderr


def test_database_flags_and_bad_databases(capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    s = settings(parser.parse_args([]), {"QUOTEGATE_DATABASE_URL": "sqlite:/tmp/x.sqlite3"})
    assert s["database_url"] == "sqlite:/tmp/x.sqlite3"
    s = settings(parser.parse_args(["--database-url", "none"]), {})
    assert s["database_url"] == "none" and s["reporter_queue_records"] == 1_000_000
    assert settings(parser.parse_args([]), {})["database_url"] == "sqlite:data/reports.sqlite3"
    for bad, said in (
        ("mysql://x", "use sqlite:PATH or postgresql://"),
        ("postgresql://nobody:secret@127.0.0.1:1/x", "reporting database postgresql://nobody@"),
    ):
        args = parser.parse_args(
            ["--feed", "none", "--candles-db", ":memory:", "--database-url", bad]
        )
        assert run(args) == 2
        err = capsys.readouterr().err
        assert err.startswith("quotegate run: ") and said in err and "secret" not in err
    args = parser.parse_args(["--feed", "none", "--reporter-queue-records", "0"])
    assert run(args) == 2
