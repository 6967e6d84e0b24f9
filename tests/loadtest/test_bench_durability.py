"""``quotegate bench durability``: the commit delay is measured against real syncs."""

from __future__ import annotations

import argparse
from pathlib import Path

from loadtest.bench_durability import add_arguments, commit_delay, mark_cost, run


def test_commit_delay_covers_every_command_with_a_sync(tmp_path: Path) -> None:
    result = commit_delay(tmp_path / "j.log", rate=2000, seconds=0.2, interval_ms=5.0)
    assert result["n"] == result["commands"] == 400
    assert result["syncs"] >= 2
    # a command waits for the next hand-off (up to the interval) and the sync: never 0
    assert 0 < result["p50_ms"] <= result["max_ms"] < 1000


def test_mark_cost_and_bad_arguments(tmp_path: Path) -> None:
    cost = mark_cost(tmp_path, repeats=2)
    assert cost["start"]["n"] == cost["stop"]["n"] == 2
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert run(parser.parse_args(["--rates", "0", "--seconds", "0"])) == 2
