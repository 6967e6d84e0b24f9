"""/proc readings, core pinning and the open-file limit of the fan-out benchmark."""

from __future__ import annotations

import multiprocessing
import os
import resource
import time

import pytest

from loadtest import fanout_proc


def test_cpu_seconds_and_rss_of_a_process() -> None:
    pid = os.getpid()
    before = fanout_proc.cpu_seconds(pid)
    deadline = time.process_time() + 0.1
    while time.process_time() < deadline:
        pass
    assert fanout_proc.cpu_seconds(pid) >= before + 0.05
    rss = fanout_proc.rss_bytes(pid)
    block = bytearray(64 * 1024 * 1024)
    block[::4096] = b"x" * len(block[::4096])  # touch every page
    assert fanout_proc.rss_bytes(pid) >= rss + 32 * 1024 * 1024
    del block


def test_pin_keeps_existing_cores_only() -> None:
    saved = os.sched_getaffinity(0)
    try:
        first = min(saved)
        fanout_proc.pin((first, 10_000))
        assert os.sched_getaffinity(0) == {first}
        fanout_proc.pin((10_000,))  # no such core: left as it is
        assert os.sched_getaffinity(0) == {first}
    finally:
        os.sched_setaffinity(0, saved)


def test_raise_nofile_never_passes_the_hard_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        assert fanout_proc.raise_nofile(soft) == soft
        limit = fanout_proc.raise_nofile(10**9)
        assert limit >= soft
        assert hard == resource.RLIM_INFINITY or limit <= hard
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_ask_and_receive_report_timeouts_and_errors() -> None:
    here, there = multiprocessing.Pipe()
    there.send(("ready", 5))
    assert fanout_proc.receive(here, "ready", 1) == 5
    with pytest.raises(TimeoutError):
        fanout_proc.receive(here, "ready", 0.01)
    there.send(("error", "server: boom"))
    with pytest.raises(RuntimeError, match="boom"):
        fanout_proc.receive(here, "ready", 1)
    there.send(("stats", {}))
    with pytest.raises(RuntimeError, match="expected 'ready'"):
        fanout_proc.receive(here, "ready", 1)
    there.close()
    with pytest.raises(RuntimeError, match="ended"):
        fanout_proc.receive(here, "stats", 1)
