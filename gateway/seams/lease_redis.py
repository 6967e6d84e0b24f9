"""The engine leader's lease in Redis, with a fencing token.

Keys (``P`` = ``key_prefix``): ``P leader`` = the leader's node id, with a TTL of ``ttl_ms``;
``P fence`` = the current fencing token; ``P fence:n`` = the token counter. :meth:`acquire`
takes a free lease and, in the same script, draws the next token and makes it current: every
new leader has a larger token than any before. :meth:`renew` extends the lease only while this
node still holds it. A node that cannot renew before the TTL runs out has lost it, and the
writes it may still attempt carry an older token: the snapshot store refuses them
(:attr:`gateway.seams.store_redis.RedisSnapshotStore.fence`), gateways drop its market data
after the new leader's fence marker (:mod:`gateway.seams.bus_kafka`).
"""

from __future__ import annotations

import redis.asyncio as aioredis

_ACQUIRE_LUA = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  local token = redis.call('INCR', KEYS[3])
  redis.call('SET', KEYS[2], token)
  return token
end
return 0
"""

_RENEW_LUA = """
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
if not holder and redis.call('GET', KEYS[2]) == ARGV[3] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""

_RELEASE_LUA = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class RedisLease:
    """One node's view of the leader lease (see the module docstring)."""

    def __init__(self, url: str, *, node: str, key_prefix: str = "qg:", ttl_ms: int = 1000):
        if ttl_ms < 100:
            raise ValueError("the lease TTL must be at least 100 ms")
        self.node = node
        self.ttl_ms = ttl_ms
        self.leader_key = f"{key_prefix}leader"
        self.fence_key = f"{key_prefix}fence"
        self._counter_key = f"{key_prefix}fence:n"
        self._client = aioredis.Redis.from_url(
            url, socket_timeout=ttl_ms / 2000, socket_connect_timeout=ttl_ms / 2000
        )
        self.token = 0

    async def close(self) -> None:
        await self._client.aclose()

    async def acquire(self) -> int:
        """Take the lease if it is free: the new fencing token, else 0."""
        token = int(
            await self._client.eval(
                _ACQUIRE_LUA,
                3,
                self.leader_key,
                self.fence_key,
                self._counter_key,
                self.node,
                str(self.ttl_ms),
            )
        )
        if token:
            self.token = token
        return token

    async def renew(self) -> bool:
        """Extend the lease; ``False`` when this node no longer holds it. A lease that ran out
        while nobody else took it (the fence still holds this node's token) is taken back:
        no other leader existed in between."""
        renewed = await self._client.eval(
            _RENEW_LUA,
            2,
            self.leader_key,
            self.fence_key,
            self.node,
            str(self.ttl_ms),
            str(self.token),
        )
        return bool(int(renewed))

    async def release(self) -> None:
        """Give the lease up (a clean shutdown: the standby need not wait for the TTL)."""
        await self._client.eval(_RELEASE_LUA, 1, self.leader_key, self.node)

    async def holder(self) -> str | None:
        value = await self._client.get(self.leader_key)
        if value is None:
            return None
        return value.decode() if isinstance(value, bytes) else str(value)
