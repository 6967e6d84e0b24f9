"""``quotegate run`` with a journal: restart to the identical state, epoch kept, torn tail cut."""

from __future__ import annotations

import asyncio
import gc
import logging
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from starlette.applications import Starlette

from engine.commands import DefineInstrument
from engine.journal import FsyncPolicy, scan
from gateway.edge.routes_orders import routes
from gateway.marketdata.publisher import PublisherConfig
from gateway.roots.embedded import EmbeddedRuntime, embedded_services
from gateway.roots.embedded_config import EmbeddedConfig
from gateway.roots.run_journal import RunJournal, RunJournalConfig

KEY = "journal-test-key-0123456789"
SYMBOLS = ["AAPL", "MSFT"]


def _config(path: Path, fsync: FsyncPolicy = "interval", **kw: Any) -> EmbeddedConfig:
    base: dict[str, Any] = {
        "symbols": SYMBOLS,
        "feed": "none",
        "demo_api_key": KEY,
        "journal": RunJournalConfig(path=str(path), fsync=fsync),
    }
    base.update(kw)
    return EmbeddedConfig(**base)


def _append(path: Path, data: bytes) -> None:
    with open(path, "ab") as f:
        f.write(data)


def _listing(path: Path) -> list[Path]:
    return list(path.iterdir())


async def _order(runtime: EmbeddedRuntime, **fields: Any) -> list[dict[str, Any]]:
    assert runtime.services.orders is not None
    body = {"symbol": "AAPL", "type": "limit", "qty": 5, **fields}
    return await runtime.services.orders.submit("demo", body)


async def _state(runtime: EmbeddedRuntime) -> dict[str, Any]:
    book = await runtime.store.snapshot("book.AAPL")
    ticker = await runtime.store.snapshot("ticker.AAPL")
    trades = await runtime.store.snapshot("trades.AAPL")
    mine = await runtime.store.snapshot("orders.demo")
    candles = await runtime.store.snapshot("candles.AAPL.1m")
    assert book is not None and ticker is not None and trades is not None and mine is not None
    assert candles is not None
    assert runtime.services.orders is not None
    return {
        "hash": runtime.engine.state_hash(),
        "in_seq": runtime.engine.in_seq,
        "epoch": runtime.publisher.epoch,
        "book": (book.seq, book.data()),
        "book_bytes": book.payload,
        "ticker": (ticker.seq, ticker.data()),
        "trades": (trades.seq, trades.data()),
        "orders": (mine.seq, mine.data()),
        "candles": (candles.seq, candles.data()),
        "account": await runtime.services.orders.account("demo"),
    }


async def test_restart_restores_engine_publisher_and_epoch(tmp_path: Path) -> None:
    path = tmp_path / "j" / "journal.log"
    runtime = await embedded_services(_config(path))
    try:
        await _order(runtime, side="buy", price="10.00", clientOrderId="keep")
        await _order(runtime, side="sell", price="10.50")
        await _order(runtime, side="sell", price="9.90", qty=2)  # trades against "keep"
        before = await _state(runtime)
        history = await runtime.store.resume("book.AAPL", runtime.publisher.epoch, 0)
    finally:
        await runtime.close()
    assert before["trades"][1]["trades"], "a trade happened"
    assert before["candles"][1]["candles"], "and made a candle"

    again = await embedded_services(_config(path))
    try:
        after = await _state(again)
        assert after == before  # same engine hash, snapshots (data and seq), epoch, balances
        # the replayed history is in the store: a client resumes across the restart
        resumed = await again.store.resume("book.AAPL", before["epoch"], 0)
        assert resumed.snapshot is None
        assert [e.payload for e in resumed.updates] == [e.payload for e in history.updates]
        assert again.services.orders is not None
        order = await again.services.orders.order_by_client("demo", "keep")
        assert order is not None and order["status"] == "partially_filled"
        # no setup was repeated: the demo deposit is not credited twice
        assert again.engine.in_seq == before["in_seq"]
        await _order(again, side="buy", price="9.00")
        assert again.engine.in_seq == before["in_seq"] + 1
    finally:
        await again.close()
    assert scan(path).last_in_seq == before["in_seq"] + 1


async def test_replayed_history_is_bounded_by_history_max(tmp_path: Path) -> None:
    path = tmp_path / "journal.log"
    runtime = await embedded_services(_config(path, fsync="every", store_history_max=3))
    try:
        for i in range(6):
            await _order(runtime, side="buy", price=f"{10 + i}.00")
        seq = runtime.publisher.seq("book.AAPL")
        assert seq is not None
        live = await runtime.store.resume("book.AAPL", runtime.publisher.epoch, seq - 3)
    finally:
        await runtime.close()
    assert seq == 6 and len(live.updates) == 3
    again = await embedded_services(_config(path, fsync="every", store_history_max=3))
    try:
        epoch = again.publisher.epoch
        resumed = await again.store.resume("book.AAPL", epoch, seq - 3)
        assert [e.payload for e in resumed.updates] == [e.payload for e in live.updates]
        too_old = await again.store.resume("book.AAPL", epoch, seq - 4)
        assert too_old.snapshot is not None and too_old.snapshot.seq == seq
    finally:
        await again.close()


def _http(runtime: EmbeddedRuntime) -> httpx.AsyncClient:
    app = Starlette(routes=routes())
    app.state.services = runtime.services
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://test",
        headers={"Authorization": f"Bearer {KEY}"},
    )


async def test_rest_order_is_open_after_restart(tmp_path: Path) -> None:
    path = tmp_path / "journal.log"
    body = {"symbol": "AAPL", "side": "buy", "type": "limit", "price": "10.00", "qty": 5}
    runtime = await embedded_services(_config(path, fsync="never"))
    try:
        async with _http(runtime) as http:
            placed = await http.post("/v1/order", json={**body, "clientOrderId": "b1"})
            assert placed.status_code == 200, placed.text
            order_id = placed.json()["order"]["orderId"]
    finally:
        await runtime.close()
    again = await embedded_services(_config(path, fsync="never"))
    try:
        seen: list[bytes] = []
        again.bus.add_listener(lambda env: seen.append(env.payload))
        assert seen == []  # the replay was not published on the bus
        async with _http(again) as http:
            got = await http.get(f"/v1/order/{order_id}")
            assert got.status_code == 200, got.text
            assert got.json()["clientOrderId"] == "b1" and got.json()["status"] == "new"
            listed = await http.get("/v1/orders", params={"status": "open"})
            assert [o["orderId"] for o in listed.json()["orders"]] == [order_id]
            # it is live: a new sell fills it
            sold = await http.post("/v1/order", json={**body, "side": "sell"})
            assert sold.status_code == 200, sold.text
            got = await http.get(f"/v1/order/{order_id}")
            assert got.json()["status"] == "filled"
        assert seen, "live updates reach the bus"
    finally:
        await again.close()


async def test_torn_tail_is_cut_with_a_log_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "journal.log"
    runtime = await embedded_services(_config(path))
    try:
        await _order(runtime, side="buy", price="10.00")
        good = runtime.engine.state_hash()
    finally:
        await runtime.close()
    _append(path, b'0badc0de {"inSeq":99,"ts":1,"cmd":{"op":"dep')  # a write torn by a crash
    with caplog.at_level(logging.WARNING, logger="quotegate.journal"):
        again = await embedded_services(_config(path))
    try:
        assert again.journal is not None and again.journal.cut_bytes > 0
        assert "cut a torn tail" in caplog.text
        assert again.engine.state_hash() == good
    finally:
        await again.close()
    assert scan(path).bad_bytes == 0


async def test_without_a_journal_nothing_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    epochs = set()
    for _ in range(2):
        runtime = await embedded_services(
            EmbeddedConfig(symbols=SYMBOLS, feed="none", demo_api_key=KEY)
        )
        try:
            assert runtime.journal is None
            await _order(runtime, side="buy", price="10.00")
            epochs.add(runtime.publisher.epoch)
        finally:
            await runtime.close()
    assert _listing(tmp_path) == []
    assert len(epochs) == 2  # a fresh epoch per start


async def test_synthetic_feed_restarts_without_rejections(tmp_path: Path) -> None:
    path = tmp_path / "journal.log"
    rejected: list[bytes] = []

    async def run_once() -> EmbeddedRuntime:
        runtime = EmbeddedRuntime(_config(path, feed="synthetic", rate_orders_per_s=2000))
        runtime.bus.add_listener(
            lambda env: rejected.append(env.payload) if b'"rejected"' in env.payload else None
        )
        await runtime.start()
        assert runtime.feed is not None
        for _ in range(500):
            if runtime.feed.submitted > 300:
                break
            await asyncio.sleep(0.01)
        await runtime.close()
        return runtime

    first = await run_once()
    second = await run_once()
    assert second.restored_commands == first.engine.in_seq
    assert second.feed is not None and second.feed.submitted > 300 and second.feed.errors == 0
    assert rejected == []  # no duplicate client order id, no re-definition
    # the restarted feed's orders carry the run's prefix; the old quotes were cancelled
    prefix = f"r{first.engine.in_seq}."
    open_coids = [o.client_order_id for o in second.engine.orders.open_orders("mm1")]
    assert open_coids and all(c.startswith(prefix) for c in open_coids)


async def test_epoch_kept_with_journal_new_when_conflated(tmp_path: Path) -> None:
    path = tmp_path / "journal.log"
    epochs = []
    for conflate in (0, 0, 100):
        cfg = _config(path, publisher=PublisherConfig(conflate_ms={"book": conflate}))
        runtime = await embedded_services(cfg)
        try:
            await _order(runtime, side="buy", price="10.00")
            epochs.append(runtime.publisher.epoch)
        finally:
            await runtime.close()
    assert epochs[0] == epochs[1] != epochs[2]
    saved = (tmp_path / "journal.log.epoch").read_text().splitlines()
    assert saved[0] == epochs[2] and saved[1].startswith("clean ")


def _crash(runtime: EmbeddedRuntime) -> None:
    """What a kill -9 leaves behind, minus the lost tail: the journal file as written so far
    and the epoch file as the run left it (no clean-shutdown mark)."""
    assert runtime.journal is not None
    runtime.journal.journal.close()  # the low-level journal: no mark


@pytest.mark.parametrize("fsync", ["interval", "never", "every"])
async def test_epoch_after_a_crash_is_new_unless_every_command_was_synced(
    tmp_path: Path, fsync: FsyncPolicy
) -> None:
    path = tmp_path / "journal.log"
    first = await embedded_services(_config(path, fsync))
    await _order(first, side="buy", price="10.00")
    epoch = first.publisher.epoch
    _crash(first)
    await first.close()  # (the journal is closed already: no mark is written)
    assert len((tmp_path / "journal.log.epoch").read_text().splitlines()) == 1
    second = await embedded_services(_config(path, fsync))
    try:
        assert second.journal is not None
        if fsync == "every":  # every published update was on the disk first
            assert second.publisher.epoch == epoch, second.journal.epoch_reason
        else:
            assert second.publisher.epoch != epoch
            assert "no clean shutdown" in second.journal.epoch_reason
            resumed = await second.store.resume("book.AAPL", epoch, 1)
            assert resumed.snapshot is not None  # old positions get a snapshot
    finally:
        await second.close()
    third = await embedded_services(_config(path, fsync))  # after a clean stop: kept
    try:
        assert third.publisher.epoch == second.publisher.epoch
        assert third.journal is not None and "clean shutdown" in third.journal.epoch_reason
    finally:
        await third.close()


def test_a_stale_clean_mark_does_not_keep_the_epoch(tmp_path: Path) -> None:
    path = tmp_path / "j.log"
    journal = RunJournal(RunJournalConfig(path=str(path)))
    journal.journal.append(1, 1, DefineInstrument(symbol="AAPL", tick="0.01", lot=1))
    first = journal.epoch(reuse=True)  # no records at open: new
    asyncio.run(journal.close())
    assert (tmp_path / "j.log.epoch").read_text() == f"{first}\nclean 1\n"
    again = RunJournal(RunJournalConfig(path=str(path)))
    again.journal.append(2, 2, DefineInstrument(symbol="MSFT", tick="0.01", lot=1))
    asyncio.run(again.close())  # never asked for the epoch: the file is not touched
    third = RunJournal(RunJournalConfig(path=str(path)))
    try:
        assert third.epoch() != first  # the mark names inSeq 1, the journal ends at 2
        assert "inSeq 1" in third.epoch_reason
    finally:
        asyncio.run(third.close())


async def test_gc_is_frozen_while_running_and_restored_at_close(tmp_path: Path) -> None:
    saved = gc.get_threshold()
    runtime = await embedded_services(_config(tmp_path / "j.log", gc_threshold=12_345))
    try:
        assert gc.get_threshold()[0] == 12_345
        assert gc.get_freeze_count() > 0
    finally:
        await runtime.close()
    assert gc.get_threshold() == saved


def test_journal_config_is_checked(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="fsync"):
        RunJournalConfig(path="x", fsync="sometimes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="path"):
        RunJournalConfig(path="")
    with pytest.raises(ValueError, match="gc_threshold"):
        EmbeddedConfig(gc_threshold=-1)
    journal = RunJournal(RunJournalConfig(path=str(tmp_path / "new.log")))
    try:
        assert journal.restored_records == 0 and journal.coid_prefix == ""
        first = journal.epoch()
        assert journal.epoch() != first  # no records: nothing to keep
    finally:
        asyncio.run(journal.close())


@pytest.mark.redis
async def test_restart_with_redis_keeps_history_and_epoch(tmp_path: Path, redis_url: str) -> None:
    path = tmp_path / "journal.log"
    cfg = _config(path, redis_url=redis_url, store_flush_interval_ms=5)
    runtime = await embedded_services(cfg)
    try:
        for i in range(3):
            await _order(runtime, side="buy", price=f"{10 + i}.00")
        await runtime.store.flush()
        epoch = runtime.publisher.epoch
        before = await runtime.store.resume("book.AAPL", epoch, 0)
        snap = await runtime.store.snapshot("book.AAPL")
    finally:
        await runtime.close()
    assert snap is not None and len(before.updates) == snap.seq == 3
    again = await embedded_services(cfg)
    try:
        assert again.publisher.epoch == epoch
        await again.store.flush()
        after = await again.store.resume("book.AAPL", epoch, 0)
        assert [e.payload for e in after.updates] == [e.payload for e in before.updates]
        again_snap = await again.store.snapshot("book.AAPL")
        assert again_snap is not None and again_snap.payload == snap.payload
    finally:
        await again.close()


async def test_replay_feed_restarts_without_collisions_or_double_deposits(tmp_path: Path) -> None:
    def new(account: str, side: str, qty: int) -> dict[str, Any]:
        return {"op": "new", "account": account, "clientOrderId": "1", "symbol": "XYZ",
                "side": side, "type": "limit", "price": "5.5", "qty": qty}  # fmt: skip

    lines = [
        {"op": "instrument", "symbol": "XYZ", "tick": "0.5", "lot": 10},
        {"op": "deposit", "account": "a", "asset": "USD", "amount": "1000.00"},
        {"op": "deposit", "account": "b", "asset": "XYZ", "amount": 100},
        new("b", "sell", 20),
        new("a", "buy", 10),
    ]
    cmds = tmp_path / "cmds.jsonl"
    cmds.write_bytes(b"\n".join(orjson.dumps(x) for x in lines))
    cfg = _config(
        tmp_path / "journal.log", symbols=[], feed="replay", replay_file=str(cmds), replay_speed=0
    )
    rejected: list[bytes] = []
    for _ in range(2):
        runtime = EmbeddedRuntime(cfg)
        runtime.bus.add_listener(
            lambda env: rejected.append(env.payload) if b'"rejected"' in env.payload else None
        )
        await runtime.start()
        try:
            assert runtime.feed is not None
            await asyncio.wait_for(runtime.feed.finished.wait(), 20)  # type: ignore[union-attr]
        finally:
            await runtime.close()
    assert rejected == []
    # the second run's "b/1" is a new order (prefixed): the first run's "b/1" filled first
    prefix = f"r{runtime.restored_commands}."
    open_b = runtime.engine.orders.open_orders("b")
    assert [(o.client_order_id, o.open_qty) for o in open_b] == [(prefix + "1", 20)]
    trades = await runtime.store.snapshot("trades.XYZ")
    assert trades is not None and len(trades.data()["trades"]) == 2
    balances = await runtime.order_service.account("a")
    assert balances["balances"]["USD"]["available"] == "890.00"  # deposited once, paid twice


async def test_a_failed_journal_refuses_commands(tmp_path: Path) -> None:
    runtime = await embedded_services(_config(tmp_path / "journal.log"))
    try:
        async with _http(runtime) as http:
            body = {"symbol": "AAPL", "side": "buy", "type": "limit", "price": "10.00", "qty": 1}
            assert (await http.post("/v1/order", json=body)).status_code == 200
            assert runtime.journal is not None
            runtime.journal.journal.close()  # as if the disk went away
            for _ in range(2):
                refused = await http.post("/v1/order", json=body)
                assert refused.status_code == 503
                assert refused.json()["error"]["code"] == "unavailable"
        assert runtime.journal_error is not None
    finally:
        await runtime.close()
