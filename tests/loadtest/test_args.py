"""Checking the benchmarks' arguments (``loadtest/args.py``), and every ``quotegate bench``
module refusing bad ones with exit code 2 and one line on stderr naming what is wrong."""

from __future__ import annotations

import argparse

import pytest

from gateway.roots.cli import main
from loadtest.args import EXIT_BAD_ARGUMENTS, ArgumentCheck, option


def test_option_is_the_command_line_spelling() -> None:
    assert option("max_events") == "--max-events"
    assert option("gc") == "--gc"


def _check(**values: object) -> ArgumentCheck:
    return ArgumentCheck("bench x", argparse.Namespace(**values))


def test_no_problems_reports_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    check = _check(commands=5, repeat=1, seconds=0.0, low=1, high=100, phases="b,,a", depth="12")
    check.at_least(1, "commands", "repeat")
    check.at_least(0, "seconds")
    check.within(1, 100, "low", "high")
    assert check.names("phases", ["a", "b", "c"]) == ("b", "a")
    assert check.parsed("depth", int, 0) == 12
    assert not check.failed()
    assert capsys.readouterr() == ("", "")


def test_every_problem_is_reported_on_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    check = _check(
        commands=0, symbols=3, max_events=-2, flush_duty_max_pct=101, phases="a,warp,zap",
        depth="deep",
    )  # fmt: skip
    check.at_least(1, "commands", "symbols", "max_events")
    check.within(1, 100, "flush_duty_max_pct")
    assert check.names("phases", ["a", "b"]) == ("a", "warp", "zap")
    assert check.parsed("depth", int, 7) == 7
    assert check.failed()
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1 and err.startswith("bench x: bad arguments: ")
    problems = err.removeprefix("bench x: bad arguments: ").rstrip("\n").split("; ")
    assert problems == [
        "--commands must be at least 1, not 0",
        "--max-events must be at least 1, not -2",
        "--flush-duty-max-pct must be between 1 and 100, not 101",
        "--phases: unknown 'warp', 'zap' (choose among a,b)",
        "--depth: invalid literal for int() with base 10: 'deep'",
    ]


def test_an_empty_subset_is_a_problem_only_when_one_is_required(
    capsys: pytest.CaptureFixture[str],
) -> None:
    optional = _check(phases=",")
    assert optional.names("phases", ["a"], required=False) == ()
    assert not optional.failed()
    required = _check(gc="")
    assert required.names("gc", ["a", "b"]) == ()
    assert required.failed()
    assert "--gc: name at least one (choose among a,b)" in capsys.readouterr().err


TINY_ENGINE = ["--commands", "300", "--symbols", "2", "--accounts", "2", "--resting", "10"]


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["engine", *TINY_ENGINE, "--phases", "warp"], "--phases: unknown 'warp'"),
        (["engine", *TINY_ENGINE, "--gc", "sometimes"], "--gc: unknown 'sometimes'"),
        (["engine", *TINY_ENGINE, "--gc", ","], "--gc: name at least one"),
        (["engine", "--commands", "0"], "--commands must be at least 1"),
        (["engine", "--symbols", "0"], "--symbols must be at least 1"),
        (["engine", "--accounts", "-1"], "--accounts must be at least 1"),
        (["engine", "--repeat", "0"], "--repeat must be at least 1"),
        (["publisher", "--conflate-ms", "orders=5"], "--conflate-ms: bad conflation 'orders=5'"),
        (["publisher", "--commands", "0"], "--commands must be at least 1"),
        (["publisher", "--depth", "0"], "--depth must be at least 1"),
        (["publisher", "--repeat", "0"], "--repeat must be at least 1"),
        (["store", "--conflate-ms", "book=x"], "--conflate-ms: bad conflation 'book=x'"),
        (["store", "--rate", "0"], "--rate must be at least 1"),
        (["store", "--flush-interval-ms", "0"], "--flush-interval-ms must be at least 1"),
        (["store", "--history-max", "0"], "--history-max must be at least 1"),
        (["store", "--seconds", "-1"], "--seconds must be at least 0"),
        (["store", "--readers", "-1"], "--readers must be at least 0"),
        (["store", "--flush-duty-max-pct", "0"], "--flush-duty-max-pct must be between 1 and 100"),
        (["store", "--flush-duty-max-pct", "101"], "--flush-duty-max-pct must be between"),
    ],
)
def test_bad_arguments_exit_2_naming_the_option(
    capsys: pytest.CaptureFixture[str], argv: list[str], named: str
) -> None:
    assert main(["bench", *argv]) == EXIT_BAD_ARGUMENTS
    out, err = capsys.readouterr()
    assert err.startswith(f"bench {argv[0]}: bad arguments: ")
    assert named in err
    assert "Traceback" not in out + err
