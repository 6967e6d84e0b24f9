"""``quotegate bench reporter`` runs end to end on a tiny stream (figures are not asserted)."""

from __future__ import annotations

import argparse
from pathlib import Path

import orjson
import pytest

from loadtest import bench_reporter


def test_bench_reporter_reports_rows_and_engine_rates(
    postgres_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    parser = argparse.ArgumentParser()
    bench_reporter.add_arguments(parser)
    out = tmp_path / "r.json"
    args = parser.parse_args(
        ["--commands", "3000", "--rounds", "1", "--rate", "20000", "--symbols", "3",
         "--database-url", postgres_url, "--json", str(out)]
    )  # fmt: skip
    assert bench_reporter.run(args) == 0
    results = orjson.loads(out.read_bytes())
    for kind in ("sqlite", "postgres"):
        rows = results["rows"][kind]
        assert rows["rows"] > rows["events"] > 0 and rows["rows_per_s"] > 0
    for series in ("max", "paced"):
        modes = results[series]
        assert set(modes) == {"off", "sqlite", "postgres"}
        assert modes["off"]["ratio_to_off"] == 1.0
        assert all(m["commands_per_s_median"] > 0 for m in modes.values())
        assert modes["sqlite"]["dropped"] == 0 and modes["postgres"]["dropped"] == 0
    printed = capsys.readouterr().out
    assert "rows/s" in printed and "reporter postgres" in printed


def test_bad_arguments_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser()
    bench_reporter.add_arguments(parser)
    assert bench_reporter.run(parser.parse_args(["--commands", "0", "--rounds", "0"])) == 2
    assert "--commands must be at least 1" in capsys.readouterr().err
