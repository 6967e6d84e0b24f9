"""Per-channel sequencing: epoch, gap-free ``seq``, conflation timing and the snapshot cache.

A :class:`Stream` is one channel's output. Every update it publishes is ``seq + 1`` of the
previous one; a snapshot carries the seq of the last update it includes. The bounded
per-channel *history* is kept by the snapshot store (``SnapshotStore.record``), not here.

Conflation: a stream with ``interval_us > 0`` publishes at most once per interval. Changes that
arrive inside the interval stay *pending* in the feed that owns the stream and are merged into
one update, published by ``Publisher.flush_due`` once the interval since the last publication
has passed (or with the next event after that). Because a snapshot must equal the state at its
seq (a client applies the next update on top of it), the ``render`` of a feed whose updates
are diffs (book, trades) renders the *published* state, pending changes left out; a feed can
instead cache its snapshot before the first pending change (:meth:`Stream.freeze`).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any

import orjson

from gateway.wire.envelope import SNAPSHOT, UPDATE, Envelope

Sink = Callable[[Envelope], None]
Render = Callable[[], Any]
Take = Callable[[], Any]

_EPOCH_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"
NEVER = -(1 << 62)
_dumps = orjson.dumps
_new_tuple = tuple.__new__
"""``last_emit_us`` of a stream that has not published yet (always due)."""


def new_epoch(length: int = 6) -> str:
    """A short random token naming a publisher start (``[0-9a-z]``)."""
    return "".join(secrets.choice(_EPOCH_ALPHABET) for _ in range(length))


class Stream:
    """One channel's sequence: publishes updates to the sink and serves cached snapshots.

    ``render`` returns the channel's current snapshot ``data``; it is called lazily by
    :meth:`snapshot` and the result is cached until the next update. ``take`` returns the
    next update's ``data`` from the owning feed's pending changes (``None``: nothing visible).
    """

    __slots__ = (
        "_cache",
        "_format",
        "_render",
        "_sink",
        "channel",
        "epoch",
        "interval_us",
        "last_emit_us",
        "last_ts",
        "pending",
        "pending_ts",
        "seq",
        "take",
        "wire",
    )

    def __init__(
        self,
        channel: str,
        epoch: str,
        sink: Sink,
        render: Render,
        *,
        take: Take | None = None,
        interval_us: int = 0,
        ts: int = 0,
        wire: str | None = None,
    ) -> None:
        self.channel = channel
        self.epoch = epoch
        self.wire = wire
        head = b'{"type":"%b","ch":%b,"epoch":%b,"seq":' % (
            UPDATE.encode(),
            orjson.dumps(wire or channel),
            orjson.dumps(epoch),
        )
        # the whole update envelope as one bytes template: seq, ts and the encoded data
        self._format = head.replace(b"%", b"%%") + b'%d,"ts":%d,"data":%b}'
        self.seq = 0
        self.last_ts = ts
        self.last_emit_us = NEVER
        self.interval_us = interval_us
        self.pending = False
        self.pending_ts = ts
        self.take: Take = take if take is not None else _nothing
        self._sink = sink
        self._render = render
        self._cache: Envelope | None = None

    def publish(self, ts: int, data: Any, now_us: int | None = None) -> Envelope:
        """Publish one update (``seq + 1``) with ``ts`` = its triggering event's time."""
        self.seq = seq = self.seq + 1
        self.last_ts = ts
        self.last_emit_us = ts if now_us is None else now_us
        self._cache = None
        # Envelope.build's exact bytes without its per-call overhead: the constant head is
        # encoded once per stream (tests check the bytes are equal).
        payload = self._format % (seq, ts, _dumps(data))
        env: Envelope = _new_tuple(Envelope, (UPDATE, self.channel, self.epoch, seq, ts, payload))
        self._sink(env)
        return env

    def publish_encoded(self, ts: int, data_json: bytes) -> None:
        """:meth:`publish` of ``data`` already encoded as JSON (``data_json`` must be what
        ``orjson.dumps(data)`` gives): the orders streams render their records from byte
        templates. Inlined rather than shared with :meth:`publish`: both are per-event paths."""
        self.seq = seq = self.seq + 1
        self.last_ts = self.last_emit_us = ts
        self._cache = None
        payload = self._format % (seq, ts, data_json)
        self._sink(_new_tuple(Envelope, (UPDATE, self.channel, self.epoch, seq, ts, payload)))

    def offer(self, ts: int, now_us: int) -> bool:
        """The feed changed at ``ts``: publish now if allowed (returns ``False``) or leave it
        pending until due (returns ``True``: the caller keeps it for ``flush_due``)."""
        if self.interval_us == 0 or now_us - self.last_emit_us >= self.interval_us:
            self.pending = False
            data = self.take()
            if data is not None:
                self.publish(ts, data, now_us)
            return False
        self.pending = True
        self.pending_ts = ts
        return True

    def flush(self, now_us: int | None = None) -> None:
        """Publish the pending changes now (conflated streams)."""
        if self.pending:
            self.pending = False
            data = self.take()
            if data is not None:
                self.publish(self.pending_ts, data, now_us)

    def due(self, now_us: int) -> bool:
        """Whether a pending change may be published at ``now_us``."""
        return now_us - self.last_emit_us >= self.interval_us

    def freeze(self) -> None:
        """Cache the snapshot of the current (published) state before a conflated change."""
        if self._cache is None:
            self._cache = self._build()

    def snapshot(self) -> Envelope:
        """The snapshot at the last published update (cached per seq)."""
        env = self._cache
        if env is None:
            env = self._cache = self._build()
        return env

    def _build(self) -> Envelope:
        return Envelope.build(
            SNAPSHOT,
            self.channel,
            self.epoch,
            self.seq,
            self.last_ts,
            self._render(),
            wire_channel=self.wire,
        )


def _nothing() -> None:
    return None
