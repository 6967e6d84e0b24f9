"""``quotegate bench fanout`` end to end on a handful of clients for about a second per server:
every server kind delivers, the clients count and time what they get (no timing asserted).

The runs of one test go side by side in threads (each run is its own server and client
processes), so that the seven server kinds cost a few seconds, not half a minute."""

from __future__ import annotations

import argparse
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from loadtest import bench_fanout
from loadtest.bench_fanout import FanoutBenchConfig, plan, run_one

TINY = FanoutBenchConfig(
    clients=4, many_clients=6, symbols=4, duration_s=1.0, warmup_s=0.3, rate_msgs_per_s=50.0,
    channels_rate_msgs_per_s=40.0, poll_wait_s=1.0,
)  # fmt: skip


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    bench_fanout.add_arguments(parser)
    return parser.parse_args(list(argv))


def side_by_side(runs: list[tuple[str, str]]) -> list[dict[str, Any]]:
    with ThreadPoolExecutor(len(runs)) as pool:
        return list(pool.map(lambda r: run_one(TINY, plan(TINY, *r)), runs))


def test_every_server_delivers_counts_and_times_messages() -> None:
    results = side_by_side([(server, "steady") for server in bench_fanout.SERVERS])
    for r in results:
        assert "error" not in r, r
        assert r["connected"] == TINY.clients and r["failed"] == 0, r
        assert r["published_per_s"] > 0 and r["delivered"] > 0, r
        # every client got every message of the window, or nearly: the window's edges cut
        # messages in flight, nothing is lost or repeated
        assert r["delivered_per_s"] >= 0.5 * r["expected_per_s"], r
        assert r["lost"] == 0 and r["repeated"] == 0 and r["closed"] == 0, r
        assert r["p50_ms"] is not None and 0 < r["p50_ms"] <= r["p99_ms"] <= r["max_ms"], r
        # /proc counts CPU in 10 ms ticks: a light second may show none
        assert r["server_cpu_pct"] >= 0 and r["cpu_us_per_msg"] is not None, r
        assert r["server_rss_mb"] > 0, r


def test_channels_and_memory_scenarios() -> None:
    runs = [("quotegate-ws", "channels"), ("quotegate-sse", "channels"),
            ("quotegate-ws", "memory"), ("websockets", "memory")]  # fmt: skip
    channels_ws, channels_sse, memory_ws, memory_lib = side_by_side(runs)
    for r in (channels_ws, channels_sse):
        assert "error" not in r, r
        assert r["connected"] == TINY.many_clients and r["delivered"] > 0, r
        assert r["lost"] == 0 and r["repeated"] == 0, r
    for r in (memory_ws, memory_lib):
        assert "error" not in r, r
        assert r["rss_subscribed_mb"] >= r["rss_empty_mb"] > 0, r
        assert r["subscribed_kb_per_conn"] is not None, r


def test_plan_spreads_channels_and_counts_expected_deliveries() -> None:
    p = plan(TINY, "websockets", "channels")
    assert len(p.channels) == 2 * TINY.symbols and len(p.channel_sets) == TINY.many_clients
    for chosen in p.channel_sets:
        assert 2 <= len(chosen) <= 2 * TINY.symbols and len(chosen) % 2 == 0
        assert set(chosen) <= set(p.channels)
    assert bench_fanout.expected_per_message(p) == sum(map(len, p.channel_sets)) / len(p.channels)
    steady = plan(TINY, "quotegate-ws", "steady")
    assert bench_fanout.expected_per_message(steady) == TINY.clients


def test_command_line_run_prints_table_and_writes_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "fanout.json"
    argv = ["--servers", "quotegate-ws", "--scenarios", "steady", "--clients", "2",
            "--duration-s", "0.5", "--warmup-s", "0.2", "--json", str(out)]  # fmt: skip
    assert bench_fanout.run(parse(*argv)) == 0
    printed = capsys.readouterr().out
    assert "delivered/s" in printed and "quotegate-ws" in printed
    result = json.loads(out.read_text())
    (run,) = result["runs"]
    assert run["server"] == "quotegate-ws" and run["delivered"] > 0
    assert result["summary"][0]["delivered_per_s"] == run["delivered_per_s"]


def test_bad_arguments_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert bench_fanout.run(parse("--servers", "nginx")) == 2
    assert bench_fanout.run(parse("--clients", "0", "--client-cpus", "x")) == 2
    err = capsys.readouterr().err
    assert "unknown 'nginx'" in err and "--clients must be at least 1" in err
    assert "--client-cpus" in err
