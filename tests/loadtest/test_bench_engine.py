"""``quotegate bench engine``: a tiny run; the output's shape, not its speed."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from gateway.cli import main
from loadtest.bench_engine import PHASES, EngineBenchConfig, run_bench

TINY = ["--commands", "3000", "--symbols", "4", "--accounts", "3", "--resting", "1500"]


def test_all_phases_report_their_figures() -> None:
    lines: list[str] = []
    config = EngineBenchConfig(
        commands=3_000, symbols=4, accounts=3, resting_orders=1_500, profile=True
    )
    results = run_bench(config, lines.append)
    for key in [
        "throughput_journal_cmd_s",
        "throughput_journal_cmd_cpu_s",
        "throughput_no_journal_cmd_s",
        "throughput_no_journal_cmd_cpu_s",
        "latency_p50_us",
        "latency_p99_us",
        "latency_p99_9_us",
        "latency_max_us",
        "replay_lines_s",
    ]:
        assert isinstance(results[key], int | float), key
        assert results[key] > 0, key
    # an RSS delta of a tiny run can be anything, even negative; only its presence counts
    assert isinstance(results["resting_rss_mb"], float)
    assert isinstance(results["resting_mb_per_million"], float)
    assert results["latency_p50_us"] <= results["latency_p99_us"] <= results["latency_p99_9_us"]
    assert results["latency_p99_9_us"] <= results["latency_max_us"]
    assert results["resting_orders"] == 1_500  # none crossed, none was rejected
    assert results["resting_rejected"] == 0
    assert results["replay_lines"] == 3_000 and results["replay_events"] > 3_000 // 2
    assert results["journal_mb"] > 0
    text = "\n".join(lines)
    for word in ["throughput", "latency", "replay", "resting", "tottime"]:
        assert word in text


def test_cli_writes_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "bench.json"
    args = ["bench", "engine", *TINY, "--phases", "throughput,replay", "--json", str(out)]
    assert main(args) == 0
    results = orjson.loads(out.read_bytes())
    assert results["commands"] == 3_000 and results["symbols"] == 4
    assert "throughput_journal_cmd_s" in results and "replay_lines_s" in results
    assert "latency_p99_us" not in results and "resting_rss_mb" not in results
    assert "throughput" in capsys.readouterr().out


def test_bad_phase_is_an_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "engine", *TINY, "--phases", "warp"]) == 2
    assert "warp" in capsys.readouterr().err
    assert set(PHASES) == {"resting", "throughput", "latency", "replay"}
