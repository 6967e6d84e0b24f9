"""The embedded runtime's settings (:class:`EmbeddedConfig`) and the seams they choose: the
snapshot store (memory or Redis) and the candle archive (SQLite). Kept apart from
:mod:`gateway.roots.embedded` so that the process roots build a config without the runtime."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from engine import EngineConfig
from feeds.synthetic import DEFAULT_SYMBOLS
from gateway.marketdata.publisher import PublisherConfig
from gateway.roots.run_journal import RunJournalConfig
from gateway.seams.candle_buffer import DEFAULT_RETENTION_MS
from gateway.seams.candles_sqlite import SqliteCandleArchive, SqliteCandleConfig
from gateway.seams.services import CandleArchive
from gateway.seams.store import SnapshotStore
from gateway.seams.store_config import RedisStoreConfig, SnapshotProvider, StoreConfig
from gateway.seams.store_memory import MemorySnapshotStore

FEEDS = ("synthetic", "replay", "none")
_SYMBOL_RE = re.compile(r"[A-Za-z0-9_-]{1,32}")  # no dots: symbols are parts of channel names


@dataclass(kw_only=True)
class EmbeddedConfig:
    """The embedded runtime. ``feed``: ``synthetic``, ``replay`` (``replay_file``) or
    ``none``; ``rate_orders_per_s`` paces the synthetic feed; ``replay_speed`` the replay
    (0 = as fast as possible). ``accounts_file``: see :mod:`gateway.trading.accounts` (without
    one, a ``demo`` account with ``demo_api_key`` or a random key). ``redis_url``: keep snapshots in
    Redis (``store_flush_interval_ms``: its write batching); ``candles_db``: SQLite file of
    closed candles (``None``: in memory), ``candles_retention_ms`` how long it keeps each
    resolution (:mod:`gateway.seams.candle_buffer`). ``journal``: journal every command and
    restore from it at start (``None``: nothing is written). ``database_url``: report to
    ``sqlite:PATH`` or ``postgresql://...`` (``None``: no reporter); ``reporter_queue_records``
    bounds its queue, ``reporter_batch_records`` its transactions. ``gc_threshold``: the GC's
    generation-0 threshold after setup, when the long-lived state is also frozen
    (``gc.freeze``); 0 leaves the GC alone."""

    symbols: Sequence[str] = DEFAULT_SYMBOLS
    feed: str = "synthetic"
    rate_orders_per_s: float = 200.0
    seed: int = 1
    tick: str = "0.01"
    lot: int = 1
    replay_file: str | None = None
    replay_speed: float = 1.0
    accounts_file: str | None = None
    demo_api_key: str | None = None
    redis_url: str | None = None
    candles_db: str | None = None
    candles_retention_ms: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_RETENTION_MS))
    flush_interval_ms: int = 20
    store_history_max: int = 1000
    store_flush_interval_ms: int = 50
    journal: RunJournalConfig | None = None
    database_url: str | None = None
    reporter_queue_records: int = 1_000_000
    reporter_batch_records: int = 5000
    reporter_flush_interval_ms: int = 50
    gc_threshold: int = 50_000
    publisher: PublisherConfig | None = None  # None: the publisher's defaults
    engine: EngineConfig = field(default_factory=EngineConfig)  # retention, open-order cap
    synthetic: dict[str, Any] = field(default_factory=dict)  # extra SyntheticConfig fields

    def __post_init__(self) -> None:
        if self.feed not in FEEDS:
            raise ValueError(f"feed must be one of {', '.join(FEEDS)}, not {self.feed!r}")
        if self.feed == "replay" and not self.replay_file:
            raise ValueError("the replay feed needs a replay file (--replay-file)")
        if self.rate_orders_per_s < 0:
            raise ValueError("the feed rate must be >= 0")
        if self.flush_interval_ms < 1:
            raise ValueError("flush_interval_ms must be at least 1")
        if self.store_flush_interval_ms < 1:
            raise ValueError("store_flush_interval_ms must be at least 1")
        if self.store_history_max < 1:
            raise ValueError("store_history_max must be at least 1")
        if self.reporter_queue_records < 1 or self.reporter_batch_records < 1:
            raise ValueError("the reporter's queue and batch need at least 1 record")
        if self.database_url is not None and not self.database_url.startswith(
            ("sqlite:", "postgresql://", "postgres://")
        ):
            raise ValueError(
                f"database URL {self.database_url!r}: use sqlite:PATH or postgresql://..."
            )
        if self.gc_threshold < 0:
            raise ValueError("gc_threshold must be >= 0 (0: leave the GC alone)")
        symbols = list(dict.fromkeys(s.strip() for s in self.symbols if s.strip()))
        if not symbols and self.feed != "replay":
            raise ValueError("at least one symbol is needed")
        for symbol in symbols:
            if not _SYMBOL_RE.fullmatch(symbol):
                raise ValueError(f"bad symbol {symbol!r}: 1-32 characters of A-Z a-z 0-9 _ -")
        self.symbols = symbols


def snapshot_store(config: EmbeddedConfig, provider: SnapshotProvider) -> SnapshotStore:
    """The snapshot store ``config`` asks for: Redis with ``redis_url``, else in memory."""
    if config.redis_url:
        from gateway.seams.store_redis import RedisSnapshotStore  # imports redis: only when asked

        return RedisSnapshotStore(
            RedisStoreConfig(
                url=config.redis_url,
                history_max=config.store_history_max,
                flush_interval_ms=config.store_flush_interval_ms,
            ),
            snapshot_provider=provider,
        )
    return MemorySnapshotStore(
        StoreConfig(history_max=config.store_history_max), snapshot_provider=provider
    )


def candle_archive(path: str | None, retention_ms: dict[str, int]) -> CandleArchive:
    """The SQLite archive of closed candles (``None``: in memory)."""
    return SqliteCandleArchive(
        SqliteCandleConfig(path=path or ":memory:", retention_ms=retention_ms)
    )
