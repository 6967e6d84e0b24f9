"""Checking a benchmark's own arguments, shared by the ``quotegate bench NAME`` modules.

argparse checks the types; what it cannot say (a count below 1, a comma-separated subset of
known names, a percentage out of range, a value a parser refuses) is collected by an
:class:`ArgumentCheck`, and every problem is reported at once, on stderr, one line::

    bench engine: bad arguments: --phases: unknown 'warp' (choose among resting,throughput);
    --repeat must be at least 1, not 0

after which the module's ``run(args)`` returns exit code 2 (argparse's own code for bad
usage). Options are named as on the command line: ``max_events`` is ``--max-events``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import TypeVar

T = TypeVar("T")

EXIT_BAD_ARGUMENTS = 2


def option(name: str) -> str:
    """The command-line spelling of a destination: ``max_events`` -> ``--max-events``."""
    return "--" + name.replace("_", "-")


class ArgumentCheck:
    """The problems found in one benchmark's parsed arguments (options are named by their
    ``argparse`` destination, and read from ``args``); :meth:`failed` reports them."""

    def __init__(self, prog: str, args: argparse.Namespace) -> None:
        self.prog = prog
        self.args = args
        self.problems: list[str] = []

    def at_least(self, minimum: float, *names: str) -> None:
        """Each option of ``names`` must be ``>= minimum``."""
        for name in names:
            value = getattr(self.args, name)
            if value < minimum:
                self.problems.append(f"{option(name)} must be at least {minimum}, not {value}")

    def within(self, low: float, high: float, *names: str) -> None:
        """Each option of ``names`` must be in ``[low, high]``."""
        for name in names:
            value = getattr(self.args, name)
            if not low <= value <= high:
                self.problems.append(
                    f"{option(name)} must be between {low} and {high}, not {value}"
                )

    def names(self, name: str, allowed: Sequence[str], *, required: bool = True) -> tuple[str, ...]:
        """The option as a comma-separated subset of ``allowed`` (empty items ignored, order
        kept); at least one unless not ``required``."""
        chosen = tuple(item for item in getattr(self.args, name).split(",") if item)
        unknown = [item for item in chosen if item not in allowed]
        among = f"(choose among {','.join(allowed)})"
        if unknown:
            listed = ", ".join(repr(item) for item in unknown)
            self.problems.append(f"{option(name)}: unknown {listed} {among}")
        elif required and not chosen:
            self.problems.append(f"{option(name)}: name at least one {among}")
        return chosen

    def parsed(self, name: str, parse: Callable[[str], T], default: T) -> T:
        """``parse`` of the option's text, or ``default`` (and a problem) if it raises
        ``ValueError``."""
        try:
            return parse(getattr(self.args, name))
        except ValueError as exc:
            self.problems.append(f"{option(name)}: {exc}")
            return default

    def failed(self) -> bool:
        """Whether there were problems; if so, they are written to stderr, on one line."""
        if not self.problems:
            return False
        print(f"{self.prog}: bad arguments: {'; '.join(self.problems)}", file=sys.stderr)
        return True
