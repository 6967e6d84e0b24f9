"""The reporter against real databases (SQLite file, PostgreSQL server from the fixtures):
rows equal the engine's state, replays are no-ops, batches are atomic."""

from __future__ import annotations

import asyncio
import random

from gateway.metrics import Metrics
from gateway.reporting.database import open_database
from gateway.reporting.history import ORDER_COLUMNS, order_json
from gateway.reporting.reconcile import reconcile
from gateway.reporting.records import QueueSource
from gateway.reporting.reporter import Reporter, ReporterConfig, rebuild_order
from tests.gateway.reporting.support import dump, engine_orders, history, wallet_totals


def reporter(url: str, *, batch: int = 500, stream: str = "s1") -> Reporter:
    return Reporter(
        ReporterConfig(
            database_url=url, stream=stream, batch_max_records=batch, flush_interval_ms=0
        )
    )


async def test_rows_equal_the_engine_state(report_db_url: str) -> None:
    engine, offers = history(3000)
    rep = reporter(report_db_url)
    await rep.open()
    try:
        # batches of random sizes: the order folding must not depend on where a batch ends
        rng = random.Random(3)
        i = 0
        while i < len(offers):
            n = rng.randint(1, 60)
            await rep.write(offers[i : i + n])
            i += n
        assert rep.last_in_seq == engine.in_seq and rep.last_seq == engine.out_seq
        rows = await rep.db.fetch(
            f"SELECT {ORDER_COLUMNS} FROM orders WHERE stream = $1 ORDER BY order_id", rep.stream
        )
        assert [order_json(r) for r in rows] == engine_orders(engine)
        assert {o["status"] for o in engine_orders(engine)} >= {"new", "filled", "cancelled"}
        trades = await rep.db.fetch("SELECT COUNT(*) FROM executions")
        assert trades[0][0] > 100
        assert await reconcile(rep.db, rep.stream, wallet_totals(engine)) == []
    finally:
        await rep.close()


async def test_replaying_the_same_events_leaves_the_same_rows(report_db_url: str) -> None:
    _, offers = history(1500)
    rep = reporter(report_db_url)
    await rep.open()
    try:
        await rep.write(offers)
        first = await dump(rep.db)
        assert len(first["order_events"]) > 1000
        await rep.write(offers)  # the same events again, same process
        assert await dump(rep.db) == first
    finally:
        await rep.close()
    again = reporter(report_db_url, batch=37)  # a new reporter, other batch boundaries
    await again.open()
    try:
        await again.write(offers)
        assert await dump(again.db) == first
    finally:
        await again.close()


class FailingDatabase:
    """The real database, with the n-th transaction raising after half its statements ran
    (inside the transaction): the failure between two writes of one batch."""

    def __init__(self, url: str, fail_at: int) -> None:
        self.inner = open_database(url)
        self.url = url
        self.fail_at = fail_at
        self.calls = 0

    async def open(self) -> None:
        await self.inner.open()

    async def close(self) -> None:
        await self.inner.close()

    async def fetch(self, sql: str, *args: object) -> list[tuple[object, ...]]:
        return await self.inner.fetch(sql, *args)

    async def transaction(self, statements: list[tuple[str, list[tuple[object, ...]]]]) -> None:
        self.calls += 1
        if self.calls == self.fail_at:
            half = [s for s in statements if s[1]][:3]
            await self.inner.transaction([*half, ("SELECT * FROM no_such_table", [()])])
        await self.inner.transaction(statements)


async def test_a_failed_batch_is_retried_whole_by_the_task(report_db_url: str) -> None:
    engine, offers = history(800)
    clean = reporter(report_db_url, stream="clean")
    await clean.open()
    await clean.write(offers)
    await clean.close()

    db = FailingDatabase(report_db_url, fail_at=3)
    source = QueueSource()
    rep = Reporter(
        ReporterConfig(
            database_url=report_db_url,
            stream="s1",
            batch_max_records=200,
            flush_interval_ms=0,
            retry_interval_ms=10,
        ),
        source=source,
        database=db,  # type: ignore[arg-type]
        head=lambda: engine.out_seq,
    )
    await rep.start()
    try:
        for offer in offers:
            source.offer(offer)
        assert await rep.drain(20)
        assert rep.write_errors == 1
        assert rep.lag_events() == 0
        # the retried stream's rows are the clean stream's rows, row for row
        tables = await dump(rep.db)
        del tables["candles"], tables["streams"]
        rows = {t: [r for r in rs if r[0] == rep.stream] for t, rs in tables.items()}
        clean_rows = {
            t: [(rep.stream, *r[1:]) for r in rs if r[0] != rep.stream] for t, rs in tables.items()
        }
        assert len(rows["executions"]) > 50
        assert rows == clean_rows
    finally:
        await rep.close()


def test_the_queue_refuses_past_its_capacity_and_keeps_a_prefix() -> None:
    q = QueueSource(capacity=10)
    for i in range(3):
        q.offer([i, i, i])  # type: ignore[list-item]
    q.offer([9, 9])  # type: ignore[list-item]  # 11 > 10: refused, and so is everything after
    q.offer([7])  # type: ignore[list-item]
    assert q.overflowed and q.dropped == 3 and q.pending == 9


def test_the_queue_hands_out_whole_offers() -> None:
    async def main() -> None:
        q = QueueSource(capacity=100)
        for n in (3, 4, 5, 20):
            q.offer([0] * n)  # type: ignore[list-item]
        assert [len(o) for o in await q.take(8)] == [3, 4]  # 3 + 4 <= 8 < 3 + 4 + 5
        assert [len(o) for o in await q.take(8)] == [5]
        assert [len(o) for o in await q.take(8)] == [20]  # larger than the limit: alone
        assert q.pending == 0
        q.close()
        assert await q.take(8) == []

    asyncio.run(main())


def test_an_order_is_rebuilt_from_its_events() -> None:
    events = [
        (10, "accepted", "5.00", 10, 100),
        (12, "trade", "5.00", 4, 101),
        (15, "replaced", "5.10", 3, 102),
        (18, "trade", "5.10", 1, 103),
    ]
    assert rebuild_order(events) == ("5.10", 7, 2, 5, 103, 18)
    assert rebuild_order([*events, (20, "cancelled", None, 2, 104)]) == (
        "5.10", 7, 0, 5, 104, 20,
    )  # fmt: skip
    assert rebuild_order(events[1:]) is None


def test_metrics_read_the_reporter() -> None:
    class Status:
        def lag_events(self) -> int:
            return 12

        def pending_records(self) -> int:
            return 3

        def dropped_records(self) -> int:
            return 0

    metrics = Metrics()
    metrics.watch_reporter(Status())
    assert metrics.value("quotegate_reporter_lag_events") == 12
    assert metrics.value("quotegate_reporter_pending_records") == 3
    assert b"quotegate_reporter_dropped_records 0.0" in metrics.render()[0]
