"""Process plumbing of ``quotegate bench fanout``: CPU time and RSS of another process from
``/proc``, pinning to cores, the open-file limit, and the pipe both sides of a benchmark
process talk over.

A benchmark process (server or client) is a ``multiprocessing`` "spawn" child that receives
commands as small tuples on its end of a ``Pipe`` and answers with tuples; its asyncio loop
reads the pipe with ``loop.add_reader`` (:func:`watch_pipe`), so the loop never blocks on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

_TICKS_PER_S = os.sysconf("SC_CLK_TCK")
_PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of ``pid`` so far (``/proc/PID/stat`` utime + stime)."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        text = f.read()
    fields = text[text.rindex(b")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS_PER_S


def rss_bytes(pid: int) -> int:
    """Resident set size of ``pid`` (``/proc/PID/statm``)."""
    with open(f"/proc/{pid}/statm", "rb") as f:
        return int(f.read().split()[1]) * _PAGE_BYTES


def pin(cpus: tuple[int, ...], nice: int = 0) -> None:
    """Run this process on ``cpus`` only (those that exist; nothing if none do), at niceness
    ``nice`` when it is not 0.

    With Linux's autogroup scheduling a niceness only counts against the processes of the
    same session, so the process first starts its own session and sets that group's nice
    (``/proc/self/autogroup``) as well: then it counts against every other session of a
    shared machine. Lowering a niceness needs the privilege to; without it nothing changes."""
    available = os.sched_getaffinity(0)
    wanted = {cpu for cpu in cpus if cpu in available}
    if wanted:
        os.sched_setaffinity(0, wanted)
    if nice:
        with contextlib.suppress(OSError):
            os.setsid()
        with contextlib.suppress(OSError), open("/proc/self/autogroup", "w") as f:
            f.write(str(nice))
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, 0, nice)


def raise_nofile(wanted: int) -> int:
    """Raise the soft open-file limit towards ``wanted`` (at most the hard limit); returns the
    soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if target > soft:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def watch_pipe(conn: Connection, handle: Callable[[tuple[Any, ...]], None]) -> None:
    """Call ``handle(command)`` on the running loop for every tuple that arrives on ``conn``;
    a closed pipe (the parent is gone) arrives as ``("eof",)``."""
    loop = asyncio.get_running_loop()

    def readable() -> None:
        try:
            while conn.poll():
                handle(conn.recv())
        except (EOFError, OSError):
            loop.remove_reader(conn.fileno())
            handle(("eof",))

    loop.add_reader(conn.fileno(), readable)
    # the loop made the descriptor non-blocking; a large answer (a client's latency buckets)
    # must be written whole, so it goes back to blocking (reads only follow a poll())
    os.set_blocking(conn.fileno(), True)


def ask(conn: Connection, command: tuple[Any, ...], expect: str, timeout_s: float) -> Any:
    """Send ``command`` and wait (at most ``timeout_s``) for the answer tagged ``expect``;
    returns its value. Raises ``TimeoutError`` or ``RuntimeError`` (the process failed)."""
    conn.send(command)
    return receive(conn, expect, timeout_s)


def receive(conn: Connection, expect: str, timeout_s: float) -> Any:
    """The next answer tagged ``expect`` (see :func:`ask`)."""
    if not conn.poll(timeout_s):
        raise TimeoutError(f"no {expect!r} within {timeout_s:g} s")
    try:
        tag, value = conn.recv()
    except EOFError:
        raise RuntimeError(f"process ended before {expect!r}") from None
    if tag == "error":
        raise RuntimeError(str(value))
    if tag != expect:
        raise RuntimeError(f"expected {expect!r}, got {tag!r}")
    return value
