"""The ``quotegate`` command line as a user meets it: help, version, every flag explained."""

from __future__ import annotations

import argparse
import subprocess
import sys
from importlib.metadata import version

import pytest

from gateway.roots.cli import SUBCOMMANDS, build_parser, main
from loadtest.bench import BENCHMARKS
from loadtest.bench import build_parser as bench_parser


def test_top_level_help_is_plain_text(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert "``" not in out and ":func:" not in out and ":mod:" not in out
    for name in SUBCOMMANDS:
        assert name in out


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out.strip() == f"quotegate {version('quotegate')}"


def _options(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [a for a in parser._actions if a.option_strings and a.dest != "help"]


@pytest.mark.parametrize("name", sorted(BENCHMARKS))
def test_every_bench_flag_has_help_and_shows_its_default(name: str) -> None:
    parser = bench_parser(name)
    text = parser.format_help()
    for action in _options(parser):
        flag = action.option_strings[-1]
        assert action.help, f"bench {name} {flag} has no help text"
        assert "(default:" not in action.help, f"{flag}: the formatter adds the default"
    assert text.count("(default:") == len(_options(parser)), text


@pytest.mark.parametrize("name", sorted(SUBCOMMANDS))
def test_every_subcommand_flag_has_help(name: str) -> None:
    parser = build_parser(name)
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for action in _options(sub.choices[name]):
        assert action.help, f"{name} {action.option_strings[-1]} has no help text"


def test_the_console_script_answers_help_without_a_traceback() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "gateway.roots.cli", "bench", "engine", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0 and "--commands" in done.stdout and not done.stderr


def test_every_run_flag_is_in_the_running_docs_and_no_other() -> None:
    """docs/running.md's flag table and ``quotegate run``'s parser name the same flags."""
    import re
    from pathlib import Path

    parser = build_parser("run")
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    flags = {a.option_strings[-1] for a in _options(sub.choices["run"])}
    text = (Path(__file__).resolve().parents[3] / "docs" / "running.md").read_text()
    documented = set(re.findall(r"^\| `(--[a-z-]+)", text, re.MULTILINE))
    assert flags == documented
