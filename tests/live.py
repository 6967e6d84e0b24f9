"""A real ``quotegate run`` process on a free loopback port, for tests that talk to the product
as a client would (the docs' examples, the OpenAPI document under schemathesis)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.services import free_port

ROOT = Path(__file__).resolve().parents[1]


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
        for _ in range(300):
            if proc.poll() is not None:
                raise AssertionError(log.read_text())
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            subprocess.run(["sleep", "0.1"], check=True)
        else:
            raise AssertionError("quotegate run did not come up")
        yield base
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
