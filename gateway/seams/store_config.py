"""Configuration of the snapshot stores (:mod:`gateway.seams.store_memory`,
:mod:`gateway.seams.store_redis`).

Kept apart from the implementations so the composition root can build a config without
importing ``redis``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from gateway.wire.envelope import Envelope

SnapshotProvider = Callable[[str], Envelope | None]
"""The publisher's ``snapshot(channel)``: the channel's current snapshot, or ``None``."""


@dataclass(kw_only=True)
class StoreConfig:
    """In-memory store. ``history_max``: updates kept per channel for resuming."""

    history_max: int = 1000

    def __post_init__(self) -> None:
        if self.history_max < 1:
            raise ValueError("history_max must be at least 1")


@dataclass(kw_only=True)
class RedisStoreConfig(StoreConfig):
    """Redis store.

    ``flush_interval_ms``: how long ``record`` buffers before the flush task writes one
    pipelined batch (reads lag the publisher by about this). Building a batch (one provider
    snapshot per dirty channel) runs on the event loop; under load the task waits longer so
    that it takes at most ``flush_duty_max_pct`` of the time (the lag grows instead of the
    publisher slowing down; batches get bigger, not more frequent). ``pending_max`` bounds the
    buffered updates per channel while Redis is unreachable (older ones are dropped; the
    channel's history then restarts, so resumes across the hole get a snapshot). Every
    ``verify_interval_ms`` the flush task counts the channels Redis lists (one ``SCARD``); fewer
    than written (Redis restarted empty between two flushes, or flushed by hand) rebuilds every
    channel, as a failed flush does (0: never).
    """

    url: str = "redis://127.0.0.1:6379/0"
    key_prefix: str = "qg:"
    flush_interval_ms: int = 50
    flush_duty_max_pct: int = 20
    pending_max: int = 10_000
    socket_timeout_s: float = 5.0
    verify_interval_ms: int = 1000

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.flush_interval_ms < 1:
            raise ValueError("flush_interval_ms must be at least 1")
        if not 1 <= self.flush_duty_max_pct <= 100:
            raise ValueError("flush_duty_max_pct must be within 1..100")
        if self.pending_max < 1:
            raise ValueError("pending_max must be at least 1")
        if self.verify_interval_ms < 0:
            raise ValueError("verify_interval_ms must be >= 0 (0: never)")
