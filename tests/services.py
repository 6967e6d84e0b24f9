"""Helpers that start the real servers tests need (no mocks): Redis, PostgreSQL and a Kafka
broker.

``tests/conftest.py`` turns these into session fixtures; tests and benchmarks may also use
them directly (``free_port()`` for servers a test starts itself).
"""

from __future__ import annotations

import os
from typing import NoReturn

import pytest

from loadtest.kafka_broker import KafkaBroker, find_tansu_binary, wait_for_port
from loadtest.postgres_server import PostgresServer, find_pg_bin
from loadtest.redis_server import (
    RedisServer,
    RedisServerConfig,
    find_redis_binary,
    free_port,
)

__all__ = [
    "KafkaBroker",
    "PostgresServer",
    "RedisServer",
    "RedisServerConfig",
    "find_pg_bin",
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
