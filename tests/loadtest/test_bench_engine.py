"""``quotegate bench engine``: a tiny run; the output's shape, not its speed."""

from __future__ import annotations

import gc
from pathlib import Path

import orjson
import pytest

from gateway.roots.cli import main
from loadtest.bench_engine import PHASES, EngineBenchConfig, run_bench, tail_by_events

TINY = ["--commands", "3000", "--symbols", "4", "--accounts", "3", "--resting", "1500"]


def test_all_phases_report_their_figures() -> None:
    lines: list[str] = []
    config = EngineBenchConfig(
        commands=3_000, symbols=4, accounts=3, resting_orders=1_500, profile=True, repeat=2
    )
    threshold = gc.get_threshold()
    results = run_bench(config, lines.append)
    assert gc.get_threshold() == threshold and gc.isenabled()  # the GC is given back
    assert gc.get_freeze_count() == 0
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
    for word in ["throughput", "latency", "replay", "resting", "tottime", "gc tuned", "gc default"]:
        assert word in text
    # both GC settings, each the median and best of the repeats; the flat keys are the first's
    assert set(results["gc_modes"]) == {"tuned", "default"} and results["gc"] == "tuned"
    for figures in results["gc_modes"].values():
        for key in [
            "throughput_journal_cmd_s",
            "throughput_no_journal_cmd_cpu_s",
            "replay_lines_s",
        ]:
            runs = figures[f"{key}_runs"]
            assert len(runs) == 2 and min(runs) <= figures[key] <= figures[f"{key}_best"]
            assert figures[f"{key}_best"] == max(runs)
        assert figures["latency_p99_us_best"] == min(figures["latency_p99_us_runs"])
    assert (
        results["throughput_journal_cmd_s"]
        == (results["gc_modes"]["tuned"]["throughput_journal_cmd_s"])
    )
    # where the tail comes from: every command is in one group, every tail command too
    groups = results["latency_by_events"]
    assert sum(g["share_pct"] for g in groups) == pytest.approx(100, abs=0.1)
    assert sum(g["tail_pct"] for g in groups) == pytest.approx(100, abs=0.1)
    assert {g["events"] for g in groups} <= {"0", "1", "2", "3", "4", "5", "6+"}
    assert "latency by events per command" in text


def test_tail_by_events_groups_commands_by_their_event_count() -> None:
    # 101 commands: 90 of one event at 1-90 us, 10 of three events at 100-109 us, and one of
    # eight events at 500 us; p99 is the sorted sample at index 99 (109 us), so the tail is
    # the slowest three-event command and the eight-event one, half each
    samples = [i * 1000 for i in range(1, 91)] + [100_000 + i * 1000 for i in range(10)]
    events = [1] * 90 + [3] * 10
    samples.append(500_000)
    events.append(8)
    groups = {g["events"]: g for g in tail_by_events(samples, events)}
    assert list(groups) == ["1", "3", "6+"]
    assert groups["1"]["share_pct"] == round(100 * 90 / 101, 2) and groups["1"]["tail_pct"] == 0
    assert groups["3"]["tail_pct"] == groups["6+"]["tail_pct"] == 50.0
    assert groups["6+"]["p50_us"] == groups["6+"]["p99_us"] == 500.0
    assert groups["1"]["p50_us"] == 46.0 and groups["3"]["p99_us"] == 109.0
    assert tail_by_events([], []) == []


def test_cli_writes_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "bench.json"
    args = ["bench", "engine", *TINY, "--phases", "throughput,replay", "--json", str(out)]
    args += ["--repeat", "1", "--gc", "off"]
    assert main(args) == 0
    results = orjson.loads(out.read_bytes())
    assert results["commands"] == 3_000 and results["symbols"] == 4
    assert "throughput_journal_cmd_s" in results and "replay_lines_s" in results
    assert "latency_p99_us" not in results and "resting_rss_mb" not in results
    assert "throughput" in capsys.readouterr().out
    assert list(results["gc_modes"]) == ["off"] and results["repeat"] == 1
    assert len(results["throughput_journal_cmd_s_runs"]) == 1


def test_bad_phase_is_an_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "engine", *TINY, "--phases", "warp"]) == 2
    assert "warp" in capsys.readouterr().err
    assert main(["bench", "engine", *TINY, "--gc", "sometimes"]) == 2
    assert "sometimes" in capsys.readouterr().err
    assert main(["bench", "engine", *TINY, "--repeat", "0"]) == 2
    assert set(PHASES) == {"resting", "throughput", "latency", "replay", "journal"}


def test_the_progress_bar_reaches_exactly_the_planned_work() -> None:
    """The bar's total is the commands every phase will process, and it advances run by run
    to exactly that total (so its ETA is the time left)."""
    from loadtest.bench_engine import planned_work
    from loadtest.progress import Progress

    config = EngineBenchConfig(
        commands=2_000,
        symbols=4,
        accounts=3,
        resting_orders=500,
        repeat=2,
        phases=PHASES,
        gc_modes=("tuned", "off"),
    )
    seen: list[int] = []
    with Progress(planned_work(config), desc="t", unit="cmd", enabled=False) as progress:
        advance = progress.advance

        def spy(n: int) -> None:
            advance(n)
            seen.append(progress.done)

        progress.advance = spy  # type: ignore[method-assign]
        run_bench(config, lambda _: None, progress=progress)
        assert progress.done == planned_work(config)
    assert len(seen) > 10 and seen == sorted(seen)  # many small steps, never backwards
