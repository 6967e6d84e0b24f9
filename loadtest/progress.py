"""Progress with an ETA for the long benchmarks, on standard error.

The progress advances between timed runs, never inside one, so it costs the measured loops
nothing: a benchmark announces its whole work up front (``total``, in commands or events to
process) and reports each run's share when it ends. On a terminal it is a ``tqdm`` bar redrawn
in place; into a file or a pipe it is a plain line (done, total, rate, ETA) at most every
``log_every_s`` seconds, so a log shows where a long run is.
"""

from __future__ import annotations

import sys
import time
from types import TracebackType

from tqdm import tqdm


class Progress:
    """``advance(n)`` after each piece of work; ``close()`` (or ``with``) at the end."""

    def __init__(
        self,
        total: int,
        *,
        desc: str,
        unit: str,
        enabled: bool = True,
        log_every_s: float = 5.0,
    ) -> None:
        self.total = total
        self._desc = desc
        self._unit = unit
        self._done = 0
        self._note = ""
        self._started = time.monotonic()
        self._logged = self._started
        self._log_every_s = log_every_s
        self._lines = enabled and not sys.stderr.isatty()
        self._bar = tqdm(
            total=total,
            desc=desc,
            unit=unit,
            unit_scale=True,
            dynamic_ncols=True,
            mininterval=0.5,
            disable=not enabled or self._lines,
            file=sys.stderr,
        )

    def advance(self, n: int) -> None:
        self._done += n
        self._bar.update(n)
        if self._lines and time.monotonic() - self._logged >= self._log_every_s:
            self._log_line()

    def line(self) -> str:
        """``desc: 45% (68,000/152,000 cmd, 12,000 cmd/s, ETA 0:00:07) note``."""
        elapsed = time.monotonic() - self._started
        rate = self._done / elapsed if elapsed > 0 else 0.0
        left = (self.total - self._done) / rate if rate > 0 else None
        pct = 100 * self._done // self.total if self.total else 100
        eta = "?" if left is None else tqdm.format_interval(left)
        return (
            f"{self._desc}: {pct}% ({self._done:,}/{self.total:,} {self._unit},"
            f" {rate:,.0f} {self._unit}/s, ETA {eta}) {self._note}"
        ).rstrip()

    def _log_line(self) -> None:
        self._logged = time.monotonic()
        print(self.line(), file=sys.stderr, flush=True)

    def write(self, text: str) -> None:
        """Print a result line (standard output) without garbling the bar."""
        self._bar.write(text, file=sys.stdout)
        sys.stdout.flush()

    def note(self, text: str) -> None:
        """What runs now (shown after the bar)."""
        self._note = text
        self._bar.set_postfix_str(text, refresh=False)

    @property
    def done(self) -> int:
        """The work reported so far (counted even when nothing is shown)."""
        return self._done

    def close(self) -> None:
        self._bar.close()

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def silent() -> Progress:
    """A progress that shows nothing (library callers and tests)."""
    return Progress(0, desc="", unit="", enabled=False)
