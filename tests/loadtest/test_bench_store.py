"""``quotegate bench store`` runs end to end on a tiny stream (figures are not asserted)."""

from __future__ import annotations

import argparse

import orjson
import pytest

from loadtest import bench_store


@pytest.mark.redis
async def test_bench_store_reports_its_figures(redis_url: str) -> None:
    config = bench_store.StoreBenchConfig(
        symbols=5,
        accounts=5,
        rate_events_s=20_000,
        paced_s=0.2,
        max_events=3_000,
        reads=200,
        readers=4,
    )
    lines: list[str] = []
    results = await bench_store.run_bench(config, redis_url, log=lines.append)
    paced, fast, reads = results["paced"], results["max"], results["reads"]
    assert paced["events"] > 0 and paced["redis_commands"] > 0
    assert paced["redis_commands_per_event"] < 1  # coalesced: far fewer commands than events
    assert paced["flushes"] >= 1
    assert fast["events"] > 0 and fast["publisher_only_events_per_s"] > 0
    assert fast["cpu_us_per_event"] > 0 and "store_cpu_us_per_event" in fast
    assert reads["calls"] > 0
    assert results["redis_memory"]["keys"] > 0 and results["redis_memory"]["channels"] > 0
    assert any("Redis commands per engine event" in line for line in lines)


@pytest.mark.redis
def test_run_starts_its_own_redis_and_writes_json(tmp_path: object) -> None:
    parser = argparse.ArgumentParser()
    bench_store.add_arguments(parser)
    out = f"{tmp_path}/store.json"
    args = parser.parse_args(
        [
            "--symbols",
            "3",
            "--accounts",
            "3",
            "--seconds",
            "0.1",
            "--max-events",
            "500",
            "--reads",
            "50",
            "--readers",
            "2",
            "--json",
            out,
        ]
    )
    assert bench_store.run(args) == 0
    with open(out, "rb") as fh:
        results = orjson.loads(fh.read())
    assert results["paced"]["events"] > 0


def test_bad_arguments_exit_2() -> None:
    parser = argparse.ArgumentParser()
    bench_store.add_arguments(parser)
    assert bench_store.run(parser.parse_args(["--conflate-ms", "book=x"])) == 2
    assert bench_store.run(parser.parse_args(["--rate", "0"])) == 2


@pytest.mark.redis
async def test_bench_leaves_other_keys_alone(redis_url: str) -> None:
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(redis_url)
    try:
        await client.set("someone:else", b"keep me")
        config = bench_store.StoreBenchConfig(
            symbols=2, accounts=2, paced_s=0.05, max_events=200, reads=10, readers=1
        )
        await bench_store.run_bench(config, redis_url, log=lambda _line: None)
        assert await client.keys("*") == [b"someone:else"]
    finally:
        await client.aclose()


@pytest.mark.redis
async def test_the_progress_reaches_exactly_the_planned_work(redis_url: str) -> None:
    from loadtest.progress import Progress

    config = bench_store.StoreBenchConfig(
        symbols=3, accounts=3, rate_events_s=10_000, paced_s=0.1, max_events=1_000, reads=0
    )
    with Progress(bench_store.planned_work(config), desc="t", unit="event", enabled=False) as p:
        await bench_store.run_bench(config, redis_url, log=lambda _line: None, progress=p)
        assert p.done == bench_store.planned_work(config) == 2 * (1_000 + 1_000)
