"""``kill -9`` of ``quotegate run --journal`` under load, for each fsync policy, then a restart.

A client follows ``book``, ``trades`` and ``ticker`` of the symbol, checking every seq and the
book checksum; the server is SIGKILLed mid-stream and started again on the same journal; the
client resumes with its old positions (``since``). What it may see, per channel: the updates
after its position under the same epoch, with the book checksum verifying and every trade the
server still shows equal to the one the client holds; or a snapshot (a new epoch after a crash
that may have lost published commands). Never a silent divergence: the same epoch and seq with
other content.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import connect

from tests.faults.harness import Client, Quotegate, read_ws, read_ws_until, subscribe_op

pytestmark = pytest.mark.slow

CHANNELS = ["book.AAPL", "trades.AAPL", "ticker.AAPL"]


@pytest.mark.parametrize("fsync", ["every", "interval", "never"])
async def test_kill9_then_restart_never_contradicts_a_published_history(
    tmp_path: Path, fsync: str
) -> None:
    journal = tmp_path / "journal.log"
    rate = "300" if fsync == "every" else "1000"  # (one disk sync per command)
    args = ("--journal", str(journal), "--fsync", fsync, "--symbols", "AAPL", "--rate", rate)
    first = Quotegate(tmp_path / "first.log", *args).start()
    client = Client()
    try:
        async with connect(first.ws_url, max_size=None) as ws:
            await ws.send(subscribe_op(CHANNELS))
            await read_ws_until(ws, client, 200, 6.0)
            first.kill9()  # mid-stream, with the feed running
            await read_ws(ws, client, 0.5)  # whatever was still on its way
    finally:
        first.kill9()
    assert client.updates >= 200, "no load before the crash"
    assert not client.gaps and not client.checksum_mismatches
    before = dict(client.positions)
    assert set(before) == set(CHANNELS)

    second = Quotegate(tmp_path / "second.log", *args).start()
    try:
        client.resume_marker()
        async with connect(second.ws_url, max_size=None) as ws:
            await ws.send(subscribe_op(CHANNELS, since=before))
            await read_ws_until(ws, client, 100, 6.0)
        async with httpx.AsyncClient(base_url=second.base) as http:
            fresh = (await http.get("/v1/marketdata/trades?symbol=AAPL&limit=50")).json()
    finally:
        second.kill9()  # (its clean stop is not what this test is about)

    for ch in CHANNELS:
        first_msg = client.first_after_resume.get(ch)
        assert first_msg is not None, f"nothing on {ch} after the resume"
        old_epoch, old_seq = before[ch]
        if first_msg["type"] == "update":
            # a continuation: same epoch, the very next seq
            assert (first_msg["epoch"], first_msg["seq"]) == (old_epoch, old_seq + 1), ch
        else:
            assert first_msg["type"] == "snapshot"
            if first_msg["epoch"] == old_epoch:  # same history, only too far back
                assert first_msg["seq"] >= old_seq, ch
    # continuing or restarting, the client's copy is the server's
    assert not client.checksum_mismatches, client.checksum_mismatches[:5]
    held = client.trades["trades.AAPL"]
    for trade in fresh["trades"]:
        mine = held.get(trade["id"])
        assert mine is None or mine == trade, f"trade {trade['id']}: {mine} != {trade}"
    if fsync == "every":  # every published update was on the disk: the epoch is kept
        assert all(client.first_after_resume[ch]["epoch"] == before[ch][0] for ch in CHANNELS)
    else:  # the crash may have lost published commands: a new epoch, and snapshots
        assert all(client.first_after_resume[ch]["epoch"] != before[ch][0] for ch in CHANNELS)
    assert "Traceback" not in second.log_text()


async def test_clean_stop_keeps_the_epoch_and_clients_continue(tmp_path: Path) -> None:
    journal = tmp_path / "journal.log"
    args = ("--journal", str(journal), "--symbols", "AAPL", "--rate", "500")
    first = Quotegate(tmp_path / "first.log", *args).start()
    client = Client()
    try:
        async with connect(first.ws_url, max_size=None) as ws:
            await ws.send(subscribe_op(CHANNELS))
            await read_ws_until(ws, client, 100, 5.0)
    finally:
        first.stop()  # SIGTERM: the journal is synced and the shutdown marked clean
    before = dict(client.positions)
    second = Quotegate(tmp_path / "second.log", *args).start()
    try:
        client.resume_marker()
        async with connect(second.ws_url, max_size=None) as ws:
            await ws.send(subscribe_op(CHANNELS, since=before))
            await read_ws_until(ws, client, 100, 5.0)
    finally:
        second.kill9()
    for ch in CHANNELS:
        assert client.first_after_resume[ch]["epoch"] == before[ch][0], ch
    assert not client.gaps and not client.checksum_mismatches
