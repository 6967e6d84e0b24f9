"""The snapshot store in Redis (``redis.asyncio``), shared by every gateway node.

Key layout (``P`` = ``key_prefix``, ``{c}`` = the channel as a cluster hash tag):

* ``P{c}:snap``   string: the latest snapshot envelope's bytes (they carry epoch and seq)
* ``P{c}:meta``   string: ``"<cur> <first> <epoch>"``: the channel's current seq, the oldest
  seq kept in its history (the history is ``first..cur``, empty when ``first == cur + 1``)
  and its epoch
* ``P{c}:h:<seq>`` string: one update envelope's bytes, for ``first <= seq <= cur``
* ``Pchannels``   set: the channels that have a snapshot

Writes are coalesced: :meth:`RedisSnapshotStore.record` only appends to an in-process buffer;
the flush task (every ``flush_interval_ms``) asks the publisher for one snapshot per dirty
channel and writes everything in ONE ``MULTI`` / ``MSET`` / ``UNLINK`` [/ ``SADD``] / ``EXEC``
round trip, whatever the number of updates and channels: a handful of commands per flush.
Reads are atomic: a snapshot is one ``GET``; ``resume`` is one Lua script that reads the meta,
the history and the fallback snapshot together. A history key that is missing (evicted)
makes the script fall back to the snapshot: never a partial replay.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from itertools import chain
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from gateway.seams.store import Resume, StoreUnavailable
from gateway.seams.store_config import RedisStoreConfig, SnapshotProvider
from gateway.wire.envelope import SNAPSHOT, Envelope
from runtime.tasks import cancel_and_wait

log = logging.getLogger(__name__)

_NO_UPDATES: tuple[Envelope, ...] = ()

_RESUME_LUA = """
local meta = redis.call('GET', KEYS[1])
if not meta then return {0} end
local cur, first, epoch = string.match(meta, '^(%-?%d+) (%-?%d+) (.*)$')
cur = tonumber(cur)
first = tonumber(first)
local since = tonumber(ARGV[2])
if epoch == ARGV[1] then
  if since == cur then return {1} end
  if since < cur and since >= first - 1 then
    local out = {2}
    local keys = {}
    local complete = true
    for s = since + 1, cur do
      keys[#keys + 1] = ARGV[3] .. string.format('%d', s)
      if #keys == 500 or s == cur then
        local vals = redis.call('MGET', unpack(keys))
        for i = 1, #vals do
          if not vals[i] then complete = false break end
          out[#out + 1] = vals[i]
        end
        if not complete then break end
        keys = {}
      end
    end
    if complete then return out end
  end
end
local snap = redis.call('GET', KEYS[2])
if not snap then return {1} end
return {3, snap}
"""


@dataclass
class _Stream:
    """What Redis holds for one channel: history ``first..cur`` of ``epoch``."""

    epoch: str
    first: int
    cur: int


@dataclass
class _Batch:
    """One channel's writes in one flush."""

    stream: _Stream | None
    added: dict[int, bytes]
    snapshot: Envelope | None = None
    drop_snapshot: bool = False

    def reset(self, epoch: str, seq: int) -> None:
        """Start a new, empty history after ``seq``."""
        self.stream = _Stream(epoch, seq + 1, seq)
        self.added.clear()

    def update(self, env: Envelope) -> None:
        stream = self.stream
        if stream is None or stream.epoch != env.epoch:
            self.reset(env.epoch, env.seq - 1)
            self.snapshot = None
            self.drop_snapshot = True
        elif env.seq != stream.cur + 1:
            self.reset(env.epoch, env.seq - 1)  # a hole: keep the history contiguous
        assert self.stream is not None
        self.added[env.seq] = env.payload
        self.stream.cur = env.seq

    def snap(self, env: Envelope) -> None:
        stream = self.stream
        if stream is None or stream.epoch != env.epoch or env.seq > stream.cur:
            self.reset(env.epoch, env.seq)
        self.snapshot = env
        self.drop_snapshot = False


class RedisSnapshotStore:
    """:class:`~gateway.seams.store.SnapshotStore` in Redis; one writer (the publisher), any number
    of readers (gateway nodes, each with its own instance)."""

    def __init__(
        self,
        config: RedisStoreConfig | None = None,
        *,
        snapshot_provider: SnapshotProvider | None = None,
    ) -> None:
        self._config = config or RedisStoreConfig()
        self._provider = snapshot_provider
        self._prefix = self._config.key_prefix
        self._pending: dict[str, deque[Envelope]] = {}
        self._streams: dict[str, _Stream | None] = {}
        self._listed: set[str] = set()
        self._known: set[str] = set()  # every channel a flush wrote (what a rebuild restores)
        self._bases: dict[str, bytes] = {}
        self._client: aioredis.Redis | None = None
        self._resume_script: Any = None
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self.fence: tuple[str, int] | None = None
        """``(key, token)``: write only while Redis holds ``token`` at ``key`` (the engine
        leader's fencing token, :mod:`gateway.seams.lease_redis`); checked with ``WATCH`` in
        the write's own transaction, so a deposed writer's batch is refused whole."""
        self.before_write: Callable[[], Awaitable[None]] | None = None
        """Awaited after a batch is built and before it is sent (the engine makes the commands
        behind the batch durable there)."""
        self._rebuild = False
        self.writer_error: str | None = None
        """Why the last flush failed, ``None`` once a flush (and any rebuild) succeeded."""
        self.rebuilds = 0
        self.flushes = 0
        self.flush_errors = 0
        self.flush_seconds = 0.0  # wall time spent writing batches (includes Redis round trips)
        self.flush_cpu_seconds = 0.0  # of which building batches (incl. provider snapshots)

    # --- keys ---------------------------------------------------------------------------------

    def _key(self, channel: str, suffix: str) -> str:
        return f"{self._prefix}{{{channel}}}:{suffix}"

    def _history_key(self, channel: str, seq: int) -> str:
        return f"{self._prefix}{{{channel}}}:h:{seq}"

    # --- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        if self._client is not None:
            return
        self._client = aioredis.Redis.from_url(
            self._config.url,
            socket_timeout=self._config.socket_timeout_s,
            socket_connect_timeout=self._config.socket_timeout_s,
        )
        self._resume_script = self._client.register_script(_RESUME_LUA)
        self._task = asyncio.create_task(self._flush_loop(), name="redis-store-flush")

    async def close(self) -> None:
        task, self._task = self._task, None
        await cancel_and_wait(task)
        client = self._client
        if client is None:
            return
        try:
            await self.flush()
        except (RedisError, OSError) as exc:
            self.flush_errors += 1
            log.warning("snapshot store: final flush failed: %s", exc)
        self._client = None
        await client.aclose()

    async def _flush_loop(self) -> None:
        interval_s = self._config.flush_interval_ms / 1000
        # Building a batch runs on the event loop (the publisher's): keep it under
        # flush_duty_max_pct of the time by waiting longer after an expensive flush.
        stretch = 100 / self._config.flush_duty_max_pct - 1
        failing = False
        wait_s = interval_s
        verify_s = self._config.verify_interval_ms / 1000
        verified = time.monotonic()
        while True:
            await asyncio.sleep(wait_s)
            if verify_s > 0 and time.monotonic() - verified >= verify_s:
                verified = time.monotonic()
                await self._verify()
            if not self._pending and not self._rebuild:
                wait_s = interval_s
                continue
            built_s = self.flush_cpu_seconds
            try:
                await self.flush()
            except (RedisError, OSError) as exc:
                self.flush_errors += 1
                if not failing:
                    log.warning("snapshot store: flush failed (will retry): %s", exc)
                failing = True
            else:
                failing = False
            wait_s = max(interval_s, (self.flush_cpu_seconds - built_s) * stretch)

    async def _verify(self) -> None:
        """Notice a Redis that lost what this writer wrote without a failed write in between
        (restarted empty between two flushes, flushed by hand): fewer listed channels than
        written means rebuild everything on the next flush."""
        client = self._client
        if client is None or self._rebuild or not self._listed:
            return
        try:
            listed = await client.scard(self._prefix + "channels")
        except (RedisError, OSError):
            return  # the next flush fails, and that starts the rebuild
        if int(listed) < len(self._listed):
            log.warning(
                "snapshot store: Redis holds %d of %d channels; rebuilding",
                listed,
                len(self._listed),
            )
            self._rebuild = True

    # --- writes -------------------------------------------------------------------------------

    def record(self, envelope: Envelope) -> None:
        pending = self._pending.get(envelope.channel)
        if pending is None:
            pending = self._pending[envelope.channel] = deque(maxlen=self._config.pending_max)
        pending.append(envelope)

    def record_snapshot(self, envelope: Envelope) -> None:
        if envelope.type != SNAPSHOT:
            envelope = envelope._replace(type=SNAPSHOT)
        self.record(envelope)

    async def flush(self) -> None:
        """Write what is buffered. After a failed flush (Redis down, restarted, emptied) the
        next one first rebuilds every known channel: it reads their metas again and writes a
        fresh snapshot from the publisher (plus the updates buffered meanwhile) and the
        channel set, so a Redis that came back empty is whole again without a restart."""
        async with self._lock:
            client = self._client
            if client is None or not (self._pending or self._rebuild):
                return
            try:
                await self._flush(client)
            except (RedisError, OSError) as exc:
                self._rebuild = True
                self.writer_error = f"{type(exc).__name__}: {exc}"
                raise
            if self._rebuild:
                self.rebuilds += 1
                log.warning(
                    "snapshot store: Redis is back; %d channels rebuilt", len(self._streams)
                )
            self._rebuild = False
            self.writer_error = None

    async def _flush(self, client: aioredis.Redis) -> None:
        if self._rebuild:
            self._mark_all_dirty()
        # Learn the streams of new channels BEFORE taking the batch: from the take to the
        # provider's snapshots nothing may await, or the snapshots would run ahead of it.
        while unknown := [ch for ch in self._pending if ch not in self._streams]:
            await self._load_streams(client, unknown)
        taken, self._pending = self._pending, {}
        started = time.perf_counter()
        try:
            await self._write(client, taken)
        except BaseException:
            self._restore(taken)
            raise
        finally:
            self.flush_seconds += time.perf_counter() - started
        self.flushes += 1

    def _mark_all_dirty(self) -> None:
        """Forget what Redis was known to hold and queue every channel this writer has
        written (with a provider snapshot) for the next batch."""
        known = [*self._known, *self._streams, *self._listed]
        self._streams.clear()
        self._listed.clear()
        provider = self._provider
        for channel in dict.fromkeys(known):
            if (
                channel not in self._pending
                and provider is not None
                and provider(channel) is not None
            ):
                self._pending[channel] = deque(maxlen=self._config.pending_max)

    def _restore(self, taken: dict[str, deque[Envelope]]) -> None:
        """Put a failed batch back in front of what was recorded meanwhile."""
        for channel, items in taken.items():
            newer = self._pending.get(channel)
            if newer:
                items.extend(newer)
            self._pending[channel] = items

    async def _load_streams(self, client: aioredis.Redis, unknown: list[str]) -> None:
        """Learn what Redis already holds for channels this writer has not touched yet (a
        restarted publisher continues its history when the epoch and seq line up)."""
        metas = await client.mget([self._key(ch, "meta") for ch in unknown])
        for channel, meta in zip(unknown, metas, strict=True):
            self._streams[channel] = _parse_meta(_as_bytes(meta)) if meta is not None else None

    def _base(self, channel: str) -> bytes:
        base = self._bases.get(channel)
        if base is None:
            base = self._bases[channel] = f"{self._prefix}{{{channel}}}:".encode()
        return base

    def _plan(
        self, channel: str, items: deque[Envelope], mset: list[bytes], unlink: list[bytes]
    ) -> tuple[_Stream, bool]:
        """Add one channel's writes to ``mset`` (packed key/value pairs) and ``unlink`` (keys);
        return its new stream and whether a snapshot was written. Synchronous, so the
        provider's snapshot matches the batch."""
        base = self._base(channel)
        history_max = self._config.history_max
        old = self._streams.get(channel)
        fresh = self._provider(channel) if self._provider is not None else None
        if old is not None and (fresh is None or fresh.epoch == old.epoch):
            # Fast path: contiguous updates of the stored epoch (the steady state).
            epoch, seq = old.epoch, old.cur
            for env in items:
                seq += 1
                if env.seq != seq or env.epoch != epoch or env.type == SNAPSHOT:
                    break
            else:
                if fresh is None or fresh.seq <= seq:
                    first = max(old.first, seq - history_max + 1)
                    for env in items:
                        if env.seq >= first:
                            mset.append(_pair(base + b"h:%d" % env.seq, env.payload))
                    stored_end = min(first, old.cur + 1)  # stored entries below the new first
                    unlink.extend(base + b"h:%d" % s for s in range(old.first, stored_end))
                    new = _Stream(epoch, first, seq)
                    mset.append(_pair(base + b"meta", b"%d %d %s" % (seq, first, epoch.encode())))
                    if fresh is not None:
                        mset.append(_pair(base + b"snap", fresh.payload))
                    return new, fresh is not None
        lo, hi = (old.first, old.cur) if old is not None else (1, 0)
        batch = _Batch(replace(old) if old is not None else None, {})
        for env in items:
            if env.type == SNAPSHOT:
                batch.snap(env)
            else:
                batch.update(env)
        if fresh is not None:
            batch.snap(fresh)
        assert batch.stream is not None
        stream = batch.stream
        stream.first = max(stream.first, stream.cur - history_max + 1)
        written: set[int] = set()
        for seq, payload in batch.added.items():
            if seq >= stream.first:
                mset.append(_pair(base + b"h:%d" % seq, payload))
                written.add(seq)
        if old is not None:
            # Stored entries that left the history: below the new first, above the new
            # cur (a seq regression), or all of them when the epoch changed.
            if stream.epoch == old.epoch:
                dropped = chain(
                    range(lo, min(hi, stream.first - 1) + 1),
                    range(max(lo, stream.cur + 1), hi + 1),
                )
            else:
                dropped = chain(range(lo, hi + 1))
            unlink.extend(base + b"h:%d" % seq for seq in dropped if seq not in written)
        mset.append(
            _pair(base + b"meta", b"%d %d %s" % (stream.cur, stream.first, stream.epoch.encode()))
        )
        if batch.snapshot is not None:
            mset.append(_pair(base + b"snap", batch.snapshot.payload))
        elif batch.drop_snapshot:
            unlink.append(base + b"snap")
        return stream, batch.snapshot is not None

    async def _write(self, client: aioredis.Redis, taken: dict[str, deque[Envelope]]) -> None:
        started = time.perf_counter()
        mset: list[bytes] = []
        unlink: list[bytes] = [b"UNLINK"]
        listed: list[str] = []
        streams: dict[str, _Stream] = {}
        for channel, items in taken.items():
            stream, has_snapshot = self._plan(channel, items, mset, unlink)
            streams[channel] = stream
            if has_snapshot and channel not in self._listed:
                listed.append(channel)
        commands = [[b"MULTI"]]
        if len(unlink) > 1:
            commands.append(unlink)
        if listed:
            channels_key = (self._prefix + "channels").encode()
            commands.append([b"SADD", channels_key, *(ch.encode() for ch in listed)])
        packed = b"".join(
            [
                _pack([b"MULTI"]),
                b"*%d\r\n$4\r\nMSET\r\n" % (1 + 2 * len(mset)),
                *mset,
                *map(_pack, commands[1:]),
                _pack([b"EXEC"]),
            ]
        )
        replies = len(commands) + 2  # MULTI, MSET, the others, EXEC
        self.flush_cpu_seconds += time.perf_counter() - started
        if self.before_write is not None:
            await self.before_write()
        await _send(client, packed, replies, fence=self.fence)
        self._streams.update(streams)
        self._listed.update(listed)
        self._known.update(streams)

    # --- reads --------------------------------------------------------------------------------

    def _require(self) -> aioredis.Redis:
        if self._client is None:
            raise RuntimeError("RedisSnapshotStore is not started")
        return self._client

    async def snapshot(self, channel: str) -> Envelope | None:
        try:
            payload = await self._require().get(self._key(channel, "snap"))
        except (RedisError, OSError) as exc:
            raise StoreUnavailable() from exc
        if payload is None:
            return None
        return Envelope.parse(_as_bytes(payload), channel=channel)

    async def resume(self, channel: str, epoch: str, seq: int) -> Resume:
        self._require()
        try:
            reply = await self._resume_script(
                keys=[self._key(channel, "meta"), self._key(channel, "snap")],
                args=[epoch, int(seq), self._history_key(channel, 0)[:-1]],
            )
        except (RedisError, OSError) as exc:
            raise StoreUnavailable() from exc
        code = int(reply[0])
        if code == 2:
            return Resume(None, [Envelope.parse(p, channel=channel) for p in reply[1:]])
        if code == 3:
            return Resume(Envelope.parse(reply[1], channel=channel), _NO_UPDATES)
        return Resume(None, _NO_UPDATES)

    async def positions(self, channels: list[str]) -> dict[str, tuple[str, int]]:
        """``(epoch, seq)`` of the newest update Redis holds for each channel that has one."""
        if not channels:
            return {}
        try:
            metas = await self._require().mget([self._key(ch, "meta") for ch in channels])
        except (RedisError, OSError) as exc:
            raise StoreUnavailable() from exc
        out: dict[str, tuple[str, int]] = {}
        for channel, meta in zip(channels, metas, strict=True):
            stream = _parse_meta(_as_bytes(meta)) if meta is not None else None
            if stream is not None:
                out[channel] = (stream.epoch, stream.cur)
        return out

    async def channels(self) -> list[str]:
        try:
            members = await self._require().smembers(self._prefix + "channels")
        except (RedisError, OSError) as exc:
            raise StoreUnavailable() from exc
        return sorted(m.decode() if isinstance(m, bytes) else str(m) for m in members)


def _pair(key: bytes, value: bytes) -> bytes:
    """Two RESP bulk strings (one MSET key/value pair), packed without copying twice."""
    return b"$%d\r\n%b\r\n$%d\r\n%b\r\n" % (len(key), key, len(value), value)


def _pack(args: list[bytes]) -> bytes:
    """One command in RESP (redis-py's generic packer costs several times more per argument,
    and a flush has thousands)."""
    return b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%b\r\n" % (len(a), a) for a in args)


class FencedError(RedisError):
    """The store's fencing token is no longer the current one: this writer was deposed."""


async def _send(
    client: aioredis.Redis, packed: bytes, replies: int, *, fence: tuple[str, int] | None = None
) -> None:
    """Send pre-packed commands on one pooled connection and check every reply. With a
    ``fence``, the key is watched and checked first: the transaction runs only if it still
    holds the token (``EXEC`` fails if the key changes in between)."""
    pool = client.connection_pool
    conn = await pool.get_connection()  # type: ignore[no-untyped-call]  # untyped in redis-py
    try:
        if fence is not None:
            key = fence[0].encode()
            await conn.send_packed_command(_pack([b"WATCH", key]) + _pack([b"GET", key]))
            await conn.read_response()
            current = await conn.read_response()
            if current is None or int(current) != fence[1]:
                await conn.send_packed_command(_pack([b"UNWATCH"]))
                await conn.read_response()
                raise FencedError(f"fencing token {fence[1]} is no longer current ({current!r})")
        await conn.send_packed_command(packed)
        results = [await conn.read_response() for _ in range(replies)]
    except BaseException:
        await conn.disconnect()  # replies may be left unread: never reuse this connection
        raise
    finally:
        await pool.release(conn)
    executed = results[-1]
    if not isinstance(executed, list):
        raise RedisError(f"snapshot store: transaction not executed: {executed!r}")
    for reply in executed:
        if isinstance(reply, Exception):
            raise reply


def _as_bytes(value: bytes | str) -> bytes:
    return value.encode() if isinstance(value, str) else value


def _parse_meta(meta: bytes) -> _Stream | None:
    parts = meta.decode().split(" ", 2)
    if len(parts) != 3:
        return None
    try:
        return _Stream(parts[2], int(parts[1]), int(parts[0]))
    except ValueError:
        return None
