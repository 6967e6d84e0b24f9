"""Fixtures of the distributed tests: a :class:`~tests.distributed.cluster.Cluster` on the
session's broker and Redis, with topics of its own and an empty Redis database."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.distributed.cluster import Cluster


@pytest.fixture
def cluster(kafka_bootstrap: str, redis_url: str, tmp_path: Path) -> Iterator[Cluster]:
    c = Cluster(kafka_bootstrap, redis_url, tmp_path / "cluster", "c" + uuid.uuid4().hex[:10])
    try:
        yield c
    finally:
        c.close()
