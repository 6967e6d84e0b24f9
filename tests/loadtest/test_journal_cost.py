"""``quotegate bench engine --phases journal``: a tiny run; the shape of its figures, not speed."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.roots.cli import main
from loadtest.bench_engine import DEFAULT_PHASES, _throughput
from loadtest.cmdgen import CmdGenConfig, generate
from loadtest.journal_cost import SINKS, bench_journal_cost, describe


def test_every_sink_is_timed_against_no_journal(tmp_path: Path) -> None:
    commands = list(generate(CmdGenConfig(seed=3, symbols=3, accounts=3), 1_500))
    results = bench_journal_cost(
        _throughput, commands, str(tmp_path), repeat=3, fsync_interval_ms=1.0
    )
    rows = results["journal_cost"]
    assert [row["sink"] for row in rows] == list(SINKS)
    for row in rows:
        assert len(row["runs"]) == 3 and all(v > 0 for v in row["runs"])
        assert min(row["runs"]) <= row["us_per_cmd"] <= max(row["runs"])
    none = rows[0]
    assert none["over_none_us"] == 0
    for row in rows[1:]:
        assert row["over_none_us"] == pytest.approx(
            row["us_per_cmd"] - none["us_per_cmd"], abs=2e-3
        )
    assert list(tmp_path.iterdir()) == []  # the journals it wrote are gone


def test_describe_names_every_sink_and_its_difference() -> None:
    rows = [
        {"sink": "none", "us_per_cmd": 3.5, "over_none_us": 0.0, "runs": [3.5]},
        {"sink": "record", "us_per_cmd": 4.25, "over_none_us": 0.75, "runs": [4.25]},
    ]
    assert describe(rows) == (
        "journal cost (median us/command, difference from none): none 3.50; record 4.25 (+0.75)"
    )


def test_the_phase_runs_only_when_named(capsys: pytest.CaptureFixture[str]) -> None:
    assert "journal" not in DEFAULT_PHASES
    tiny = ["--commands", "800", "--symbols", "3", "--accounts", "3", "--repeat", "1"]
    assert main(["bench", "engine", *tiny, "--gc", "off", "--phases", "journal"]) == 0
    out = capsys.readouterr().out
    assert "gc off: journal cost (median us/command, difference from none): none " in out
    for sink in SINKS[1:]:
        assert f"; {sink} " in out
    assert "throughput" not in out and "replay" not in out
