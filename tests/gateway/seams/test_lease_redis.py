"""RedisLease: one holder at a time, a larger fencing token for every new holder, renewal only
by the holder, expiry by the TTL."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis

from gateway.seams.lease_redis import RedisLease

pytestmark = pytest.mark.redis


async def test_one_holder_and_growing_tokens(redis_url: str) -> None:
    a = RedisLease(redis_url, node="a", ttl_ms=300)
    b = RedisLease(redis_url, node="b", ttl_ms=300)
    client = aioredis.Redis.from_url(redis_url)
    try:
        first = await a.acquire()
        assert first > 0
        assert await b.acquire() == 0  # taken
        assert await a.holder() == "a"
        assert await a.renew() and not await b.renew()
        assert int(await client.get(a.fence_key)) == first
        await asyncio.sleep(0.5)  # a stops renewing: the TTL runs out
        second = await b.acquire()
        assert second > first
        assert int(await client.get(b.fence_key)) == second
        assert not await a.renew()  # a lost it and cannot take it back by renewing
        await b.release()
        assert await a.holder() is None
        assert await a.acquire() > second
    finally:
        await a.close()
        await b.close()
        await client.aclose()


def test_a_ttl_below_100_ms_is_refused() -> None:
    with pytest.raises(ValueError):
        RedisLease("redis://127.0.0.1:1/0", node="a", ttl_ms=50)


async def test_a_lapsed_lease_nobody_took_is_renewed(redis_url: str) -> None:
    """The holder's loop was late (the TTL ran out) but no other node acquired: the fence still
    holds its token, so renewing takes the lease back; once another node acquired, it cannot."""
    a = RedisLease(redis_url, node="a", ttl_ms=150)
    b = RedisLease(redis_url, node="b", ttl_ms=150)
    try:
        await a.acquire()
        await asyncio.sleep(0.3)
        assert await a.holder() is None
        assert await a.renew()
        assert await a.holder() == "a"
        await asyncio.sleep(0.3)
        assert await b.acquire() > a.token
        assert not await a.renew()
    finally:
        await a.close()
        await b.close()
