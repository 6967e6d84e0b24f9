"""``quotegate bench publisher`` runs end to end on a tiny stream (no timing asserted)."""

from __future__ import annotations

import argparse

import pytest

from loadtest import bench_publisher


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    bench_publisher.add_arguments(parser)
    return parser.parse_args(list(argv))


def test_small_run_reports_events_and_envelopes(capsys: pytest.CaptureFixture[str]) -> None:
    config = bench_publisher.PublisherBenchConfig(commands=3_000, symbols=5, accounts=5, repeat=1)
    result = bench_publisher.run_bench(config, log=lambda text: None)
    assert result["events"] > 3_000 and result["envelopes"] > result["events"]
    assert result["events_per_s"] > 0
    assert bench_publisher.run(parse("--commands", "1500", "--symbols", "3", "--repeat", "1",
                                     "--conflate-ms", "book=50,candles=50")) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "events/s" in out and "conflation {'book': 50, 'candles': 50}" in out


def test_bad_arguments_exit_2() -> None:
    assert bench_publisher.run(parse("--conflate-ms", "orders=5")) == 2
    assert bench_publisher.run(parse("--commands", "0")) == 2


def test_default_run_reports_unconflated_and_venue_figures(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert bench_publisher.run(parse("--commands", "1500", "--symbols", "3", "--repeat", "1")) == 0
    out = capsys.readouterr().out
    assert out.count("events/s") == 2 and "conflation off" in out
    assert "conflation {'book': 100, 'ticker': 250, 'candles': 250, 'trades': 0}" in out


def test_the_progress_reaches_exactly_the_planned_work() -> None:
    from loadtest.progress import Progress

    config = bench_publisher.PublisherBenchConfig(commands=1_500, symbols=3, accounts=3, repeat=2)
    stream = bench_publisher.generate_events(config)
    with Progress(
        bench_publisher.planned_work(config), desc="t", unit="cmd", enabled=False
    ) as progress:
        bench_publisher.run_bench(config, log=lambda _: None, stream=stream, progress=progress)
        assert progress.done == bench_publisher.planned_work(config) == 1_500 * 3
