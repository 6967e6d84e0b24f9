"""A real ``quotegate run`` process on a free loopback port, for tests that talk to the product
as a client would (the docs' examples, the OpenAPI document under schemathesis)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.services import free_port

ROOT = Path(__file__).resolve().parents[1]


def wait_healthy(
    proc: subprocess.Popen[bytes], base: str, log: Path, *, timeout_s: float = 30.0
) -> None:
    """Wait until the ``quotegate run`` process ``proc`` answers ``GET base/healthz`` with 200;
    ``AssertionError`` with its log when it exits first or does not come up in ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(log.read_text())
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"quotegate run did not come up:\n{log.read_text()}")


@contextmanager
def quotegate_run(
    log: Path, *extra: str, key: str, env: Mapping[str, str] | None = None
) -> Iterator[str]:
    """Start ``quotegate run --demo-key KEY EXTRA...`` (output to ``log``), wait until
    ``/healthz`` answers, yield its base URL; SIGTERM and wait at the end."""
    port = free_port()
    environ = {k: v for k, v in os.environ.items() if not k.startswith("QUOTEGATE_")}
    environ.update(env or {})
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gateway.roots.cli", "run", "--port", str(port),
             "--candles-db", ":memory:", "--demo-key", key, "--log-level", "warning",
             "--database-url", f"sqlite:{log.parent / 'reports.sqlite3'}", *extra],
            cwd=ROOT, env=environ, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(proc, base, log)
        yield base
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
