"""``quotegate run`` as a real subprocess: the page, REST, a WebSocket book, clean shutdown."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from websockets.asyncio.client import connect

from engine.journal import scan
from gateway.marketdata.l2book import checksum_of
from gateway.roots.run import add_arguments, run, settings
from tests.live import wait_healthy

KEY = "run-test-key-0123456789"
ROOT = Path(__file__).resolve().parents[3]


def _start(port: int, log: Path, *extra: str) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("QUOTEGATE_")}
    with open(log, "wb") as out:
        return subprocess.Popen(
        [
            sys.executable, "-m", "gateway.roots.cli", "run",
            "--port", str(port), "--symbols", "AAPL,MSFT", "--rate", "1000",
            "--candles-db", ":memory:", "--demo-key", KEY, "--log-level", "warning",
            "--database-url", f"sqlite:{log.parent / 'reports.sqlite3'}",
            *extra,
        ],
        cwd=ROOT,
        env=env,
        stdout=out,
        stderr=subprocess.STDOUT,
    )  # fmt: skip


@pytest.fixture
def server(free_port: int, tmp_path: Path) -> Iterator[str]:
    log = tmp_path / "run.log"
    journal = tmp_path / "data" / "journal.log"
    proc = _start(
        free_port, log,
        "--journal", str(journal), "--book-depth", "20", "--history-max", "500",
        "--conflate-ms", "candles=200", "--gc-threshold", "20000",
    )  # fmt: skip
    base = f"http://127.0.0.1:{free_port}"
    try:
        wait_healthy(proc, base, log)
        yield base
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        # the process ended cleanly on SIGTERM
        assert proc.returncode == 0, log.read_text()
        assert f"API key: {KEY}" in log.read_text()
        # every command was journaled, and the journal was closed whole
        assert f"quotegate: journal {journal} (fsync=interval, 0 commands" in log.read_text()
        found = scan(journal)
        assert found.records > 10 and found.bad_bytes == 0
        assert Path(f"{journal}.epoch").is_file()


def _apply(book: dict[str, dict[str, int]], data: dict[str, Any]) -> None:
    for side in ("bids", "asks"):
        for price, qty in data[side]:
            if qty == 0:
                book[side].pop(price, None)
            else:
                book[side][price] = qty


def _levels(book: dict[str, dict[str, int]], side: str) -> list[list[Any]]:
    rev = side == "bids"
    return [[p, q] for p, q in sorted(book[side].items(), key=lambda x: float(x[0]), reverse=rev)]


async def test_run_serves_page_rest_and_websocket(server: str) -> None:
    async with httpx.AsyncClient(base_url=server, timeout=10) as http:
        page = await http.get("/")
        assert page.status_code == 200 and "quotegate" in page.text
        assert (await http.get("/app.js")).status_code == 200
        symbols = (await http.get("/v1/symbols")).json()["symbols"]
        assert [s["symbol"] for s in symbols] == ["AAPL", "MSFT"]
        acct = await http.get("/v1/account", headers={"Authorization": f"Bearer {KEY}"})
        assert acct.status_code == 200 and acct.json()["account"] == "demo"

    ws_url = server.replace("http://", "ws://") + "/v1/ws"
    async with connect(ws_url) as ws:
        await ws.send(orjson.dumps({"op": "subscribe", "ch": ["book.AAPL"], "id": 1}).decode())
        book: dict[str, dict[str, int]] = {"bids": {}, "asks": {}}
        seq = None
        updates = 0
        while updates < 20:
            frame = await asyncio.wait_for(ws.recv(), 20)
            for line in str(frame).split("\n"):
                msg = orjson.loads(line)
                if msg.get("ch") != "book.AAPL":
                    continue
                if msg["type"] == "snapshot":
                    assert seq is None
                    book = {"bids": {}, "asks": {}}
                    _apply(book, msg["data"])
                else:
                    assert seq is not None and msg["seq"] == seq + 1  # gap-free
                    _apply(book, msg["data"])
                    updates += 1
                seq = msg["seq"]
                got = checksum_of(_levels(book, "bids"), _levels(book, "asks"))
                assert got == msg["data"]["checksum"]
        assert book["bids"] and book["asks"]

    # the private orders channel: a REST order shows up as the account's own event
    async with connect(ws_url) as ws:
        await ws.send(orjson.dumps({"op": "auth", "token": KEY, "id": 1}).decode())
        await ws.send(orjson.dumps({"op": "subscribe", "ch": ["orders"], "id": 2}).decode())
        seen: list[dict[str, Any]] = []

        async def until(pred: Any) -> dict[str, Any]:
            while True:
                for msg in seen:
                    if pred(msg):
                        return msg
                frame = await asyncio.wait_for(ws.recv(), 20)
                seen.extend(orjson.loads(line) for line in str(frame).split("\n"))

        assert (await until(lambda m: m["type"] == "authed"))["account"] == "demo"
        snap = await until(lambda m: m.get("ch") == "orders" and m["type"] == "snapshot")
        assert snap["data"] == {"open": []}
        async with httpx.AsyncClient(base_url=server, timeout=10) as http:
            resp = await http.post(
                "/v1/order",
                headers={"Authorization": f"Bearer {KEY}"},
                json={
                    "symbol": "MSFT",
                    "side": "buy",
                    "type": "limit",
                    "price": "1.00",
                    "qty": 1,
                    "clientOrderId": "e2e-1",
                },
            )
            assert resp.status_code == 200, resp.text
        upd = await until(lambda m: m.get("ch") == "orders" and m["type"] == "update")
        assert upd["seq"] == snap["seq"] + 1
        assert upd["data"]["event"] == "accepted" and upd["data"]["clientOrderId"] == "e2e-1"


def test_bad_accounts_file_exits_2(tmp_path: Path, free_port: int) -> None:
    bad = tmp_path / "accounts.json"
    bad.write_text('{"accounts": []}')
    log = tmp_path / "run.log"
    proc = _start(free_port, log, "--accounts", str(bad))
    proc.wait(timeout=60)
    assert proc.returncode == 2
    assert "non-empty list" in log.read_text()


def test_a_busy_port_is_reported_before_anything_is_announced(
    tmp_path: Path, free_port: int
) -> None:
    import socket

    log = tmp_path / "run.log"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", free_port))
        taken.listen()
        proc = _start(free_port, log)
        proc.wait(timeout=60)
    out = log.read_text()
    assert proc.returncode == 2, out
    assert out.startswith(f"quotegate run: port {free_port} on 127.0.0.1 is already in use"), out
    assert "--port" in out
    for announced in ("open http", "API key", "startup", "Errno"):
        assert announced not in out, out


def test_flags_win_over_environment_over_defaults() -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    env = {"QUOTEGATE_PORT": "9001", "QUOTEGATE_RATE": "5", "QUOTEGATE_FEED": "none"}
    s = settings(parser.parse_args(["--port", "9002"]), env)
    assert s["port"] == 9002 and s["rate"] == 5.0 and s["feed"] == "none"
    assert s["journal"] is None and s["fsync"] == "interval" and s["gc_threshold"] == 50_000
    assert s["candles_retention_s"] == "1s=86400"
    kept = settings(parser.parse_args([]), {"QUOTEGATE_CANDLES_RETENTION_S": "1m=60"})
    assert kept["candles_retention_s"] == "1m=60"
    assert s["finished_orders_max"] == 1_000_000 and s["executions_max"] == 100_000
    assert s["transports"] == "ws,sse,poll"
    env_only = settings(parser.parse_args([]), {"QUOTEGATE_TRANSPORTS": "sse,poll"})
    assert env_only["transports"] == "sse,poll"
    flag = settings(parser.parse_args(["--transports", "poll"]), {"QUOTEGATE_TRANSPORTS": "ws"})
    assert flag["transports"] == "poll"


def test_unknown_transport_exits_2(tmp_path: Path, free_port: int) -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--transports", "ws,carrier-pigeon", "--port", str(free_port)])
    assert run(args) == 2


def test_journal_publisher_and_store_flags() -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    env = {
        "QUOTEGATE_JOURNAL": "env.log",
        "QUOTEGATE_FSYNC": "every",
        "QUOTEGATE_CONFLATE_MS": "book=100,ticker=250",
        "QUOTEGATE_HISTORY_MAX": "300",
        "QUOTEGATE_STORE_FLUSH_INTERVAL_MS": "25",
    }
    args = parser.parse_args(
        ["--journal", "flag.log", "--fsync-interval-ms", "2.5", "--book-depth", "10"]
    )
    s = settings(args, env)
    assert s["journal"] == "flag.log" and s["fsync"] == "every"
    assert s["fsync_interval_ms"] == 2.5 and s["book_depth"] == 10
    assert s["conflate_ms"] == "book=100,ticker=250" and s["history_max"] == 300
    assert s["store_flush_interval_ms"] == 25
    with pytest.raises(SystemExit):
        parser.parse_args(["--fsync", "sometimes"])
    with pytest.raises(ValueError, match="QUOTEGATE_HISTORY_MAX"):
        settings(parser.parse_args([]), {"QUOTEGATE_HISTORY_MAX": "lots"})
    assert s["host"] == "127.0.0.1" and s["symbols"] == "AAPL,MSFT,TSLA"
    with pytest.raises(ValueError, match="QUOTEGATE_PORT"):
        settings(parser.parse_args([]), {"QUOTEGATE_PORT": "abc"})


@pytest.mark.parametrize(
    "bad",
    [
        ["--conflate-ms", "book=fast"],
        ["--history-max", "0"],
        ["--gc-threshold", "-1"],
        ["--candles-retention-s", "7s=60"],
        ["--candles-retention-s", "1s=0"],
        ["--finished-orders-max", "-5"],
    ],
)
def test_bad_publisher_or_store_values_exit_2(
    bad: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert run(parser.parse_args(["--feed", "none", "--candles-db", ":memory:", *bad])) == 2
    assert capsys.readouterr().err.startswith("quotegate run: ")
